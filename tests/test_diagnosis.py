"""Every diagnosis code, on tensors built the way real mistakes produce them."""

import pytest
import torch

from gradegrad.catalog import Tolerance
from gradegrad.diagnosis import CODES, diagnose_gradients, diagnose_output, diagnose_rejection

TOL = Tolerance(1e-7, 1e-7)
g = torch.Generator().manual_seed(0)
X = torch.randn(5, generator=g, dtype=torch.float64)
A = torch.randn(5, 7, generator=g, dtype=torch.float64)
U = torch.randn(5, generator=g, dtype=torch.float64)


def sigmoid_case():
    y = torch.sigmoid(X)
    return [U * y * (1 - y)], [y * (1 - y)]


def diag(got, expected, ones, names=("x",), is_tensor=None):
    return diagnose_gradients(got, expected, ones, list(names), is_tensor or [True] * len(names), TOL)


def test_correct_gradient_has_no_finding():
    ref, ones = sigmoid_case()
    assert diag(ref, ref, ones) is None


def test_sign_error():
    ref, ones = sigmoid_case()
    f = diag([-ref[0]], ref, ones)
    assert f.code == "sign_error" and "wrong sign" in f.message and "`x`" in f.message


def test_a_known_mistake_is_named_in_the_exercises_words():
    ref, ones = sigmoid_case()
    y = torch.sigmoid(X)
    one_plus = U * y * (1 + y)
    halved = 0.5 * ref[0]  # also a constant factor: the instructor's sentence says more
    known = lambda i: [(one_plus, "y (1 + y) for y (1 - y)"), (halved, "half of it")]  # noqa: E731
    found = diagnose_gradients([one_plus], ref, ones, ["x"], [True], TOL, known=known)
    assert (found.code, found.message) == ("known_mistake", "the gradient of `x` is what a common mistake gives: "
                                                            "y (1 + y) for y (1 - y)")
    # a constant factor keeps its code (the same factor on every case), with the manifest's words
    scaled = diagnose_gradients([halved], ref, ones, ["x"], [True], TOL, known=known)
    assert (scaled.code, scaled.message, scaled.factor) == (
        "scale_error", "the gradient of `x` is 0.5 times the expected value, what a common mistake gives: half of it",
        0.5)
    assert scaled.otherwise.code == "known_mistake"  # if the factor changes from case to case
    assert diagnose_gradients([ref[0]], ref, ones, ["x"], [True], TOL, known=known) is None
    # a generic mistake that is not the known one keeps its own code
    assert diagnose_gradients([U * y], ref, ones, ["x"], [True], TOL, known=known).code != "known_mistake"
    assert diagnose_gradients([y * (1 - y)], ref, ones, ["x"], [True], TOL, known=known).code == "ignores_grad_output"
    # a "mistake" that equals the reference here is never named
    assert diagnose_gradients([-ref[0]], ref, ones, ["x"], [True], TOL, known=lambda i: [(ref[0], "same")]).code == "sign_error"


def test_scale_error_names_the_factor():
    ref, ones = sigmoid_case()
    f = diag([0.9 * ref[0]], ref, ones)
    assert f.code == "scale_error" and "0.9 times" in f.message


def test_ignores_grad_output():
    ref, ones = sigmoid_case()
    f = diag(ones, ref, ones)
    assert f.code == "ignores_grad_output" and "grad_output" in f.message


@pytest.mark.parametrize("fill,word", [(1.0, "ones"), (0.0, "zeros")])
def test_placeholder(fill, word):
    ref, ones = sigmoid_case()
    f = diag([torch.full_like(X, fill)], ref, [ones[0] * 0 + 0.5])
    assert f.code == "placeholder" and word in f.message


def test_swapped_gradients_same_shape():
    y = torch.randn(5, generator=g, dtype=torch.float64)
    ref = [U * y, U * X]
    f = diag([ref[1], ref[0]], ref, [y, X], names=("x", "y"))
    assert f.code == "swapped_gradients" and "`x` and `y`" in f.message


