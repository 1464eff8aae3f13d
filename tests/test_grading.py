"""End to end on real submissions: every check, every diagnosis, from a student's file."""

import re
from pathlib import Path

import pytest

from conftest import EXAMPLES, SUBMISSIONS, check, exercise


def test_complete_submission_gets_full_marks(graded, catalog):
    report = graded(EXAMPLES / "complete.py")
    assert report.passed and report.score == report.max_score > 0
    assert {e.id for e in report.exercises} == {ex_id for ex_id, ex in catalog.items() if ex.kind == "function"}
    sigmoid = exercise(report, "sigmoid")
    ids = [c.id for c in sigmoid.checks]
    assert ids == ["found", "forward", "backward", "gradcheck", "float32", "stability", "inputs_unchanged", "device",
                   "hand_written"]
    assert check(report, "sigmoid", "device").status == "skipped"
    assert check(report, "matvec", "needs_input_grad").status == "passed"
    # its LeakyReLU is a Function: the module exercise of that name is not "not found" without a word
    assert "LeakyReLU (module leaky_relu_nn; your LeakyReLU is graded as leaky_relu)" in report.notes[0]


PARTIAL = {  # exercise: (status, failing check, diagnosis)
    "sigmoid": ("failed", "backward", "sign_error"),
    "sum": ("failed", "backward", "ignores_grad_output"),
    "softmax": ("failed", "backward", "placeholder"),
    "matvec": ("failed", "backward", "swapped_gradients"),
    "dropout": ("failed", "backward", "scale_error"),
    "param_relu": ("failed", "backward", "wrong_count"),
}


def test_partial_submission_diagnoses(graded):
    report = graded(EXAMPLES / "partial.py", rubric="all")
    assert not report.passed
    for ex_id, (status, check_id, code) in PARTIAL.items():
        ex = exercise(report, ex_id)
        assert ex.status == status, ex_id
        assert ex.first_problem.id == check_id and ex.first_problem.diagnosis == code, ex_id
    for ex_id in ("add", "mul", "exp", "dot", "linear", "leaky_relu", "mse_loss"):
        assert exercise(report, ex_id).status == "passed", ex_id
    for ex_id in ("conv1d", "cross_entropy"):
        assert exercise(report, ex_id).status == "missing" and exercise(report, ex_id).score == 0


@pytest.mark.parametrize("fixture,ex_id,check_id,code", [
    ("sign_error.py", "sigmoid", "backward", "sign_error"),
    ("scale_error.py", "exp", "backward", "scale_error"),
    ("ignores_grad_output.py", "sigmoid", "backward", "ignores_grad_output"),
    ("placeholder.py", "softmax", "backward", "placeholder"),
    ("placeholder.py", "exp", "backward", "placeholder"),
    ("swapped.py", "mul", "backward", "swapped_gradients"),
    ("swapped.py", "matvec", "backward", "swapped_gradients"),
    ("wrong_shape.py", "sum", "backward", "wrong_shape"),
    ("wrong_shape.py", "matvec", "backward", "wrong_shape"),
    ("wrong_count.py", "dropout", "backward", "wrong_count"),
    ("not_finite.py", "softmax", "stability", "not_finite"),
    ("not_finite.py", "sigmoid", "stability", "not_finite"),
    ("needs_input_grad.py", "matvec", "needs_input_grad", "missing_gradient"),
    ("float32_broken.py", "exp", "float32", "wrong_dtype"),
    ("mutates_input.py", "exp", "inputs_unchanged", "mutates_input"),
    ("mutates_input.py", "sigmoid", "inputs_unchanged", "mutates_input"),
    ("not_a_function.py", "exp", "found", "not_a_function"),
    ("not_a_function.py", "sigmoid", "found", "not_a_function"),
    ("wrong_forward.py", "sum", "forward", "wrong_shape"),
    ("wrong_forward.py", "exp", "forward", "scale_error"),
])
def test_each_mistake_is_named(graded, fixture, ex_id, check_id, code):
    report = graded(SUBMISSIONS / fixture)
    problem = exercise(report, ex_id).first_problem
    assert problem.id == check_id and problem.diagnosis == code, problem


