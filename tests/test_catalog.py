"""Manifests and rubrics: the built-in ones load, and instructor mistakes name file and field."""

from pathlib import Path

import pytest

from gradegrad.catalog import load_catalog, load_exercise, load_rubric, resolve_rubric, select_exercises
from gradegrad.errors import ManifestError, UsageError

EXPECTED = {"add", "mul", "exp", "sum", "sigmoid", "dot", "matvec", "softmax", "dropout", "leaky_relu",
            "param_relu", "conv1d", "linear", "mse_loss", "cross_entropy"}


def write(tmp_path: Path, text: str, name: str = "ex.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
id: tanh
class: Tanh
teaches: tanh's derivative is 1 - y^2.
reference: torch.tanh(x)
inputs:
  - name: x
    shape: [4]
"""


KINDS = {"leaky_relu_module": "module", "param_relu_module": "module", "vjp_add": "vjp", "vjp_dot": "vjp",
         "vjp_squared_loss": "vjp", "backward_diff_chain": "chain", "backprop_formula": "formula",
         # issue 13's kinds
         "leaky_relu_nn": "module", "ode_adjoint": "ode", "ode_linear": "ode", "deq": "deq", "jacobian": "jacobian",
         "jacobian_loop": "jacobian", "optim_sgd": "training", "train_torch": "training", "train_haiku": "training",
         "jax_add": "jax_vjp", "jax_dot": "jax_vjp", "jax_squared_loss": "jax_vjp", "ode_field": "ode_field"}


def test_builtin_catalog_has_every_exercise(catalog):
    assert set(catalog) == EXPECTED | set(KINDS)
    assert {ex_id: ex.kind for ex_id, ex in catalog.items() if ex.kind != "function"} == KINDS
    assert catalog["matvec"].aliases == ("MyMatVec", "Mv")
    assert catalog["dropout"].differentiable == (0,)
    assert all(ex.teaches.strip() for ex in catalog.values())


def test_a_new_exercise_is_one_yaml_file(tmp_path):
    ex = load_exercise(write(tmp_path, GOOD))
    assert ex.id == "tanh" and ex.cases[0].name == "default" and ex.inputs[0].shape == (4,)


@pytest.mark.parametrize("change,field,words", [
    (("shape: [4]", "shape: four"), "inputs[0].shape", "list of non-negative integers"),
    (("class: Tanh", "clas: Tanh"), "clas", "did you mean 'class'"),
    (("reference: torch.tanh(x)", "reference: torch.tanh(z)"), "reference", "unknown name 'z'"),
    (("reference: torch.tanh(x)", "reference: torch.tanh(x"), "reference", "not a valid Python expression"),
    # a reference runs in the grader: only arithmetic, indexing and calls of torch's math
    (("reference: torch.tanh(x)", "reference: x.__class__"), "reference", "attribute '__class__' is not allowed"),
    (("reference: torch.tanh(x)", "reference: torch.save(x, 'f') or x"), "reference", "attribute 'save'"),
    (("reference: torch.tanh(x)", "reference: '[a for a in x] and x'"), "reference", "ListComp is not allowed"),
    (("reference: torch.tanh(x)", "reference: '(lambda: x)()'"), "reference", "Lambda is not allowed"),
    (("    shape: [4]", "    shape: [4]\n    domain: {kind: gaussian}"), "inputs[0].domain.kind", "expected one of"),
    (("    shape: [4]", "    shape: [4]\n    include: 1000"), "inputs[0].include", "a list of numbers"),
    (("    shape: [4]", "    shape: [4]\n    include: [1000, big]"), "inputs[0].include", "non-empty list of numbers"),
    (("    shape: [4]", "    shape: [4]\n    include: [.inf]"), "inputs[0].include", "finite numbers"),
    (("    shape: [4]", "    shape: [2]\n    include: [1, 2, 3]"), "cases[0].inputs.x", "3 values to include, but "
     "shape [2] holds 2"),
    (("    shape: [4]", "    shape: [4]\ncases:\n  - name: default\n  - {name: big, inputs: {x: {include: [1, 2, 3, 4, 5]}}}"),
     "cases[1].inputs.x", "5 values to include"),
    # common mistakes (`mistakes`): expressions like the reference's, over the inputs, out and grad_output
    (("    shape: [4]", "    shape: [4]\nmistakes: {says: x}"), "mistakes", "expected a list of mistakes"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{gradient: {x: grad_output}}]"), "mistakes[0].says",
     "required field is missing"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops}]"), "mistakes[0].says", "needs an `output` or a `gradient`"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops, gradient: {y: grad_output}}]"),
     "mistakes[0].gradient.y", "no input with a gradient is named so (they are: x)"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops, gradient: {x: grad_output * z}}]"),
     "mistakes[0].gradient.x", "unknown name 'z' (use the input names (x), out, grad_output"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops, gradient: {x: grad_output.__class__}}]"),
     "mistakes[0].gradient.x", "attribute '__class__' is not allowed"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops, output: grad_output * x}]"),
     "mistakes[0].output", "unknown name 'grad_output' (use the input names (x), out, torch"),
    (("    shape: [4]", "    shape: [4]\nmistakes: [{says: oops, output: x, forward: x}]"), "mistakes[0].forward",
     "unknown field"),
])
def test_manifest_mistakes_name_file_and_field(tmp_path, change, field, words):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ManifestError) as err:
        load_exercise(path)
    assert err.value.field == field and words in err.value.problem
    assert str(path) in str(err.value)


def test_common_mistakes_load_as_expressions_with_their_sentences(tmp_path):
    ex = load_exercise(write(tmp_path, GOOD + "mistakes:\n  - says: 1 + y^2, not 1 - y^2\n"
                                              "    gradient: {x: grad_output * (1 + out ** 2)}\n"
                                              "  - {says: the sine, output: torch.sin(x)}\n"))
    assert [(m.says, m.output, m.gradients) for m in ex.mistakes] == [
        ("1 + y^2, not 1 - y^2", None, (("x", "grad_output * (1 + out ** 2)"),)), ("the sine", "torch.sin(x)", ())]
    clash = GOOD.replace("name: x", "name: out").replace("tanh(x)", "tanh(out)")
    with pytest.raises(ManifestError, match="an input is named 'out'"):
        load_exercise(write(tmp_path, clash + "mistakes: [{says: s, output: out}]\n"))
    with pytest.raises(ManifestError, match="mistakes: not used by kind: deq"):
        load_exercise(write(tmp_path, GOOD + "kind: deq\nmistakes: [{says: s, output: x}]\n"))


def test_invalid_yaml_gives_a_line(tmp_path):
    with pytest.raises(ManifestError, match="line"):
        load_exercise(write(tmp_path, "id: [unclosed\n"))


def test_duplicate_ids_are_refused(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ManifestError, match="duplicate exercise id 'tanh'"):
        load_catalog([tmp_path])


def test_rubric_with_unknown_exercise(tmp_path, catalog):
    path = write(tmp_path, "points: {forward: 1}\nexercises: [sigmoidd]\n", "r.yaml")
    with pytest.raises(ManifestError, match="did you mean 'sigmoid'"):
        load_rubric(path, catalog)


def test_rubric_with_unknown_check(tmp_path, catalog):
    path = write(tmp_path, "points: {fowrard: 1}\nexercises: [sigmoid]\n", "r.yaml")
    with pytest.raises(ManifestError, match="did you mean 'forward'"):
        load_rubric(path, catalog)


def test_rubric_points_override_per_exercise(tmp_path, catalog):
    path = write(tmp_path, "points: {forward: 1, backward: 2}\n"
                           "exercises: [sigmoid, {id: matvec, points: {backward: 5}}]\n", "r.yaml")
    rubric = load_rubric(path, catalog)
    assert rubric.items[0].points_for("backward") == 2
    assert rubric.items[1].points_for("backward") == 5 and rubric.items[1].points_for("forward") == 1


def test_resolve_rubric_by_name_path_and_default(catalog):
    assert resolve_rubric("lab1", catalog).name == "lab1"
    default = resolve_rubric(None, catalog)
    assert default.only_found and {it.exercise for it in default.items} == EXPECTED | set(KINDS) - {"backprop_formula"}
    with pytest.raises(UsageError, match="unknown rubric 'lab9'"):
        resolve_rubric("lab9", catalog)


def test_select_exercises(catalog):
    rubric = select_exercises(resolve_rubric(None, catalog), ["sigmoid"], catalog)
    assert [it.exercise for it in rubric.items] == ["sigmoid"] and not rubric.only_found
    with pytest.raises(UsageError, match="did you mean 'sigmoid'"):
        select_exercises(rubric, ["sigmod"], catalog)


def test_include_puts_decisive_values_in_every_draw(tmp_path):
    from gradegrad.cases import make_inputs

    ex = load_exercise(write(tmp_path, GOOD.replace("    shape: [4]", "    shape: [2, 3]\n    include: [-1000, 1000]")))
    assert ex.inputs[0].include == (-1000.0, 1000.0)
    for seed in range(5):
        x, = make_inputs(ex, ex.cases[0], seed)
        assert x.reshape(-1)[:2].tolist() == [-1000.0, 1000.0] and x.shape == (2, 3)
        assert x.reshape(-1)[2:].abs().max() < 100  # the rest is drawn from the domain


def test_every_stability_case_holds_its_decisive_values_whatever_the_seed(catalog):
    """Past exp's overflow in float64 (709.8) and float32 (88.7), with both signs."""
    from gradegrad.cases import make_inputs

    exercises = [ex for ex in catalog.values() if any(c.stability for c in ex.cases)]
    assert {ex.id for ex in exercises} >= {"sigmoid", "softmax"}
    for ex in exercises:
        values = {v for c in ex.cases if c.stability for s in c.inputs for v in s.include}
        assert max(values) > 709.8 and min(values) < -709.8, ex.id
        for seed in range(10):
            for case in [c for c in ex.cases if c.stability]:
                x = make_inputs(ex, case, seed)[0]
                assert x.abs().max() >= 1000, (ex.id, case.name, seed)


def test_a_reference_cannot_reach_a_module_beyond_torchs_math(tmp_path):
    """`torch.os.system(...)`: a manifest in a student's repository (named by its gradegrad.toml) used
    to run commands as the grader (root in CI)."""
    from gradegrad.reference import reference_output

    import torch

    ex = load_exercise(write(tmp_path, GOOD.replace("reference: torch.tanh(x)", "reference: torch.os.getcwd() or x")))
    with pytest.raises(ManifestError, match="torch.os is the module os"):
        reference_output(ex, [torch.zeros(4)])
    # nor a class: torch.nn.Linear draws random weights, torch.LongTensor, torch.Generator...
    for made in ("torch.nn.Linear(4, 4)(x)", "torch.Generator().initial_seed() + x"):
        ex = load_exercise(write(tmp_path, GOOD.replace("reference: torch.tanh(x)", f"reference: {made}"), "c.yaml"))
        with pytest.raises(ManifestError, match="is a class, which a reference may not use"):
            reference_output(ex, [torch.zeros(4)])
    eps = load_exercise(write(tmp_path, GOOD.replace("torch.tanh(x)", "x + torch.finfo(x.dtype).eps"), "eps.yaml"))
    assert reference_output(eps, [torch.zeros(4)]).shape == (4,)
    ok = load_exercise(write(tmp_path, GOOD.replace("torch.tanh(x)", "torch.linalg.norm(x) + torch.special.expit(x)"),
                             "ok.yaml"))
    assert reference_output(ok, [torch.zeros(4)]).shape == (4,)
