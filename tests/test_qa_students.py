"""The red team's students: right answers in many styles pass in full, and each single mistake fails
with the diagnosis that names it (tests/fixtures/qa/, one file holding one class per exercise)."""

import pytest

from conftest import FIXTURES, check, exercise

QA = FIXTURES / "qa"
FUNCTIONS = ("add", "mul", "exp", "sum", "sigmoid", "dot", "matvec", "softmax", "dropout", "leaky_relu",
             "param_relu", "conv1d", "linear", "mse_loss", "cross_entropy")


@pytest.mark.parametrize("name", ["right_einsum", "right_modern", "right_plain"])
def test_right_answers_in_every_style_get_full_marks(graded, name):
    report = graded(QA / f"{name}.py")
    assert {e.id for e in report.exercises} == set(FUNCTIONS)
    wrong = {e.id: [(c.id, c.diagnosis, c.message) for c in e.checks if c.status in ("failed", "error")]
             for e in report.exercises if e.score != e.max_score}
    assert not wrong
    assert report.score == report.max_score


# (exercise, the check that must fail, its diagnosis, words of its message)
MISTAKES = {
    "mistakes_a": [
        ("add", "backward", "sign_error", "wrong sign"),  # returns -g for y
        ("mul", "backward", "swapped_gradients", "swapped"),  # g * x for x
        ("exp", "backward", "ignores_grad_output", "grad_output = 1"),  # returns exp(x)
        ("sum", "backward", "ignores_grad_output", "grad_output = 1"),  # ones_like(x)
        ("sigmoid", "backward", "grad_output_twice", "twice"),
        ("dot", "backward", "swapped_gradients", "swapped"),
        ("matvec", "backward", "wrong_shape", "transpose"),  # outer(x, g) for A
        ("softmax", "backward", "known_mistake", "the diagonal of the Jacobian alone"),  # sigmoid's y(1 - y)
        ("dropout", "backward", "known_mistake", "without the mask"),  # the mask is not applied
        ("leaky_relu", "backward", "swapped_branches", "each branch has the other's formula"),  # the slope on the wrong side
        ("param_relu", "backward", "non_tensor_gradient", "not a tensor"),  # a gradient for alpha
        ("conv1d", "backward", "wrong_values", "differs"),  # range(n - k): the last window is missing
        ("linear", "backward", "known_mistake", "its gradient is the sum"),  # bias gradient averaged
        ("mse_loss", "backward", "scale_error", "12 times the expected value, what a common mistake gives: 2 (pred - target), not divided"),  # no 1/N
        ("cross_entropy", "stability", "not_finite", "nan/inf"),  # log(sum(exp)) without the maximum
    ],
    "mistakes_b": [
        ("add", "backward", "wrong_count", "1 value(s) for the 2 arguments"),
        ("exp", "backward", "wrong_device", "device"),  # (g * out).cuda() on a machine without CUDA
        ("sum", "backward", "wrong_shape", "expand_as(x)"),  # returns the scalar grad_output
        ("sigmoid", "stability", "not_finite", "nan/inf"),  # exp(x) / (1 + exp(x))
        ("dot", "inputs_unchanged", "mutates_input", "in place"),  # x.mul_(g) on a saved input
        ("matvec", "backward", "wrong_shape", "has shape (5,)"),  # sum over the wrong dimension
        ("softmax", "stability", "not_finite", "nan/inf"),  # no maximum subtracted
        ("dropout", "backward", "scale_error", "0.81 times"),  # * (1 - p) for / (1 - p)
        ("leaky_relu", "inputs_unchanged", "mutates_grad_output", "grad_output in place"),
        ("param_relu", "backward", "wrong_count", "1 value(s) for the 2 arguments"),  # no None for alpha
        ("conv1d", "backward", "known_mistake", "with w reversed"),  # the kernel is not flipped
        ("linear", "backward", "wrong_shape", "transpose"),  # x.T @ g for W
        ("mse_loss", "forward", "scale_error", "12 times the expected value, what a common mistake gives: the sum"),  # a sum for the mean
        ("cross_entropy", "backward", "known_mistake", "not divided by the batch size N"),  # no 1/N
    ],
    "mistakes_c": [
        ("add", "backward", "wrong_count", "3 value(s) for the 2 arguments"),
        ("mul", "backward", "wrong_dtype", "float32 for a float64 input"),  # .float()
        ("exp", "forward", "wrong_dtype", "float32"),
        ("sum", "forward", "wrong_shape", "expected ()"),  # x.sum(0)
        ("sigmoid", "inputs_unchanged", "mutates_output", "output forward returned"),  # s.mul_(1 - s)
        ("dot", "backward", "wrong_dtype", "without dtype="),  # torch.zeros(n) then +=: float32
        ("matvec", "backward", "ignores_grad_output", "grad_output = 1"),  # only for A
        ("softmax", "stability", "not_finite", "nan/inf"),  # subtracts the mean
        ("dropout", "backward", "wrong_values", "differs"),  # x where the mask belongs
        ("leaky_relu", "forward", "wrong_branch", "10 times the expected value"),  # slope 0.1
        ("param_relu", "backward", "known_mistake", "ReLU's derivative, 0 where x < 0"),  # ReLU's derivative
        ("conv1d", "backward", "known_mistake", "as for the input"),  # the kernel gradient is a full correlation
        ("linear", "backward", "missing_gradient", "None for `b`"),
        ("mse_loss", "backward", "sign_error", "wrong sign"),
        ("cross_entropy", "backward", "ignores_grad_output", "grad_output = 1"),
    ],
}
CASES = [(name, *case) for name, cases in MISTAKES.items() for case in cases]