def test_swapped_gradients_different_shapes():
    x = torch.randn(7, generator=g, dtype=torch.float64)
    ref = [U[:, None] * x[None, :], A.T @ U]
    f = diag([ref[1], ref[0]], ref, ref, names=("A", "x"))
    assert f.code == "swapped_gradients"


def test_wrong_shape_says_which_shapes_and_spots_a_transpose():
    x = torch.randn(7, generator=g, dtype=torch.float64)
    ref = [U[:, None] * x[None, :], A.T @ U]
    f = diag([ref[0].T, ref[1]], ref, ref, names=("A", "x"))
    assert f.code == "wrong_shape" and "(7, 5)" in f.message and "(5, 7)" in f.message
    assert "transpose" in f.message


def test_wrong_count():
    ref, ones = sigmoid_case()
    f = diag([ref[0]], [ref[0], None, None], [ones[0], None, None], names=("x", "mask", "p"),
             is_tensor=[True, True, False])
    assert f.code == "wrong_count" and "1 value(s)" in f.message and "3 arguments" in f.message


def test_extra_none_values_are_accepted():
    ref, ones = sigmoid_case()
    assert diag([ref[0], None], ref, ones) is None


def test_missing_gradient():
    ref, ones = sigmoid_case()
    assert diag([None], ref, ones).code == "missing_gradient"


def test_gradient_for_a_float_argument():
    ref, ones = sigmoid_case()
    f = diag([ref[0], torch.tensor(1.0)], [ref[0], None], [ones[0], None], names=("x", "p"),
             is_tensor=[True, False])
    assert f.code == "non_tensor_gradient" and "`p`" in f.message


def test_not_finite():
    ref, ones = sigmoid_case()
    bad = ref[0].clone()
    bad[2] = float("nan")
    f = diag([bad], ref, ones)
    assert f.code == "not_finite" and "nan/inf" in f.message


def test_wrong_values_show_the_worst_element():
    ref, ones = sigmoid_case()
    bad = ref[0].clone()
    bad[3] += 0.5
    f = diag([bad], ref, ones)
    assert f.code == "wrong_values"
    assert f.worst.index == (3,) and f.worst.input == "x"
    assert f.worst.got == pytest.approx(float(bad[3])) and f.worst.expected == pytest.approx(float(ref[0][3]))
    assert "index [3]" in f.message


def test_output_checks():
    ref = torch.sigmoid(X)
    assert diagnose_output(ref, ref, TOL) is None
    assert diagnose_output(ref.float(), ref, TOL).code == "wrong_dtype"
    assert diagnose_output(ref[:3], ref, TOL).code == "wrong_shape"
    assert diagnose_output(None, ref, TOL).code == "wrong_type"
    assert diagnose_output(-ref, ref, TOL).code == "sign_error"


def test_autograd_rejections_are_explained():
    count = diagnose_rejection("function ParamReLUBackward returned an incorrect number of gradients (expected 2, got 1)")
    assert count.code == "wrong_count" and "1 value(s)" in count.message
    shape = diagnose_rejection("Function MyMatVecBackward returned an invalid gradient at index 0 - got [7] "
                               "but expected shape compatible with [5, 7]")
    assert shape.code == "wrong_shape" and "(5, 7)" in shape.message


def test_every_code_is_documented():
    for code in ("sign_error", "scale_error", "ignores_grad_output", "placeholder", "swapped_gradients",
                 "wrong_shape", "wrong_count", "not_finite", "wrong_branch", "swapped_branches"):
        assert code in CODES