def test_gradcheck_blames_a_wrong_forward_not_a_right_backward(graded):
    """exp's forward is off by a factor and its backward is the reference's: gradcheck, which
    differentiates the student's forward, fails, and says to fix forward."""
    found = check(graded(SUBMISSIONS / "wrong_forward.py"), "exp", "gradcheck")
    assert found.status == "failed" and found.diagnosis == "jacobian_mismatch"
    assert "agrees with the reference, but your forward does not" in found.message


def test_wrong_values_report_the_worst_element(graded):
    c = check(graded(SUBMISSIONS / "sign_error.py"), "sigmoid", "backward")
    assert c.worst.input == "x" and c.worst.got == pytest.approx(-c.worst.expected)


def test_gradcheck_runs_on_the_students_own_function(graded):
    report = graded(SUBMISSIONS / "sign_error.py")
    gc = check(report, "sigmoid", "gradcheck")
    assert gc.status == "failed" and "gradcheck" in gc.message and "`x`" in gc.message
    assert check(graded(EXAMPLES / "complete.py"), "matvec", "gradcheck").status == "passed"


def test_near_miss_gets_did_you_mean(graded):
    report = graded(SUBMISSIONS / "near_miss.py")
    sig = exercise(report, "sigmoid")
    assert sig.status == "missing" and sig.hint == "did you mean Sigmod? rename it Sigmoid"
    assert "MatVecFunction" in exercise(report, "matvec").hint


def test_exception_at_import_after_the_classes_grades_them_and_shows_the_students_traceback(graded):
    report = graded(SUBMISSIONS / "raises_at_import.py", rubric="lab1")
    problem, = report.load_problems
    assert report.error is None and problem.kind == "exception"
    assert problem.message == "RuntimeError: student forgot to remove this"
    assert "raises_at_import.py" in problem.traceback and "sanity_check" in problem.traceback
    # Only the student's frames: every `File "..."` is the submission (whatever folder the checkout
    # is in: a clone is a folder named gradegrad), none is gradegrad's own code.
    frames = re.findall(r'File "([^"]+)"', problem.traceback)
    assert frames and all(Path(f).name == "raises_at_import.py" for f in frames), frames
    assert "gradegrad/sandbox" not in problem.traceback and "child.py" not in problem.traceback
    assert exercise(report, "add").status == "passed"  # defined before the error: graded
    assert exercise(report, "sigmoid").status == "missing"


def test_exception_at_import_before_any_class_is_a_load_error(graded):
    report = graded(SUBMISSIONS / "raises_before_classes.py", rubric="lab1")
    assert not report.passed and report.error.startswith("importing the submission raised FileNotFoundError")
    assert "raises_before_classes.py" in report.error_traceback and "torch.load" in report.error_traceback
    assert all(e.status == "error" and e.score == 0 for e in report.exercises) and not report.load_problems


def test_exception_in_backward_costs_that_exercise_only(graded):
    report = graded(SUBMISSIONS / "raises_in_backward.py")
    exp = exercise(report, "exp")
    assert exp.status == "error" and "ValueError" in exp.first_problem.message
    assert "exp_grad" in exp.first_problem.traceback and "child.py" not in exp.first_problem.traceback
    assert exercise(report, "add").status == "passed"


def test_hang_times_out_and_the_rest_is_graded(graded):
    report = graded(SUBMISSIONS / "hangs.py", timeout=3)
    exp = exercise(report, "exp")
    assert exp.status == "timeout" and "time limit" in exp.first_problem.message
    assert exercise(report, "add").status == "passed"


def test_student_output_is_captured_not_parsed(graded):
    report = graded(SUBMISSIONS / "prints.py")
    assert "hello from the student" in report.output.stdout and "TOTAL 100/100" in report.output.stderr
    assert report.passed and report.score == report.max_score


def test_same_seed_same_report(graded):
    a = graded(SUBMISSIONS / "scale_error.py", seed=7)
    b = graded(SUBMISSIONS / "scale_error.py", seed=7, timeout=29)
    assert a == b  # every field but the checks' `seconds` (a measurement, not a verdict)
    timing = lambda d: [[c.pop("seconds") for c in e["checks"]] for e in d["exercises"]]  # noqa: E731
    da, db = a.to_dict(), b.to_dict()
    assert all(t >= 0 for ts in timing(da) + timing(db) for t in ts) and da == db


