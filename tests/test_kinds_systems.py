"""Issue 13's kinds one mistake at a time: adjoint ODE, deep equilibrium, Jacobians, training loops,
optional extras, and their manifests."""

import pytest
import torch

from conftest import FIXTURES, check, exercise
from gradegrad.catalog import Tolerance, load_exercise
from gradegrad.errors import ManifestError
from gradegrad.kinds import extras, jacobian, ode

K13 = FIXTURES / "kinds13"
SEEDS = FIXTURES / "seeds"


# --------------------------------------------------------------------------- adjoint ODE


def test_a_true_adjoint_gets_full_marks_with_memory_constant_in_the_steps(graded):
    report = graded(K13 / "ode_right.py", exercises=("ode_adjoint", "ode_linear"), rubric="seed000_seminar")
    for ex_id in ("ode_adjoint", "ode_linear"):
        assert exercise(report, ex_id).score == exercise(report, ex_id).max_score, ex_id
    assert "from steps = 16 to 256" in check(report, "ode_adjoint", "efficiency").message


def test_autograd_through_the_unrolled_loop_fails_efficiency_only(graded):
    report = graded(K13 / "ode_unrolled.py", exercises=("ode_adjoint",), rubric="seed000_seminar")
    failed = [c.id for c in exercise(report, "ode_adjoint").checks if c.status == "failed" and c.max_points]
    assert failed == ["efficiency"]
    result = check(report, "ode_adjoint", "efficiency")
    assert result.diagnosis == "memory_grows_with_steps" and "steps^1.0" in result.message


def test_memory_growth_rule():
    assert ode.judge_memory((16, 64, 256), [400, 400, 400], "steps") is None
    assert ode.judge_memory((16, 64, 256), [4000, 16000, 64000], "steps").code == "memory_grows_with_steps"


# --------------------------------------------------------------------------- deep equilibrium


def test_deq_right_gets_full_marks(graded):
    report = graded(K13 / "deq_right.py", exercises=("deq",), rubric="seed000_seminar")
    assert exercise(report, "deq").score == exercise(report, "deq").max_score


@pytest.mark.parametrize("name,check_id,code", [
    ("deq_untransposed", "backward", "untransposed"),
    ("deq_one_step", "backward", "one_step"),
    ("deq_loose", "forward", "loose_tolerance"),
    ("deq_loose", "backward", "loose_tolerance"),
])
def test_deq_classic_mistakes_are_named(graded, name, check_id, code):
    report = graded(K13 / f"{name}.py", exercises=("deq",), rubric="seed000_seminar")
    assert check(report, "deq", check_id).diagnosis == code


def test_each_deq_mistake_is_recognised_and_the_right_gradient_is_none():
    from gradegrad.kinds import deq, solvers

    gen = torch.Generator().manual_seed(1)
    x, W, v = torch.randn(4, generator=gen, dtype=torch.float64), 0.1 * torch.randn(4, 4, generator=gen, dtype=torch.float64), \
        torch.randn(4, generator=gen, dtype=torch.float64)
    for name, grads in solvers.deq_mistakes(x, W, v).items():
        assert deq.mistake(list(grads), x, W, v) == name
    z = solvers.deq_tanh(x.requires_grad_(), W.requires_grad_())
    assert deq.mistake(list(torch.autograd.grad(z, (x, W), v)), x, W, v) is None


# --------------------------------------------------------------------------- Jacobians


def test_jacobian_orientation_transpose_and_retain_graph_are_named(graded):
    report = graded(SEEDS / "seed003_loop_bugs.py", rubric="seed002_beyond", exercises=("jacobian",))
    assert check(report, "jacobian", "forward").diagnosis == "transposed"
    assert "expected 2×3: one row per output" in check(report, "jacobian", "forward").message
    loop = graded(SEEDS / "seed003_loop_bugs.py", rubric="seed003_lab2", exercises=("jacobian_loop",))
    assert check(loop, "jacobian_loop", "forward").diagnosis == "retain_graph"


def test_the_square_case_tells_j_from_its_transpose_and_accumulation():
    x = jacobian.point(0, "jacobian", "square")
    J = jacobian.expected("square", x, "m_by_n")
    assert not torch.allclose(J, J.T)
    assert torch.allclose(J, torch.func.jacfwd(jacobian.FUNCTIONS["square"][0])(x))
    tol = Tolerance(1e-5, 1e-6)
    assert jacobian.diagnose(J.T, J, "m_by_n", tol).code == "transposed"
    assert jacobian.diagnose(J.cumsum(0), J, "m_by_n", tol).code == "accumulated_gradients"
    assert jacobian.diagnose(J.T.float(), J.T, "n_by_m", tol) is None


