"""Property-based tests: the diagnosis names each mistake on random shapes and values.

Hypothesis draws the shape, a seed for the values, their magnitude and the mistake's parameter;
each property states what a student would read for that mistake, whatever the numbers.
"""

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from gradegrad.catalog import Tolerance  # noqa: E402
from gradegrad.diagnosis import CODES, compare_values, diagnose_gradients, diagnose_output  # noqa: E402

TOL = Tolerance(1e-7, 1e-7)
PROPERTY = settings(max_examples=60, deadline=None)

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
magnitudes = st.floats(1e-2, 1e3)
seeds = st.integers(0, 2**31 - 1)


def tensor(shape, seed, magnitude=1.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude


def distinct(t: torch.Tensor) -> bool:
    """A tensor a mistake can be told apart on: not all equal, no element near 0 against the rest."""
    return t.numel() >= 2 and float(t.abs().min()) > 1e-6 * float(t.abs().max()) and float(t.std()) > 1e-6


def one(got, expected, ones=None):
    return diagnose_gradients([got], [expected], [ones], ["x"], [True], TOL)


@PROPERTY
@given(shapes, seeds, magnitudes)
def test_the_reference_itself_has_no_finding(shape, seed, magnitude):
    e = tensor(shape, seed, magnitude)
    assert one(e.clone(), e) is None and diagnose_output(e.clone(), e, TOL) is None


@PROPERTY
@given(shapes, seeds, magnitudes)
def test_minus_the_reference_is_a_sign_error(shape, seed, magnitude):
    e = tensor(shape, seed, magnitude)
    f = one(-e, e)
    assert f.code == "sign_error" and "`x`" in f.message


@PROPERTY
@given(shapes, seeds, magnitudes, st.floats(-20, 20))
def test_a_constant_factor_is_named_with_its_value(shape, seed, magnitude, c):
    assume(min(abs(c - 1), abs(c + 1), abs(c)) > 1e-2)
    e = tensor(shape, seed, magnitude)
    assume(distinct(e))
    f = one(c * e, e)
    assert f.code == "scale_error" and f"{c:.4g} times" in f.message


@PROPERTY
@given(shapes, seeds, seeds, magnitudes)
def test_what_grad_output_of_ones_gives_is_ignoring_grad_output(shape, seed, seed2, magnitude):
    local = tensor(shape, seed, magnitude)  # the local derivative
    upstream = tensor(shape, seed2) + 3.0  # never all ones
    expected, ones = upstream * local, local
    assume(not torch.allclose(expected, ones, rtol=1e-6, atol=1e-6))
    assert one(ones, expected, ones).code == "ignores_grad_output"


@PROPERTY
@given(shapes, seeds, seeds)
def test_swapped_gradients_of_one_shape(shape, seed, seed2):
    a, b = tensor(shape, seed), tensor(shape, seed2)
    assume(not torch.allclose(a, b))
    f = diagnose_gradients([b, a], [a, b], [None, None], ["x", "y"], [True, True], TOL)
    assert f.code == "swapped_gradients" and "`x` and `y`" in f.message


@PROPERTY
@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_swapped_gradients_of_different_shapes(m, n, seed):
    A, x = tensor((m, n), seed), tensor((n,), seed + 1)
    f = diagnose_gradients([x, A], [A, x], [None, None], ["A", "x"], [True, True], TOL)
    assert f.code == "swapped_gradients"


@PROPERTY
@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_a_transposed_gradient_is_a_wrong_shape_with_a_hint(m, n, seed):
    assume(m != n)
    e = tensor((m, n), seed)
    f = one(e.t(), e)
    assert f.code == "wrong_shape" and "transpose" in f.message and f"({m}, {n})" in f.message


@PROPERTY
@given(shapes, seeds, st.integers(0, 3))
def test_a_missing_or_extra_gradient(shape, seed, extra):
    e = tensor(shape, seed)
    assert one(None, e).code == "missing_gradient"
    f = diagnose_gradients([e] + [e] * extra, [e, None], [None, None], ["x", "p"], [True, False], TOL)
    expected = {0: "wrong_count", 1: "non_tensor_gradient"}.get(extra, "wrong_count")
    assert f.code == expected


@PROPERTY
@given(shapes, seeds, st.sampled_from([float("nan"), float("inf"), float("-inf")]), st.data())
def test_a_nan_or_inf_is_not_finite(shape, seed, bad, data):
    e = tensor(shape, seed)
    got = e.clone().reshape(-1)
    got[data.draw(st.integers(0, got.numel() - 1))] = bad
    assert one(got.reshape(shape), e).code == "not_finite"


@PROPERTY
@given(shapes, seeds, magnitudes, st.floats(1e-4, 10.0), st.data())
def test_one_wrong_element_is_found_and_located(shape, seed, magnitude, delta, data):
    e = tensor(shape, seed, magnitude)
    assume(e.numel() >= 3 and distinct(e))
    flat = e.clone().reshape(-1)
    i = data.draw(st.integers(0, flat.numel() - 1))
    flat[i] += delta * magnitude
    f = one(flat.reshape(shape), e)
    assert f is not None and f.code in CODES
    if f.code == "wrong_values":
        index = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), shape))
        assert f.worst.index == index and f"index {list(index)}" in f.message


@PROPERTY
@given(shapes, shapes, seeds)
def test_a_wrong_output_shape_names_both_shapes(shape, other, seed):
    assume(shape != other)
    f = diagnose_output(tensor(other, seed), tensor(shape, seed), TOL)
    assert f.code == "wrong_shape" and "expected (" in f.message


@PROPERTY
@given(shapes, seeds, seeds, magnitudes)
def test_every_finding_has_a_known_code(shape, seed, seed2, magnitude):
    got, e = tensor(shape, seed, magnitude), tensor(shape, seed2)
    f = compare_values("x", "the gradient of `x`", got, e, TOL, tensor(shape, seed2 + 1))
    assert f is None or f.code in CODES