def test_the_function_wrapped_by_a_module_is_graded_and_a_1_tuple_forward_fails_forward_only(graded):
    report = graded(SUBMISSIONS / "wrapped_function.py", rubric="all", exercises=("linear", "sigmoid"))
    linear = exercise(report, "linear")
    assert linear.status == "passed" and linear.class_name == "LinearFunction" and "nn.Module" in linear.hint
    sigmoid = exercise(report, "sigmoid")
    assert sigmoid.status == "failed" and sigmoid.first_problem.id == "forward"
    assert sigmoid.first_problem.diagnosis == "wrong_type" and "tuple holding one tensor" in sigmoid.first_problem.message
    assert check(report, "sigmoid", "backward").status == "passed"
    assert check(report, "sigmoid", "gradcheck").status == "passed"
    assert not any(c.status == "error" for c in sigmoid.checks)


@pytest.mark.parametrize("ex_id,code,words", [
    ("mul", "mutates_grad_output", "backward changed grad_output in place"),
    ("softmax", "mutates_grad_output", "backward changed grad_output in place"),
    ("leaky_relu", "mutates_grad_output", "backward changed grad_output in place"),
    ("sigmoid", "mutates_output", "backward changed the output forward returned"),
    ("exp", "mutates_input", "backward changed the values of input `x`"),
])
def test_in_place_writes_in_backward_name_the_pass_and_the_tensor(graded, ex_id, code, words):
    report = graded(SUBMISSIONS / "inplace_backward.py")
    c = check(report, ex_id, "inputs_unchanged")
    assert c.status == "failed" and c.diagnosis == code and words in c.message, c
    assert exercise(report, ex_id).status == "failed"
    assert check(report, ex_id, "forward").status == "passed"  # forward is not blamed for what backward did


def test_a_backward_that_overwrites_a_saved_tensor_is_named_not_a_raw_error(graded):
    report = graded(SUBMISSIONS / "inplace_backward.py")
    for ex_id in ("exp", "sigmoid"):
        gc = check(report, ex_id, "gradcheck")  # gradcheck runs backward twice on one forward
        assert gc.status == "failed" and gc.diagnosis == "mutates_saved", gc
        assert "overwritten in place" in gc.message


def test_inputs_unchanged_looks_at_float32_too(graded):
    c = check(graded(SUBMISSIONS / "float32_inplace.py"), "cross_entropy", "inputs_unchanged")
    assert c.status == "failed" and c.diagnosis == "mutates_input"
    assert c.message.startswith("in float32: forward changed the values of input `logits`")


def test_dtype_policy_judges_what_the_caller_receives(graded):
    report = graded(SUBMISSIONS / "dtypes.py")
    up = check(report, "exp", "float32")  # float64 gradient for float32 x: autograd casts it back
    assert exercise(report, "exp").status == "passed" and up.status == "passed" and up.points == up.max_points
    assert up.diagnosis == "wrong_dtype" and "float64 for a float32 input" in up.message
    down = check(report, "sigmoid", "backward")  # float32 gradient for float64 x: precision lost
    assert down.status == "failed" and down.diagnosis == "wrong_dtype" and "precision is already lost" in down.message
    assert check(report, "sigmoid", "float32").status == "passed"
    mul = exercise(report, "mul")  # forward answers float32 for float64 inputs
    assert check(report, "mul", "forward").diagnosis == "wrong_dtype"
    gc = check(report, "mul", "gradcheck")
    assert gc.status == "failed" and gc.diagnosis == "wrong_dtype" and gc.traceback is None
    assert not any("internal error" in c.message for c in mul.checks)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("ex_id,check_id,code", [
    ("sum", "backward", "grad_output_twice"),
    ("dot", "backward", "ignores_grad_output"),
    ("mse_loss", "backward", "ignores_grad_output"),
    ("cross_entropy", "forward", "wrong_values"),
])
def test_scalar_results_are_diagnosed_against_the_upstream_gradient(graded, seed, ex_id, check_id, code):
    problem = exercise(graded(SUBMISSIONS / "scalar_mistakes.py", seed=seed), ex_id).first_problem
    assert (problem.id, problem.diagnosis) == (check_id, code), problem
    assert "times the expected value" not in problem.message