@pytest.mark.parametrize("g", [1.591, -1.333, 2.7])
def test_a_scalar_upstream_gradient_ignored_or_applied_twice_is_named_whatever_its_value(g):
    """For a loss the reference gradient is g * J: a factor 1/g or g is no 'constant factor'."""
    from gradegrad.diagnosis import compare_values

    j = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = g * j
    assert compare_values("x", "it", j, expected, TOL, upstream=g).code == "ignores_grad_output"
    assert compare_values("x", "it", g * g * j, expected, TOL, upstream=g).code == "grad_output_twice"
    scaled = compare_values("x", "it", 2 * expected, expected, TOL, upstream=g)
    assert scaled.code == "scale_error" and scaled.factor == pytest.approx(2) and scaled.otherwise.code == "wrong_values"


def test_grad_output_twice_for_an_elementwise_gradient():
    ref, ones = sigmoid_case()
    twice = [U * U * ones[0]]
    f = diagnose_gradients(twice, ref, ones, ["x"], [True], TOL, [U * U * ones[0]])
    assert f.code == "grad_output_twice" and "twice" in f.message


def test_a_wrong_scalar_names_no_index():
    from gradegrad.diagnosis import compare_values

    f = compare_values("output", "the output", torch.tensor(2.19583, dtype=torch.float64),
                       torch.tensor(2.51298, dtype=torch.float64), TOL)
    assert f.otherwise.message == "the output differs from the reference: got 2.19583, expected 2.51298"


def test_dtype_of_a_gradient_costs_a_point_only_when_precision_is_lost():
    from gradegrad.diagnosis import dtype_finding

    up = dtype_finding("x", torch.zeros(3, dtype=torch.float64), torch.float32)
    assert up.code == "wrong_dtype" and up.note and "right values" in up.message
    down = dtype_finding("x", torch.zeros(3, dtype=torch.float32), torch.float64)
    assert down.code == "wrong_dtype" and not down.note and "precision" in down.message
    assert not dtype_finding("x", torch.zeros(3, dtype=torch.bfloat16), torch.float32).note
    assert not dtype_finding("x", torch.zeros(3, dtype=torch.int64), torch.float32).note
    assert dtype_finding("x", torch.zeros(3), torch.float32) is None


def test_torch_refusing_an_overwritten_saved_tensor_is_mutates_saved():
    from gradegrad.diagnosis import diagnose_fault

    message = ("one of the variables needed for gradient computation has been modified by an inplace operation: "
               "[torch.DoubleTensor [6]], which is output 0 of ExpBackward0, is at version 1; expected version 0")
    f = diagnose_fault("exception", message)
    assert f.code == "mutates_saved" and "torch.DoubleTensor [6]" in f.message
    assert diagnose_fault("exception", "ValueError: oops") is None
    assert diagnose_fault("rejected", "function F returned an incorrect number of gradients (expected 2, got 1)").code \
        == "wrong_count"


XL = torch.tensor([1.3, -0.7, 0.4, -2.1, 0.9, -0.2], dtype=torch.float64)  # both branches of a leaky ReLU
UL = torch.tensor([0.31, -1.2, 0.77, 0.45, -0.66, 1.9], dtype=torch.float64)