@pytest.mark.parametrize("name,ex_id,check_id,diagnosis,words", CASES,
                         ids=[f"{c[0][-1]}-{c[1]}" for c in CASES])
def test_each_single_mistake_fails_with_its_diagnosis(graded, name, ex_id, check_id, diagnosis, words):
    report = graded(QA / f"{name}.py")
    assert exercise(report, ex_id).status in ("failed", "error")
    found = check(report, ex_id, check_id)
    assert found.status in ("failed", "error")
    assert found.diagnosis == diagnosis, found.message
    assert words in found.message


def test_a_backward_returning_a_list_loses_the_backward_points(graded):
    report = graded(QA / "mistakes_b.py")
    found = check(report, "mul", "backward")
    assert found.status == "failed" and "tuple" in found.message


def test_a_list_from_backward_is_not_reported_as_one_value(graded):
    """gradcheck's message must not say '1 value(s)' of a backward that returned two in a list."""
    message = check(graded(QA / "mistakes_b.py"), "mul", "gradcheck").message
    assert "list" in message and "tuple" in message


def test_a_real_looking_notebook_loses_only_its_broken_cells(catalog):
    """Markdown, %%time and %%capture cells holding classes, `torch.sum?`, input(), display(), a
    training cell using an undefined plt, a NUL byte pasted from a PDF, `files = !ls`, old outputs with
    escape sequences: every class is graded, each broken cell is named."""
    from gradegrad.batch import grade_source
    from gradegrad.catalog import resolve_rubric, select_exercises
    from gradegrad.intake import source_for
    from gradegrad.options import Options

    rubric = select_exercises(resolve_rubric("lab2", catalog), ("softmax", "leaky_relu", "dropout"), catalog)
    report = grade_source(source_for(QA / "lab_notebook.ipynb"), rubric, catalog, Options())
    assert {e.id: e.status for e in report.exercises} == {"softmax": "passed", "leaky_relu": "passed",
                                                         "dropout": "failed"}
    assert "without the mask" in check(report, "dropout", "backward").message
    assert [(p.cell, p.message.split(":")[0]) for p in report.load_problems] == [
        (8, "EOFError"), (10, "NameError"), (11, "SyntaxError")]
    assert "5 shell/magic line(s) of the notebook not run" in report.notes


def test_an_imprecise_forward_is_blamed_not_a_right_backward(graded):
    report = graded(QA / "precision.py")
    assert check(report, "exp", "backward").status == "passed"
    found = check(report, "exp", "gradcheck")
    assert found.diagnosis == "imprecise_forward"
    assert "forward" in found.message and "precision" in found.message


def test_float32_precision_values_cost_what_the_dtype_policy_says(graded):
    """Record of today's policy (README, "Dtypes"): a gradient *returned* as float32 fails wrong_dtype,
    but one computed in float32 and cast back to float64 passes, though the caller receives the very
    same numbers; an exp computed in float32 loses only gradcheck."""
    report = graded(QA / "precision.py")
    assert exercise(report, "sigmoid").status == "passed"
    assert [c.id for c in exercise(report, "exp").checks if c.status == "failed"] == ["gradcheck"]


