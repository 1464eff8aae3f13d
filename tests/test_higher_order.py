"""`double_backward` and `jvp`: optional checks a rubric enables; verdicts computed in the grader."""

import pytest
import torch

from conftest import FIXTURES, check, exercise
from gradegrad.cases import make_inputs
from gradegrad.checks.higher_order import reference_second_order, reference_tangent

HIGHER = FIXTURES / "higher_order"


@pytest.fixture(scope="module")
def report(graded):
    return graded(HIGHER / "forward_mode.py", rubric=str(HIGHER / "higher.yaml"))


@pytest.mark.parametrize("ex_id", ["sigmoid", "softmax", "linear"])
def test_right_jvp_and_differentiable_backward_pass(report, ex_id):
    assert exercise(report, ex_id).status == "passed"
    assert "computed in the grader" in check(report, ex_id, "jvp").message
    assert "computed in the grader" in check(report, ex_id, "double_backward").message


@pytest.mark.parametrize("ex_id,code,words", [
    ("exp", "ignores_tangent", "multiply by the tangents"),
    ("mul", "sign_error", "wrong sign"),
    ("sum", "missing_jvp", "Sum has no jvp staticmethod"),
])
def test_jvp_mistakes_are_named(report, ex_id, code, words):
    found = check(report, ex_id, "jvp")
    assert found.status == "failed" and found.diagnosis == code and words in found.message
    assert found.message.startswith("jvp") or "jvp" in found.message


def test_intermediate_saved_in_forward_breaks_double_backward(report):
    found = check(report, "mse_loss", "double_backward")
    assert found.status == "failed" and found.diagnosis == "not_differentiable"
    assert "`pred`" in found.message and "ctx.save_for_backward" in found.message
    assert check(report, "mse_loss", "backward").status == "passed"


def test_detached_gradients_are_not_differentiable(report):
    found = check(report, "dot", "double_backward")
    assert found.diagnosis == "not_differentiable" and "no grad_fn" in found.message and ".detach()" in found.message


def test_builtin_rubrics_leave_them_out(graded):
    from conftest import EXAMPLES
    ids = {c.id for e in graded(EXAMPLES / "complete.py").exercises for c in e.checks}
    assert not ids & {"double_backward", "jvp"}


def test_reference_second_order_of_sigmoid(catalog):
    ex = catalog["sigmoid"]
    (x,) = make_inputs(ex, ex.cases[0], 0)
    v, u = torch.full_like(x, 2.0), torch.full_like(x, 0.5)
    second = reference_second_order(ex, [x], v, [u])
    y = torch.sigmoid(x)
    assert torch.allclose(second[0], v * u * y * (1 - y) * (1 - 2 * y))  # d/dx <v y(1-y), u>
    assert torch.allclose(second[1], u * y * (1 - y))  # d/dv


def test_reference_tangent_of_matvec(catalog):
    ex = catalog["matvec"]
    A, x = make_inputs(ex, ex.cases[0], 0)
    tA, tx = torch.ones_like(A), torch.ones_like(x)
    assert torch.allclose(reference_tangent(ex, [A, x], [tA, tx]), tA @ x + A @ tx)
