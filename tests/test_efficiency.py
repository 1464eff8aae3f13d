"""The `efficiency` check: the kernel's count of the evaluator's memory at the largest size, against
the reference's; a Jacobian-building backward fails, O(n) formulas pass."""

from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES, check, exercise
from gradegrad.catalog import load_exercise
from gradegrad.checks.efficiency import _fault, ctx_hint, sized_case
from gradegrad.errors import ManifestError
from gradegrad.evaluation import Fault
from gradegrad.growth import FLOOR

EFFICIENCY = FIXTURES / "efficiency"
ENABLED = ("softmax", "matvec", "dot", "conv1d", "linear", "cross_entropy")


def test_jacobian_softmax_fails_with_the_memory_the_kernel_counted(graded):
    report = graded(EFFICIENCY / "jacobian.py")
    soft = check(report, "softmax", "efficiency")
    assert soft.status == "failed" and soft.diagnosis == "inefficient_backward"
    assert "backward used more memory at n = 4096 than the 16.0 MiB allowed, as the kernel counted it" in soft.message
    assert "the reference allocates 32.0 KiB" in soft.message and "full Jacobian" in soft.message
    # its values are right: only the efficiency check fails
    assert [c.id for c in exercise(report, "softmax").checks if c.status == "failed"] == ["efficiency"]


@pytest.mark.parametrize("ex_id", ["dot", "conv1d", "cross_entropy"])
def test_other_jacobian_backwards_fail(graded, ex_id):
    """cross_entropy's Jacobians (3 x 512 MiB at n = 4096) are measured whole, within --memory."""
    found = check(graded(EFFICIENCY / "jacobian.py"), ex_id, "efficiency")
    assert found.status == "failed" and found.diagnosis == "inefficient_backward"


def test_complete_submission_passes_and_says_so_in_the_same_words_every_run(graded):
    report = graded(EXAMPLES / "complete.py")
    for ex_id in ENABLED:
        found = check(report, ex_id, "efficiency")
        assert found.status == "passed" and found.max_points == 1, (ex_id, found.message)
        assert "as the kernel counted it" in found.message and "forward within 16.0 MiB" in found.message
        assert "used" not in found.message  # the kernel's count moves by pages: not in the report


def test_a_correct_backward_uses_far_less_than_the_floor(catalog):
    """The margin: what the kernel counts for an O(n) softmax at n = 4096 is far below 16 MiB."""
    from gradegrad.checks.efficiency import _reference_at
    from gradegrad.evaluation import Runner
    from gradegrad.sandbox.remote import Submission

    ex = catalog["softmax"]
    ref = _reference_at(ex, 4096, 0)
    with Submission(EXAMPLES / "complete.py") as sub:
        sub.load()
        Runner(sub, ex, "Softmax", 0, 60.0).evaluate(ex.cases[0])  # the warm-up the check does
        got = sub.measure("Softmax", ref.args, [True], ref.grad_output, ref.probes, timeout=60)
    assert got.forward_bytes < FLOOR / 4 and got.backward_bytes < FLOOR / 4, got
    assert got.projections[0] == pytest.approx(ref.projections[0], abs=1e-6 * ref.scales[0])


def test_only_exercises_with_an_efficiency_block_are_checked(graded):
    report = graded(EXAMPLES / "complete.py")
    for ex in report.exercises:
        assert any(c.id == "efficiency" for c in ex.checks) == (ex.id in ENABLED), ex.id


def test_tensor_kept_on_ctx_is_a_hint_not_a_failure(graded):
    found = check(graded(EFFICIENCY / "stashed.py"), "softmax", "efficiency")
    assert found.status == "passed" and "Hint: ctx.y holds a tensor" in found.message
    assert "ctx.save_for_backward" in found.message


def test_forward_that_stores_the_jacobian_fails(graded):
    found = check(graded(EFFICIENCY / "forward_jacobian.py"), "softmax", "efficiency")
    assert found.status == "failed" and found.diagnosis == "inefficient_forward"
    assert "forward used more memory at n = 4096" in found.message


# ----------------------------------------------------------------------------- units


def test_running_out_of_memory_is_a_failure_other_faults_are_errors():
    assert _fault(Fault("memory", "memory limit"), 4096, 65536).diagnosis == "inefficient_backward"
    stopped = Fault("crash", "memory limit: the submission's processes together used more than 1 GiB and were stopped")
    assert _fault(stopped, 4096, 65536).diagnosis == "inefficient_backward"
    assert _fault(Fault("exception", "ValueError: no"), 256, 1).status == "error"


def test_ctx_hint_names_the_attributes():
    assert ctx_hint(()) == ""
    assert "ctx.a and ctx.b hold tensors" in ctx_hint(("a", "b"))


def test_sized_case_grows_only_the_named_inputs(catalog):
    case = sized_case(catalog["conv1d"], 1024)
    assert [s.shape for s in case.inputs] == [(1024,), (3,)]
    assert [s.shape for s in sized_case(catalog["cross_entropy"], 300).inputs] == [(4, 300), (4,)]


# ----------------------------------------------------------------------------- manifests

BASE = """
id: tanh
class: Tanh
teaches: tanh's derivative is 1 - y^2.
reference: torch.tanh(x)
inputs:
  - name: x
    shape: [4]
  - name: k
    kind: float
    value: 1.0
"""


def load(tmp_path: Path, block: str):
    path = tmp_path / "ex.yaml"
    path.write_text(BASE + block)
    return load_exercise(path)


def test_efficiency_block_loads(tmp_path):
    ex = load(tmp_path, "efficiency: {sizes: [100, 400], inputs: {x: [n, 3]}}\n")
    assert ex.efficiency.sizes == (100, 400) and ex.efficiency.shape("x", 7) == (7, 3)
    assert ex.efficiency.shape("k", 7) is None
    assert load(tmp_path, "efficiency: {inputs: {x: [n]}}\n").efficiency.sizes == (256, 1024, 4096)
    assert load(tmp_path, "").efficiency is None


@pytest.mark.parametrize("block,field,words", [
    ("efficiency: {sizes: [400, 100], inputs: {x: [n]}}", "efficiency.sizes", "increasing"),
    ("efficiency: {sizes: [100], inputs: {x: [n]}}", "efficiency.sizes", "at least two"),
    ("efficiency: {inputs: {z: [n]}}", "efficiency.inputs.z", "no such tensor input"),
    ("efficiency: {inputs: {k: [n]}}", "efficiency.inputs.k", "no such tensor input"),
    ("efficiency: {inputs: {x: [m]}}", "efficiency.inputs.x", "integers and n"),
    ("efficiency: {inputs: {x: [4]}}", "efficiency.inputs", "must contain n"),
    ("efficiency: {size: [1, 2], inputs: {x: [n]}}", "efficiency.size", "did you mean 'sizes'"),
])
def test_efficiency_mistakes_name_the_field(tmp_path, block, field, words):
    with pytest.raises(ManifestError) as err:
        load(tmp_path, block + "\n")
    assert err.value.field == field and words in err.value.problem