# --------------------------------------------------------------------------- training loops


def test_an_optimizer_that_climbs_the_gradient_is_named(graded, tmp_path):
    path = tmp_path / "climbs.py"
    path.write_text("def optim_SGD(grads, learning_rate=1e-2):\n    return [learning_rate * g.sum(0) for g in grads]\n\n"
                    "def update_params(updates, params):\n    return [p + u for p, u in zip(params, updates)]\n")
    report = graded(path, rubric="seed002_autodiff", exercises=("optim_sgd",))
    assert check(report, "optim_sgd", "forward").diagnosis == "sign_error"
    assert check(report, "optim_sgd", "training").diagnosis == "wrong_losses"


def test_a_missing_update_params_is_named(graded, tmp_path):
    path = tmp_path / "no_update.py"
    path.write_text("def optim_SGD(grads, learning_rate=1e-2):\n    return [-learning_rate * g.sum(0) for g in grads]\n")
    report = graded(path, rubric="seed002_autodiff", exercises=("optim_sgd",))
    assert "no function update_params" in check(report, "optim_sgd", "training").message


# --------------------------------------------------------------------------- optional extras


def test_an_exercise_whose_extra_is_missing_is_unavailable_and_not_counted(graded, monkeypatch, catalog):
    from pathlib import Path

    from gradegrad.catalog import resolve_rubric, select_exercises
    from gradegrad.grading import grade
    from gradegrad.options import Options

    monkeypatch.setattr(extras, "_found", lambda module: module != "torchdiffeq")
    rubric = select_exercises(resolve_rubric("seed000_seminar", catalog), ["matvec", "ode_field"], catalog)
    report = grade(Path(SEEDS / "seed001_backprop.py"), rubric, catalog, Options())
    ex = exercise(report, "ode_field")
    assert ex.status == "unavailable" and ex.max_score == 0
    assert "pip install 'gradegrad[ode]'" in ex.hint and "torchdiffeq" in ex.hint
    assert report.max_score == exercise(report, "matvec").max_score


def test_an_import_of_a_missing_extra_says_which_to_install():
    from gradegrad.grading import _load_message

    error = {"kind": "exception", "type": "ModuleNotFoundError", "message": "No module named 'torchdiffeq'"}
    assert "pip install 'gradegrad[ode]'" in _load_message(error)
    assert extras.extra_for_module("haiku") == "jax"


# --------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("text,field,words", [
    ("kind: ode\nclass: O\nreference: y0\nmemory: {input: y0}\ninputs:\n  - name: y0\n    shape: [2]\n",
     "memory.input", "expected an int input"),
    ("kind: jacobian\nclass: j\norientation: columns\n", "orientation", "expected one of m_by_n, n_by_m"),
    ("kind: training\nclass: t\nloop: adam\n", "loop", "expected one of numpy_sgd, torch_sgd, haiku_optax"),
    ("kind: training\nclass: t\nloop: numpy_sgd\nepochs: 0\n", "epochs", "between 1 and 100"),
    ("class: k\nextra: tensorflow\nreference: x\ninputs:\n  - name: x\n    shape: [2]\n", "extra",
     "expected one of jax, ode"),
    ("kind: ode_field\nclass: F\nreference: -y\ntimes: [1, 0, 5]\ninputs:\n  - name: y\n    shape: [2]\n", "times",
     "end > start"),
    ("class: k\nwraps: false\nreference: x\ninputs:\n  - name: x\n    shape: [2]\n", "wraps", "not used by kind: function"),
])
def test_new_kind_fields_are_validated(tmp_path, text, field, words):
    path = tmp_path / "k.yaml"
    path.write_text("id: k\nteaches: t\n" + text)
    with pytest.raises(ManifestError) as err:
        load_exercise(path)
    assert err.value.field == field and words in err.value.problem


def test_list_shows_the_new_exercises_with_their_kinds():
    from typer.testing import CliRunner

    from gradegrad.cli import app

    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for ex_id, kind in (("ode_adjoint", "ode"), ("deq", "deq"), ("jacobian", "jacobian"), ("optim_sgd", "training"),
                        ("jax_dot", "jax_vjp"), ("ode_field", "ode_field")):
        line = next(line for line in result.output.splitlines() if line.split()[:1] == [ex_id])
        assert kind in line.split()[1], line
