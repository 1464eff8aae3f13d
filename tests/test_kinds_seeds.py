"""Issue 13: the four seeds' own code (notebooks and extracted files) under a rubric per seed lab."""

import json

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES, check, exercise
from gradegrad.catalog import EXTRAS
from gradegrad.cli import app
from gradegrad.kinds import extras
from gradegrad.kinds.chain import chain_data
from gradegrad.kinds.training import replay
from gradegrad.report import Report

SEEDS = FIXTURES / "seeds"
HAS_JAX = all(extras._found(m) for m in EXTRAS["jax"])
HAS_ODE = all(extras._found(m) for m in EXTRAS["ode"])
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="needs the jax extra (pip install 'gradegrad[jax]')")
needs_ode = pytest.mark.skipif(not HAS_ODE, reason="needs the ode extra (pip install 'gradegrad[ode]')")

_NOTEBOOKS: dict[tuple, Report] = {}


def notebook(path, rubric: str, tmp_path_factory) -> Report:
    """A notebook graded as a user does it (`gradegrad check NB.ipynb --rubric R --json F`), once."""
    key = (str(path), rubric)
    if key not in _NOTEBOOKS:
        out = tmp_path_factory.mktemp("nb") / "report.json"
        CliRunner().invoke(app, ["check", str(path), "--rubric", rubric, "--json", str(out)])
        _NOTEBOOKS[key] = Report.from_dict(json.loads(out.read_text()))
    return _NOTEBOOKS[key]


SEED002_LOSSES = [110.2900527, 17.17577308, 15.48445439, 14.27434616, 13.16495088, 12.14630386, 11.21068817,
                  10.35106573, 9.56101153, 8.83465916]  # printed by the notes' NumPy loop


def test_the_replay_matches_the_losses_and_parameters_the_notes_print():
    losses, _, (w, b) = replay(0, 10, 0.01)
    assert losses == pytest.approx(SEED002_LOSSES, rel=1e-8)
    assert [round(float(v), 6) for v in w.reshape(-1)] == [1.626981, -1.091958]
    assert round(float(b[0]), 6) == 0.121909
    assert tuple(chain_data(0)[0].shape) == (30, 2)


@needs_jax
def test_seed002_notebook_gets_full_marks_and_its_printed_losses(tmp_path_factory):
    report = notebook(SEEDS / "seed002_autodiff.ipynb", "seed002_autodiff", tmp_path_factory)
    assert report.error is None and report.score == report.max_score == 38
    message = check(report, "optim_sgd", "training").message
    assert "110.29 ... 8.83466" in message
    assert "loss [8.83465916]" in report.output.stdout  # what the notebook printed, shown as it was


def test_a_chain_that_sums_the_per_example_gradients_gets_full_marks(graded, tmp_path):
    text = (SEEDS / "seed002_autodiff.py").read_text().split("import jax")[0]
    path = tmp_path / "chain_sums.py"
    path.write_text(text.replace("J[k] = vjp_param", "J[k] = vjp_param.sum(0)"))
    report = graded(path, rubric="seed002_autodiff")
    ex = exercise(report, "backward_diff_chain")
    assert ex.score == ex.max_score == 9 and check(report, "backward_diff_chain", "training").status == "passed"


@needs_ode
def test_seed000_notebook_full_marks_on_what_it_implements_and_the_softmax_placeholder_named(tmp_path_factory):
    report = notebook(SEEDS / "seed000_seminar.ipynb", "seed000_seminar", tmp_path_factory)
    assert report.error is None
    for ex_id in ("matvec", "dropout", "ode_field"):
        assert exercise(report, ex_id).status == "passed", ex_id
    assert check(report, "softmax", "backward").diagnosis == "placeholder"
    assert {exercise(report, e).status for e in ("conv1d", "ode_adjoint", "deq")} == {"missing"}


def test_seed001_composition_dot_and_its_functions(graded):
    report = graded(SEEDS / "seed001_backprop.py", rubric="seed001_backprop")
    for ex_id in ("add", "mul", "sum", "sigmoid", "dot"):
        ex = exercise(report, ex_id)
        assert ex.status == "passed" and ex.score == ex.max_score, ex_id
    assert exercise(report, "dot").class_name == "dot"
    assert check(report, "dot", "hand_written").status == "passed"  # its backwards are the student's own


def test_seed001_dot_without_rubric_is_the_function_exercise_not_vjp_dot(graded):
    report = graded(SEEDS / "seed001_backprop.py")
    assert "vjp_dot" not in {e.id for e in report.exercises}
    assert exercise(report, "dot").status == "passed"


def test_a_dot_composed_of_builtin_ops_is_refused_with_the_op_named(graded):
    report = graded(SEEDS / "seed001_dot_builtin.py", rubric="seed001_backprop", exercises=("dot",))
    backward = check(report, "dot", "backward")
    assert backward.status == "error" and "DotBackward0, built-in operations" in backward.message


def test_seed003_notebook_modules_loop_and_the_saved_tensors_bug_named(tmp_path_factory):
    report = notebook(SEEDS / "seed003_lab2.ipynb", "seed003_lab2", tmp_path_factory)
    for ex_id in ("leaky_relu_nn", "param_relu", "param_relu_module", "jacobian_loop"):
        ex = exercise(report, ex_id)
        assert ex.status == "passed" and ex.score == ex.max_score, ex_id
    for ex_id in ("leaky_relu", "leaky_relu_module"):
        assert check(report, ex_id, "backward").diagnosis == "unpacked_saved_tensors"
    assert "input_, = ctx.saved_tensors" in check(report, "leaky_relu", "backward").message


def test_a_lone_seed003_module_goes_to_its_module_exercise(graded):
    report = graded(SEEDS / "seed003_lone_module.py")
    assert [(e.id, e.status) for e in report.exercises] == [("leaky_relu_nn", "passed")]
    assert report.score == report.max_score


@needs_jax
def test_seed002_beyond_jax_torch_and_jacobian_get_full_marks(graded):
    report = graded(SEEDS / "seed002_beyond.py", rubric="seed002_beyond")
    assert report.error is None and report.score == report.max_score == 44
    import sys

    assert not [m for m in sys.modules if m.split(".")[0] in ("jax", "haiku", "optax")]  # only the child imports JAX
    assert "gradegrad" not in report.output.stderr  # gradegrad's own warnings are not the student's output


JAX_DOT = """import jax
import jax.numpy as jnp
jax.config.update("jax_enable_x64", True)

@jax.custom_vjp
def dot(x, W):
    return jnp.dot(x, W)

def dot_fwd(x, W):
    return jnp.dot(x, W), (x, W)

def dot_bwd(res, u):
    x, W = res
    return jnp.dot(u, W.T), {grad_w}

dot.defvjp(dot_fwd, dot_bwd)
"""


@needs_jax
@pytest.mark.parametrize("grad_w,code,words", [
    ("2 * jnp.dot(x.T, u)", "scale_error", "the gradient of `W` is 2 times the expected value"),
    ("jnp.dot(x.T, u) / x.shape[0]", "wrong_values", "0.1667 times the expected value in case 'default' but 0.2 "
     "times in case 'wide'"),  # a mean over the batch where the product sums: the factor follows the batch
])
def test_a_jax_scale_error_is_named_only_with_the_same_factor_on_every_case(graded, tmp_path, grad_w, code, words):
    path = tmp_path / "jdot.py"
    path.write_text(JAX_DOT.format(grad_w=grad_w))
    result = check(graded(path, rubric="seed002_beyond"), "jax_dot", "backward")
    assert result.status == "failed" and result.diagnosis == code and words in result.message
