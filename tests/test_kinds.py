"""The exercise kinds beyond autograd Functions, graded end to end on right and wrong submissions."""

from pathlib import Path

import pytest

from conftest import FIXTURES, check, exercise
from gradegrad.catalog import load_exercise
from gradegrad.errors import ManifestError
from gradegrad.kinds.chain import chain_data, reference_run

KINDS = FIXTURES / "instructor" / "kinds"


# --------------------------------------------------------------------------- module


def test_seed_modules_get_full_marks_and_each_class_its_own_exercise(graded):
    report = graded(KINDS / "modules_right.py", rubric="modules")
    assert report.passed and report.score == report.max_score == 28
    # ParamReLU_Fun (a Function) and ParamReLU (a Module): each exercise gets the class of its kind
    assert exercise(report, "param_relu").class_name == "ParamReLU_Fun"
    assert exercise(report, "param_relu_module").class_name == "ParamReLU"
    assert check(report, "leaky_relu_module", "wraps_function").message == "the output comes from LeakyReLU_Fun"


def test_module_built_from_builtin_ops_fails_wraps_function_only(graded):
    report = graded(KINDS / "modules_wrong.py", rubric="modules")
    ex = exercise(report, "leaky_relu_module")
    assert ex.status == "passed" and ex.score == ex.max_score == 6  # a flag: shown, worth no points
    flagged = check(report, "leaky_relu_module", "wraps_function")
    assert flagged.status == "failed" and flagged.max_points == 0
    assert flagged.diagnosis == "builtin_output" and "MaximumBackward0, a built-in operation" in flagged.message


def test_module_that_ignores_its_constructor_argument_fails_forward(graded):
    report = graded(KINDS / "modules_wrong.py", rubric="modules")
    forward = check(report, "param_relu_module", "forward")
    assert forward.status == "failed" and "case 'alpha_0.1'" in forward.message
    assert check(report, "param_relu_module", "wraps_function").status == "passed"


