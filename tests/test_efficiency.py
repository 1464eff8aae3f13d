"""The `efficiency` check: a Jacobian-building backward fails with its growth; O(n) formulas pass."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import EXAMPLES, FIXTURES, check, exercise
from gradegrad.catalog import load_exercise
from gradegrad.checks.efficiency import Point, Stop, _fault, _one_size, _stop_before, ctx_hint, sized_case
from gradegrad.errors import ManifestError
from gradegrad.evaluation import Fault

EFFICIENCY = FIXTURES / "efficiency"
ENABLED = ("softmax", "matvec", "dot", "conv1d", "linear", "cross_entropy")


def exponent(message: str, phase: str = "backward") -> float:
    return float(re.search(rf"{phase} allocates memory that grows as n\^([\d.]+)", message).group(1))


def test_jacobian_softmax_fails_with_its_growth_exponent_and_bytes(graded):
    report = graded(EFFICIENCY / "jacobian.py")
    soft = check(report, "softmax", "efficiency")
    assert soft.status == "failed" and soft.diagnosis == "inefficient_backward"
    assert 1.9 < exponent(soft.message) < 2.1 and "the reference's grows as n^1.00" in soft.message
    assert "384.0 MiB at n = 4096" in soft.message and "full Jacobian" in soft.message
    # its values are right: only the efficiency check fails
    assert [c.id for c in exercise(report, "softmax").checks if c.status == "failed"] == ["efficiency"]


@pytest.mark.parametrize("ex_id", ["dot", "conv1d", "cross_entropy"])
def test_other_jacobian_backwards_fail(graded, ex_id):
    found = check(graded(EFFICIENCY / "jacobian.py"), ex_id, "efficiency")
    assert found.status == "failed" and found.diagnosis == "inefficient_backward" and exponent(found.message) > 1.9


def test_memory_cap_stops_before_the_largest_size_and_says_so(graded):
    found = check(graded(EFFICIENCY / "jacobian.py"), "cross_entropy", "efficiency")
    assert "Measured up to n = 1024: n = 4096 would allocate about" in found.message


def test_complete_submission_passes_with_a_margin(graded):
    report = graded(EXAMPLES / "complete.py")
    for ex_id in ENABLED:
        found = check(report, ex_id, "efficiency")
        assert found.status == "passed" and found.max_points == 1, (ex_id, found.message)
        mine, ref = map(float, re.search(r"backward allocates .* grows as n\^([\d.]+) \(the reference: n\^([\d.]+)\)",
                                         found.message).groups())
        assert mine <= ref + 0.1, (ex_id, found.message)


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
    assert 1.9 < exponent(found.message, "forward") < 2.1


# ----------------------------------------------------------------------------- units


def ctx_with(memory=4 << 30, remaining=30.0):
    runner = SimpleNamespace(sub=SimpleNamespace(limits=SimpleNamespace(memory=memory)), remaining=lambda: remaining)
    return SimpleNamespace(runner=runner)


def quadratic(n):
    return Point(n, 8 * n, 96 * n * n, 8 * n, 8 * n, 8 * n, seconds=0.01)


def test_projected_memory_stops_the_next_size():
    stop = _stop_before(ctx_with(), [quadratic(256), quadratic(1024)], 4096)
    assert stop is not None and stop.memory and stop.reason == "n = 4096 would allocate about 1.5 GiB"
    assert _stop_before(ctx_with(memory=None), [quadratic(256)], 1024) is None


def test_a_lower_memory_limit_lowers_the_cap():
    stop = _stop_before(ctx_with(memory=256 << 20), [quadratic(256), quadratic(1024)], 4096)
    assert stop.memory and "would allocate" in stop.reason


def test_time_budget_stops_the_next_size():
    stop = _stop_before(ctx_with(remaining=0.05), [quadratic(64)], 256)
    assert stop is not None and not stop.memory and "time budget" in stop.reason


def test_single_size_far_beyond_the_reference_fails_else_is_not_run():
    stop = Stop("n = 1024 would allocate about 9.0 GiB", True)
    huge = Point(256, 0, 64 << 20, 2048, 2048, 2048)
    assert _one_size(huge, stop).diagnosis == "inefficient_backward"
    modest = Point(256, 0, 64 << 10, 2048, 2048, 2048)
    verdict = _one_size(modest, stop)
    assert verdict.status == "error" and "--memory" in verdict.message


def test_running_out_of_memory_is_a_failure_other_faults_are_errors():
    assert _fault(Fault("memory", "memory limit"), 4096, 65536).diagnosis == "inefficient_backward"
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