def test_a_hanging_backward_keeps_the_forward_points(graded):
    report = graded(SUBMISSIONS / "hangs_in_backward.py", timeout=6)
    exp = exercise(report, "exp")
    assert exp.status == "timeout"
    assert check(report, "exp", "forward").status == "passed"
    assert "backward did not finish" in check(report, "exp", "backward").message
    assert exercise(report, "add").status == "passed"


def test_a_stub_is_a_stub_even_when_one_check_ran_out_of_time():
    """An untouched starter loses `found`'s point; a check that timed out on a loaded machine
    does not turn it into a real attempt (and timeouts alone prove nothing)."""
    from gradegrad.grading import _unfinished
    from gradegrad.verdict import Verdict

    raised = Verdict("error", "NotImplementedError: write forward")
    late = Verdict("error", "no answer within 30 s", timed_out=True)
    stub = _unfinished({"found": Verdict.passed(), "forward": raised, "backward": raised, "gradcheck": late})
    assert stub["found"].status == "failed" and stub["found"].diagnosis == "not_implemented"
    assert _unfinished({"found": Verdict.passed(), "forward": late})["found"].status == "passed"


def test_without_its_known_mistakes_a_factor_that_changes_with_the_size_is_still_explained(catalog):
    """The manifests name an averaged bias gradient and a cross-entropy without 1/N (`mistakes`);
    an exercise that does not name them still says why no one factor fits (as it did before)."""
    from dataclasses import replace

    from conftest import FIXTURES
    from gradegrad.catalog import resolve_rubric, select_exercises
    from gradegrad.grading import grade
    from gradegrad.options import Options
    from gradegrad.sandbox.process import Limits

    bare = {ex_id: replace(ex, mistakes=()) for ex_id, ex in catalog.items()}
    for name, ex_id in (("mistakes_a", "linear"), ("mistakes_b", "cross_entropy")):
        chosen = select_exercises(resolve_rubric(None, bare), (ex_id,), bare)
        report = grade(FIXTURES / "qa" / f"{name}.py", chosen, bare, Options(0, "cpu", Limits(30)))
        found = check(report, ex_id, "backward")
        assert found.diagnosis == "wrong_values" and "changes with the input's size" in found.message, found



def test_a_common_mistake_that_fails_to_evaluate_costs_no_verdict(tmp_path):
    """An instructor's mistake expression that fails on a case (`gradegrad validate` reports it) is
    left out while grading: a wrong answer is still diagnosed, a right one still passes."""
    from gradegrad.catalog import Rubric, RubricItem, load_exercise
    from gradegrad.grading import grade
    from gradegrad.options import Options
    from gradegrad.sandbox.process import Limits

    manifest = tmp_path / "tanh.yaml"
    manifest.write_text("id: tanh\nclass: Tanh\nteaches: t\nreference: torch.tanh(x)\ninputs:\n  - name: x\n"
                        "    shape: [4]\nmistakes:\n  - {says: broken, gradient: {x: 'torch.mv(x, x)'}}\n"
                        "  - {says: 1 + y^2 for 1 - y^2, gradient: {x: 'grad_output * (1 + out ** 2)'}}\n")
    catalog = {"tanh": load_exercise(manifest)}
    body = ("import torch\nfrom torch.autograd import Function\n\nclass Tanh(Function):\n    @staticmethod\n"
            "    def forward(ctx, x):\n        y = torch.tanh(x)\n        ctx.save_for_backward(y)\n        return y\n\n"
            "    @staticmethod\n    def backward(ctx, g):\n        (y,) = ctx.saved_tensors\n        return g * (1 {} y * y)\n")
    rubric = Rubric("t", "t", (RubricItem("tanh", (("backward", 1.0),)),), str(tmp_path))
    for sign, status, code in (("-", "passed", None), ("+", "failed", "known_mistake")):
        (tmp_path / "s.py").write_text(body.format(sign))
        found = check(grade(tmp_path / "s.py", rubric, catalog, Options(0, "cpu", Limits(30))), "tanh", "backward")
        assert (found.status, found.diagnosis) == (status, code), found