def test_module_manifest_init_must_name_a_scalar_input(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("id: m\nkind: module\nclass: M\nteaches: t\nreference: x * 2\ninit: [x]\n"
                    "inputs:\n  - name: x\n    shape: [3]\n")
    with pytest.raises(ManifestError, match="'x' is not a float/int input") as err:
        load_exercise(path)
    assert err.value.field == "init"


# --------------------------------------------------------------------------- vjp and chain


def test_seed_vjp_functions_and_chain_get_full_marks(graded):
    report = graded(KINDS / "autodiff_right.py", rubric="autodiff")
    assert report.passed and report.score == report.max_score == 34
    assert [c.id for c in exercise(report, "vjp_dot").checks] == ["found", "forward", "backward", "float32"]
    assert [c.id for c in exercise(report, "backward_diff_chain").checks] == ["found", "forward", "backward", "training"]


@pytest.mark.parametrize("ex_id,check_id,code,words", [
    ("vjp_add", "float32", "wrong_dtype", "the gradient of `b` is float64 for float32 arrays"),
    ("vjp_dot", "backward", "scale_error", "the gradient of `W` is 2 times the expected value"),
    ("vjp_squared_loss", "backward", "sign_error", "the gradient of `y_pred` has the wrong sign"),
    ("backward_diff_chain", "backward", "missing_gradient", "returned None as grad_x"),
    ("backward_diff_chain", "training", "wrong_losses", "the loss after 1 SGD step(s) is"),
])
def test_wrong_functional_code_is_diagnosed(graded, ex_id, check_id, code, words):
    report = graded(KINDS / "autodiff_wrong.py", rubric="autodiff")
    result = check(report, ex_id, check_id)
    assert result.status == "failed" and result.diagnosis == code and words in result.message
    assert check(report, ex_id, "forward").status == "passed"


SQUARED_LOSS = """import numpy as np

def squared_loss(y_pred, y):
    return np.array([np.sum((y - y_pred) ** 2)])

def squared_loss_make_vjp(y_pred, y):
    def vjp(u):
        return {grad}, np.zeros_like(y)
    return vjp

squared_loss.make_vjp = squared_loss_make_vjp
"""


@pytest.mark.parametrize("grad,code,words", [
    ("y_pred - y", "scale_error", "0.5 times the expected value"),  # the 2 forgotten: the same on every case
    ("2 * (y_pred - y) / len(y)", "wrong_values", "0.1667 times the expected value in case 'default' but 0.1 "
     "times in case 'batch10'"),  # a mean where the loss sums: the factor follows the batch
])
def test_a_vjp_scale_error_is_named_only_with_the_same_factor_on_every_case(graded, tmp_path, grad, code, words):
    path = tmp_path / "loss.py"
    path.write_text(SQUARED_LOSS.format(grad=grad))
    result = check(graded(path, rubric="autodiff"), "vjp_squared_loss", "backward")
    assert result.status == "failed" and result.diagnosis == code and words in result.message


def test_vjp_without_make_vjp_is_not_found(graded, tmp_path):
    path = tmp_path / "no_vjp.py"
    path.write_text("import numpy as np\n\ndef dot(x, W):\n    return np.dot(x, W)\n")
    report = graded(path, rubric="autodiff")
    found = check(report, "vjp_dot", "found")
    assert found.diagnosis == "no_make_vjp" and "dot.make_vjp = dot_make_vjp" in found.message
    assert exercise(report, "vjp_add").status == "missing" and "no function add" in exercise(report, "vjp_add").checks[0].message


def test_the_chain_reference_reproduces_the_course_notes_losses():
    losses, grads = reference_run(chain_data(0), 3, 0.01)
    assert [round(x, 2) for x in losses] == [110.29, 17.18, 15.48]
    assert [tuple(g.shape) for g in grads] == [(30, 2), (2, 1), (1,)]


def test_vjp_manifest_takes_exactly_two_arrays(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("id: v\nkind: vjp\nclass: f\nteaches: t\nreference: x\ninputs:\n  - name: x\n    shape: [3]\n")
    with pytest.raises(ManifestError, match="two arrays f\\(x, p\\)"):
        load_exercise(path)


@pytest.mark.parametrize("text,field,words", [
    ("kind: chain\nclass: k\nsteps: 0\n", "steps", "between 1 and 100"),
    ("kind: chain\nclass: k\nreference: x\n", "reference", "not used by kind: chain"),
    ("class: k\nupstream: none\nreference: x\ninputs:\n  - name: x\n    shape: [2]\n", "upstream",
     "not used by kind: function"),
    ("kind: formula\nvariables: 12\n", "variables", "between 2 and 9"),
    ("kind: formula\nclass: F\n", "class", "not used by kind: formula"),
    ("kind: modul\n", "kind", "expected one of function, module, vjp, chain, formula"),
])
def test_kind_fields_are_validated(tmp_path, text, field, words):
    path = tmp_path / "k.yaml"
    path.write_text("id: k\nteaches: t\n" + text)
    with pytest.raises(ManifestError) as err:
        load_exercise(path)
    assert err.value.field == field and words in err.value.problem


# --------------------------------------------------------------------------- starter stubs score 0


@pytest.mark.parametrize("rubric", ["all", "modules", "autodiff", "seed000_seminar", "seed002_beyond", "seed003_lab2"])
def test_an_untouched_template_scores_zero_without_crashing(catalog, tmp_path, rubric):
    """Graded as `check` grades it: where an optional extra is missing, the starter's `import jax`
    fails and the file is run statement by statement."""
    from gradegrad.batch import grade_source
    from gradegrad.catalog import resolve_rubric
    from gradegrad.intake import source_for
    from gradegrad.options import Options
    from gradegrad.template import starter

    path = tmp_path / f"starter_{rubric}.py"
    path.write_text(starter(resolve_rubric(rubric, catalog), catalog))
    report = grade_source(source_for(path), resolve_rubric(rubric, catalog), catalog, Options())
    scored = [(e.id, c.id, c.status, c.message[:200]) for e in report.exercises for c in e.checks if c.points]
    assert report.error is None and report.score == 0 and report.max_score > 0, scored
    graded_here = [e for e in report.exercises if e.status != "unavailable"]  # an optional extra may be missing
    assert {e.status for e in graded_here} == {"error"}
    assert all(e.checks[0].diagnosis == "not_implemented" for e in graded_here)
    assert Path(path).read_text().count("raise NotImplementedError") >= len(report.exercises)
