"""The efficiency pass rule: memory the kernel counted, against the reference's bytes, on random data."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from gradegrad.growth import FACTOR, FLOOR, allowance, judge, size_text  # noqa: E402

PROPERTY = settings(max_examples=80, deadline=None)
sizes = st.sampled_from([256, 1024, 4096])
reference_bytes = st.integers(0, 64 << 20)
noise = st.integers(0, FLOOR)


@PROPERTY
@given(reference_bytes, st.floats(0.0, FACTOR), st.integers(0, 1 << 20), sizes)
def test_the_reference_order_with_more_temporaries_passes(reference, times, inputs, n):
    """A formula of the reference's order allocating up to FACTOR times its bytes always passes."""
    assert judge("backward", int(times * reference), reference, inputs, n) is None


@PROPERTY
@given(noise, reference_bytes, sizes)
def test_noise_below_the_floor_never_fails(used, reference, n):
    assert judge("forward", used, reference, 0, n) is None


@PROPERTY
@given(reference_bytes, st.integers(1, 1 << 30), sizes)
def test_beyond_the_allowance_fails_with_the_numbers_a_student_needs(reference, extra, n):
    used = allowance(reference, 0) + extra
    finding = judge("backward", used, reference, 0, n, "cgroup v1 peak")
    assert finding.code == "inefficient_backward" and "(cgroup v1 peak)" in finding.message
    assert f"more memory at n = {n} than the {size_text(allowance(reference, 0))} allowed" in finding.message
    assert size_text(reference) in finding.message and "full Jacobian" in finding.message
    assert finding == judge("backward", used + extra % 4096, reference, 0, n, "cgroup v1 peak")  # the same report


@PROPERTY
@given(st.integers(0, 1 << 20), st.integers(0, 64 << 20))
def test_the_inputs_bytes_count_where_larger_than_the_reference(reference, inputs):
    assert allowance(reference, inputs) == max(FLOOR, FACTOR * max(reference, inputs))


def test_softmax_jacobian_against_the_reference():
    n = 4096
    finding = judge("backward", 3 * 8 * n * n + 16 * n, 8 * n, 8 * n, n)
    assert finding.code == "inefficient_backward" and "than the 16.0 MiB allowed" in finding.message
    assert "the reference allocates 32.0 KiB" in finding.message and "n x n matrix of float64 is 128.0 MiB" in finding.message
    assert judge("backward", 4 * 8 * n, 8 * n, 8 * n, n) is None  # an O(n) formula, a few temporaries


def test_a_forward_that_builds_a_matrix_is_told_what_to_save():
    finding = judge("forward", 128 << 20, 32 << 10, 32 << 10, 4096)
    assert finding.code == "inefficient_forward" and "Save only what the derivative's formula needs" in finding.message


def test_sizes_read_like_a_person_writes_them():
    assert [size_text(b) for b in (12, 1536, 3 << 20, 5 << 30)] == ["12 bytes", "1.5 KiB", "3.0 MiB", "5.0 GiB"]