def _making(ex, mistake) -> str:
    """A Function that makes `mistake`: forward computes the reference (or the mistake's output),
    backward gets the right gradients from autograd and replaces the mistaken ones."""
    names = [s.name for s in ex.inputs]
    tensors = [s.name for s in ex.inputs if s.is_tensor]
    scalars = [s.name for s in ex.inputs if not s.is_tensor]
    wanted = [s.name for s in ex.inputs if s.differentiable]
    returned = mistake.output or ex.reference
    wrong = "".join(f"        g[{n!r}] = {e}\n" for n, e in mistake.gradients)
    return (f"class {ex.class_name}(Function):\n"
            f"    @staticmethod\n    def forward(ctx, {', '.join(names)}):\n"
            f"        ctx.save_for_backward({', '.join(tensors)})\n"
            f"        ctx.scalars = ({''.join(n + ', ' for n in scalars)})\n"
            f"        out = {ex.reference}\n"
            f"        return {returned}\n\n"
            f"    @staticmethod\n    def backward(ctx, grad_output):\n"
            f"        {''.join(n + ', ' for n in tensors)}= ctx.saved_tensors\n" +
            (f"        {''.join(n + ', ' for n in scalars)}= ctx.scalars\n" if scalars else "") +
            "        with torch.enable_grad():\n" +
            "".join(f"            {n} = {n}.detach().requires_grad_()\n" for n in wanted) +
            f"            out = {ex.reference}\n"
            f"            g = dict(zip({wanted!r}, torch.autograd.grad(out, ({''.join(n + ', ' for n in wanted)}), "
            "grad_output)))\n" +
            "".join(f"        {n} = {n}.detach()\n" for n in wanted) +
            "        out = out.detach()\n" + wrong +
            f"        return {', '.join(f'g.get({n!r})' for n in names)}\n")


def test_every_common_mistake_of_the_builtin_manifests_is_named_when_a_student_makes_it(tmp_path, catalog):
    """Each `mistakes` entry of exercises/*.yaml, made by a Function: the check that sees it names
    it with the manifest's words (known_mistake, or a scale_error that takes them)."""
    from gradegrad.catalog import resolve_rubric, select_exercises
    from gradegrad.grading import grade
    from gradegrad.options import Options
    from gradegrad.sandbox.process import Limits

    named = [ex for ex in catalog.values() if ex.kind == "function" and ex.mistakes]
    assert len(named) >= 10
    for i in range(max(len(ex.mistakes) for ex in named)):
        chosen = [ex for ex in named if i < len(ex.mistakes)]
        path = tmp_path / f"mistakes_{i}.py"
        path.write_text("import math\nimport torch\nimport torch.nn.functional as F\nfrom torch.autograd import Function"
                        "\n\n\n" + "\n\n".join(_making(ex, ex.mistakes[i]) for ex in chosen))
        rubric = select_exercises(resolve_rubric("all", catalog), tuple(ex.id for ex in chosen), catalog)
        report = grade(path, rubric, catalog, Options(0, "cpu", Limits(30)))
        for ex in chosen:
            mistake = ex.mistakes[i]
            found = check(report, ex.id, "forward" if mistake.output else "backward")
            assert found.diagnosis in ("known_mistake", "scale_error") and mistake.says in found.message, \
                (ex.id, i, found)


def test_a_modules_common_mistakes_are_named_too(graded):
    report = graded(QA / "relu_modules.py", exercises=("leaky_relu_module", "leaky_relu_nn"))
    backward = check(report, "leaky_relu_module", "backward")
    assert backward.diagnosis == "known_mistake" and "ReLU's derivative, 0 where x < 0" in backward.message
    forward = check(report, "leaky_relu_nn", "forward")
    assert forward.diagnosis == "known_mistake" and "ReLU, 0 where x < 0" in forward.message


@pytest.mark.parametrize("name,ex_id", [("vjp_forgets_the_2", "vjp_squared_loss"),
                                        ("jax_forgets_the_2", "jax_squared_loss")])
def test_a_vjps_common_mistakes_are_named_too(graded, name, ex_id):
    import importlib.util

    if ex_id.startswith("jax") and importlib.util.find_spec("jax") is None:  # never imported here: only the child
        pytest.skip("needs the jax extra (pip install 'gradegrad[jax]')")
    found = check(graded(QA / f"{name}.py", exercises=(ex_id,)), ex_id, "backward")
    assert found.diagnosis == "scale_error" and "0.5 times the expected value, what a common mistake gives: " \
                                                  "y_pred - y without the factor 2" in found.message, found