def leaky(positive, negative):
    """A leaky ReLU's gradient with these two slopes (the reference's: 1 and 0.01)."""
    return [UL * torch.where(XL > 0, positive, negative)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_branch_off_by_a_factor_is_named_with_the_factor_and_where(dtype):
    ref = [leaky(1.0, 0.01)[0].to(dtype)]
    f = diag([leaky(1.0, 0.1)[0].to(dtype)], ref, [torch.where(XL > 0, 1.0, 0.01).to(dtype)])
    assert f.code == "wrong_branch" and "right at 3 of 6 elements and 10 times" in f.message, f.message
    assert "`x`" in f.message


def test_two_swapped_branches_are_named():
    f = diag(leaky(0.01, 1.0), leaky(1.0, 0.01), [torch.where(XL > 0, 1.0, 0.01)])
    assert f.code == "swapped_branches" and "0.01 times" in f.message and "100 times" in f.message, f.message
    out = diagnose_output(torch.where(XL > 0, 0.01 * XL, XL), torch.where(XL > 0, XL, 0.01 * XL), TOL)
    assert out.code == "swapped_branches" and "the output" in out.message


def test_a_formula_wrong_everywhere_or_at_one_element_is_no_branch():
    y = torch.sigmoid(XL)
    assert diag([UL * y * (1 + y)], [UL * y * (1 - y)], [y * (1 - y)]).code == "wrong_values"
    one = leaky(1.0, 0.01)[0].clone()
    one[1] *= 10
    assert diag([one], leaky(1.0, 0.01), [torch.where(XL > 0, 1.0, 0.01)]).code == "wrong_values"
    relu = diag(leaky(1.0, 0.0), leaky(1.0, 0.01), [torch.where(XL > 0, 1.0, 0.01)])  # zeros: the mask hint
    assert relu.code == "wrong_values" and "does a branch drop what it should scale?" in relu.message


def test_a_result_moved_by_one_position_is_wrong_values_that_says_so():
    ref, ones = sigmoid_case()
    rolled = diag([torch.roll(ref[0], 1)], ref, ones)  # dot's gradient with y rolled by one
    assert rolled.code == "wrong_values" and "the reference moved by one position: element i holds the expected " \
                                             "element i - 1; an index off by one?" in rolled.message
    shifted = torch.cat([ref[0][1:], torch.zeros(1, dtype=torch.float64)])  # a loop that starts at 1
    assert "element i + 1" in diag([shifted], ref, ones).message
    grad_a = torch.outer(U, X)
    moved = diag([torch.roll(grad_a, 1, 1)], [grad_a], [None], ["A"])  # outer(g, roll(x, 1))
    assert "moved by one position along dimension 1" in moved.message
    flat = torch.ones(5, dtype=torch.float64)  # a constant: any shift of it is itself, no hint
    assert "moved" not in diag([torch.cat([flat[:4], flat[:1] * 3])], [flat], [None]).message
    assert "moved" not in diag([ref[0] * torch.linspace(1, 2, 5, dtype=torch.float64)], ref, ones).message


def test_a_square_gradient_transposed_is_wrong_values_that_says_so():
    grad_a = torch.outer(U, X)  # (5, 5)
    found = diag([grad_a.T], [grad_a], [None], ["A"])
    assert found.code == "wrong_values" and found.message.endswith("(it is the transpose of the right matrix)")


def test_a_result_in_reverse_order_is_wrong_values_that_says_so():
    ref, ones = sigmoid_case()
    found = diag([ref[0].flip(0)], ref, ones)  # a conv1d kernel gradient flipped where it should not be
    assert found.code == "wrong_values" and "(it is the reference in reverse order: a flip too many, or one " \
                                            "missing?)" in found.message
    grad_a = torch.outer(U, X[:4])
    assert "in reverse order along dimension 1" in diag([grad_a.flip(1)], [grad_a], [None], ["A"]).message
    even = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)  # symmetric: its reverse is itself, no hint
    assert "reverse" not in diag([even * 2 + torch.tensor([0, 0, 1.0], dtype=torch.float64)], [even], [None]).message


def test_a_gradient_autograd_would_sum_down_is_still_a_wrong_shape_that_says_over_which_dimensions():
    per_example = torch.outer(U, X[:3])  # linear's bias gradient left as grad_output, one row per example
    found = diag([per_example], [per_example.sum(0)], [None], ["b"])
    assert found.code == "wrong_shape" and found.message == (
        "the gradient of `b` has shape (5, 3), but `b` has shape (3,) (autograd sums such a gradient down to `b`'s "
        "shape by itself, and here that sum would be right; still, backward returns one gradient of each input's "
        "shape: sum over dimension 0)")
    assert "that sum would be right" not in diag([per_example], [per_example.mean(0)], [None], ["b"]).message
    assert "autograd" not in diag([per_example], [per_example[:2]], [None], ["b"]).message  # cannot be summed to it
