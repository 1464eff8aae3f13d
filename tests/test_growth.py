"""How memory grows: the fitted exponent, and the verdict against the reference's, on random data."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from gradegrad.growth import FLOOR, Growth, judge, size_text  # noqa: E402

SIZES = (256, 1024, 4096)
PROPERTY = settings(max_examples=80, deadline=None)
powers = st.sampled_from([0, 1, 2, 3])
factors = st.floats(1.0, 64.0)
overheads = st.integers(0, 512)


def grow(k: int, a: float, b: int = 0, sizes=SIZES) -> Growth:
    return Growth(sizes, tuple(int(a * n ** k) + b for n in sizes))


@PROPERTY
@given(powers, factors, overheads)
def test_the_exponent_of_a_power_law_is_found(k, a, b):
    g = grow(k, a, b)
    if g.bytes[-2] >= max(FLOOR, 20 * b):  # a fixed overhead small against the bytes that grow
        assert abs(g.exponent - k) < 0.1


@PROPERTY
@given(powers, factors, factors, overheads)
def test_same_order_as_the_reference_always_passes(k, a, c, b):
    """Any formula of the reference's order passes, whatever its constant factor or overhead."""
    assert judge("backward", grow(k, a * c, b), grow(k, a)) is None


@PROPERTY
@given(st.sampled_from([0, 1, 2]), factors, overheads)
def test_one_order_more_fails_with_the_numbers_a_student_needs(k, a, b):
    student, reference = grow(k + 1, 8 * a, b), grow(k, 8 * a)
    finding = judge("backward", student, reference)
    if student.bytes[-1] > 4 * max(reference.bytes[-1], FLOOR) and student.bytes[-2] >= FLOOR:
        assert finding.code == "inefficient_backward"
        assert f"n^{student.exponent:.2f}" in finding.message and "at n = 4096" in finding.message
        assert size_text(student.bytes[-1]) in finding.message


@PROPERTY
@given(powers, factors)
def test_a_smaller_order_than_the_reference_passes(k, a):
    assert judge("forward", grow(0, a), grow(k, a)) is None


def test_softmax_jacobian_against_the_reference():
    jacobian = Growth(SIZES, tuple(3 * 8 * n * n + 16 * n for n in SIZES))
    reference = Growth(SIZES, tuple(8 * n for n in SIZES))
    finding = judge("backward", jacobian, reference)
    assert finding.code == "inefficient_backward" and "n^2.00" in finding.message and "n^1.00" in finding.message
    assert "384.1 MiB at n = 4096" in finding.message


def test_projection_and_sizes():
    assert grow(2, 1.0).projected(8192) == 4096 ** 2 * 4
    assert Growth((256,), (1000,)).projected(1024) == 4000
    assert [size_text(b) for b in (12, 1536, 3 << 20, 5 << 30)] == ["12 bytes", "1.5 KiB", "3.0 MiB", "5.0 GiB"]
