"""Name the likely mistake behind a wrong output or gradient, in a student's terms.

Pure functions over tensors: given what the student returned and what the reference gives,
return a `Finding` (a code from `CODES`, a sentence, the worst element) or None when they agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from gradegrad.catalog import Tolerance
from gradegrad.report import Worst

CODES = {
    "wrong_count": "backward returned the wrong number of values",
    "missing_gradient": "backward returned None for an input that needs a gradient",
    "non_tensor_gradient": "backward returned a gradient for a non-tensor argument",
    "wrong_type": "a value that should be a tensor is not one",
    "swapped_gradients": "the gradients are returned in the wrong order",
    "wrong_shape": "the shape differs from the input's (or the reference output's)",
    "wrong_dtype": "the dtype differs from the input's",
    "not_finite": "the result holds nan or inf",
    "ignores_grad_output": "the gradient does not use grad_output (chain rule)",
    "grad_output_twice": "the gradient multiplies by grad_output twice",
    "placeholder": "the result is a placeholder (all ones or all zeros)",
    "sign_error": "the result has the wrong sign",
    "scale_error": "the result is off by a constant factor",
    "wrong_branch": "one branch of a piecewise formula is off by a constant factor (right elsewhere)",
    "swapped_branches": "the two branches of a piecewise formula are swapped",
    "known_mistake": "the result is what a common mistake the exercise names gives (the message says which)",
    "wrong_values": "the values differ from the reference",
    "rejected": "autograd rejected what backward returned",
    "detached": "forward's output is not connected to its inputs (no grad_fn)",
    "mutates_input": "forward or backward wrote to an input in place",
    "mutates_grad_output": "backward wrote to grad_output in place (the caller's upstream gradient)",
    "mutates_output": "backward wrote in place to the output forward returned",
    "mutates_saved": "backward wrote in place to a tensor saved for backward",
    "wrong_device": "a result left the inputs' device",
    "not_a_function": "the class is not a torch.autograd.Function with forward and backward",
    "missing": "the class is not in the submission",
    "jacobian_mismatch": "gradcheck: backward disagrees with finite differences of forward",
    "imprecise_forward": "gradcheck: backward is right, but finite differences of forward are not (forward "
                         "loses float64's precision)",
    "gradcheck_failed": "gradcheck failed for another reason",
    "not_a_module": "the class is not a torch.nn.Module",
    "builtin_output": "the module's output comes from built-in operations, not from the student's Function",
    "no_make_vjp": "the function has no make_vjp attribute",
    "not_implemented": "the starter stub still raises NotImplementedError",
    "wrong_losses": "the training losses differ from the reference run",
    "uses_autograd": "the Function asks autograd for its gradient instead of deriving it",
    "uses_reference_backward": "backward calls PyTorch's own derivative kernel of the operation",
    "inefficient_backward": "backward uses far more memory than the reference at the largest size (a Jacobian?)",
    "inefficient_forward": "forward uses far more memory than the reference at the largest size (a Jacobian?)",
    "not_differentiable": "the gradient backward returns cannot itself be differentiated",
    "missing_jvp": "the class has no jvp staticmethod (forward-mode AD)",
    "ignores_tangent": "jvp does not multiply by the input tangents (chain rule)",
}

CODES.update({  # the newer exercise kinds' own codes (gradegrad.kinds) and known exceptions
    "unpacked_saved_tensors": "ctx.saved_tensors is a tuple that was used without unpacking it",
    "retain_graph": "a second backward through a graph that the first one freed (no retain_graph=True)",
    "memory_grows_with_steps": "what the ODE's forward keeps for backward grows with the number of steps (no adjoint)",
    "untransposed": "the implicit vjp solves (I - J) g = v instead of (I - Jᵀ) g = v",
    "w_not_transposed": "the implicit vjp uses W where Wᵀ belongs (the jvp where the vjp belongs)",
    "one_step": "the Jacobian-free (one-step) gradient instead of the implicit-function vjp",
    "loose_tolerance": "the fixed point was not converged: the solver's tolerance leaks into the results",
    "transposed": "the Jacobian is transposed (n×m for m×n, or the reverse)",
    "accumulated_gradients": "gradients accumulate from one output to the next (.grad not reset)",
    "per_example_update": "an update keeps one row per example instead of summing them",
    "no_custom_vjp": "the JAX function is not wrapped with jax.custom_vjp",
})


KNOWN = "what a common mistake gives:"  # then the manifest's words for it
Known = Callable[[], Sequence[tuple[torch.Tensor, str]]]  # what an exercise's common mistakes give here


def known_words(message: str) -> str:
    """The manifest's words for the common mistake a `known_mistake` message names ("" if none)."""
    return message.partition(KNOWN)[2].strip()


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    worst: Worst | None = None
    factor: float | None = None  # of a scale_error: got ≈ factor · expected
    otherwise: "Finding | None" = None  # a scale_error's wrong_values or known_mistake, if the factor varies by case
    subject: str = ""  # how the message names the tensor (e.g. "the gradient of `x`")
    note: bool = False  # worth mentioning, costs nothing (e.g. a gradient upcast that autograd casts back)


def close(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> bool:
    return got.shape == expected.shape and bool(
        torch.allclose(got.double(), expected.double(), rtol=tol.rtol, atol=tol.atol))


def worst_element(name: str, got: torch.Tensor, expected: torch.Tensor) -> Worst:
    g, e = got.double(), expected.double()
    diff = (g - e).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    flat = int(diff.reshape(-1).argmax()) if diff.numel() else 0
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), e.shape)) if e.dim() else ()
    return Worst(name, index, float(g.reshape(-1)[flat]), float(e.reshape(-1)[flat]))


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ("," if t.dim() == 1 else "") + ")"


def _type_name(value: Any) -> str:
    return getattr(value, "type_name", None) or type(value).__name__


def _constant_factor(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> float | None:
    """c when got ≈ c · expected for a constant c ≠ 1, else None."""
    e, g = expected.double().reshape(-1), got.double().reshape(-1)
    norm = float(e @ e)
    if norm == 0.0 or not torch.isfinite(g).all():
        return None
    c = float(g @ e) / norm
    if abs(c - 1.0) < 1e-3 or abs(c) < 1e-12:
        return None
    scaled = Tolerance(rtol=max(tol.rtol, 1e-6) * 10, atol=tol.atol * max(abs(c), 1.0) * 10)
    return c if close(got, c * expected, scaled) else None


def _ignores(what: str, worst: Worst) -> Finding:
    return Finding("ignores_grad_output", f"{what} is what you would get for grad_output = 1: "
                   "multiply by grad_output (the chain rule)", worst)


def _twice(what: str, worst: Worst) -> Finding:
    return Finding("grad_output_twice", f"{what} is what you would get multiplying by grad_output twice: "
                   "multiply by it once (the chain rule)", worst)


def wrong_values(what: str, worst: Worst, why: str = "") -> Finding:
    where = f"at index {list(worst.index)} " if worst.index else ""
    return Finding("wrong_values", f"{what} differs from the reference: {where}got {worst.got + 0.0:.6g}, expected "
                   f"{worst.expected + 0.0:.6g}{why}", worst)  # + 0.0: -0 is shown as 0


def _zeros_hint(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> str:
    """Where only the zeros differ: a mask or a condition left out (dropout without its mask), or a branch
    that drops what it should scale (a ReLU's derivative for a leaky one)."""
    if got.shape != expected.shape or not got.numel():
        return ""
    for zeros, other, text, question in (
            (expected == 0, got, "nonzero where the reference is 0", "is a mask or a condition missing?"),
            (got == 0, expected, "0 where the reference is not", "does a branch drop what it should scale?")):
        if zeros.any() and not zeros.all() and (other[zeros] != 0).any() and close(got[~zeros], expected[~zeros], tol):
            return (f" (it is {text} at {int((other[zeros] != 0).sum())} of {got.numel()} elements, and right "
                    f"everywhere else: {question})")
    return ""


def _shift_hint(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> str:
    """Where the result is the reference moved by one position along a dimension (got[i] = expected[i - 1],
    the ends aside): an index off by one (a loop from 1, a slice [1:] against [:-1], a roll)."""
    for dim in range(got.dim()):
        n = got.shape[dim]
        if n < 3:
            continue
        for step in (1, -1):
            moved, kept = got.narrow(dim, max(step, 0), n - 1), expected.narrow(dim, max(-step, 0), n - 1)
            same = expected.narrow(dim, max(step, 0), n - 1)
            if close(moved, kept, tol) and not close(same, kept, tol):
                where = f" along dimension {dim}" if got.dim() > 1 else ""
                before = "i - 1" if step == 1 else "i + 1"
                return (f" (it is the reference moved by one position{where}: element i holds the expected "
                        f"element {before}; an index off by one?)")
    return ""


def _reversed_hint(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> str:
    """The reference in reverse order along a dimension: a kernel flipped where it should not be, or
    not flipped where it should."""
    for dim in range(got.dim()):
        if got.shape[dim] > 1 and close(got, expected.flip(dim), tol) and not close(expected, expected.flip(dim), tol):
            where = f" along dimension {dim}" if got.dim() > 1 else ""
            return f" (it is the reference in reverse order{where}: a flip too many, or one missing?)"
    return ""


def _transpose_hint(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> str:
    """A square matrix that is the transpose of the right one (a non-square one fails on its shape)."""
    if got.dim() == 2 and got.shape[0] == got.shape[1] > 1 and close(got.T, expected, tol):
        return " (it is the transpose of the right matrix)"
    return ""


HINTS = (_zeros_hint, _shift_hint, _reversed_hint, _transpose_hint)  # what wrong_values adds, the first that fits

BRANCH_SPREAD = 1e-4  # relative difference between two ratios of one branch (float32's rounding, not a formula's)


def _branches(what: str, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance, worst: Worst) -> Finding | None:
    """A piecewise formula with a branch off: got / expected is one constant on a set of elements and
    another on the rest (at least two elements each; zeros in the same places), e.g. a leaky ReLU's
    backward with the wrong slope for x < 0 (1 and 10), or its two slopes swapped (0.01 and 100)."""
    g, e = got.double().reshape(-1), expected.double().reshape(-1)
    if g.shape != e.shape or not (torch.isfinite(g).all() and torch.isfinite(e).all()):
        return None
    zeros = e.abs() <= tol.atol
    if bool((zeros != (g.abs() <= tol.atol)).any()):  # (zeros in one only: `_zeros_hint` says where)
        return None
    ratios = g[~zeros] / e[~zeros]
    if ratios.numel() < 4:
        return None
    ordered = ratios.sort().values
    steps = (ordered[1:] - ordered[:-1]).abs() > BRANCH_SPREAD * torch.maximum(ordered[1:].abs(), ordered[:-1].abs())
    if int(steps.sum()) != 1:
        return None
    cut = int(steps.nonzero()[0]) + 1
    if cut < 2 or ordered.numel() - cut < 2:
        return None
    low, high = float(ordered[:cut].median()), float(ordered[cut:].median())
    n_low, n_high = cut, ordered.numel() - cut
    factors = torch.ones_like(e)
    factors[~zeros] = torch.where(ratios < ordered[cut], low, high).to(e.dtype)
    if not close(got, (e * factors).reshape(expected.shape).to(expected.dtype), tol):
        return None
    if _near(low, 1.0) or _near(high, 1.0):
        right, off, n_off = (n_low, high, n_high) if _near(low, 1.0) else (n_high, low, n_low)
        return Finding("wrong_branch", f"{what} is right at {right} of {got.numel()} elements and {off:.4g} times the "
                       f"expected value at the other {n_off}: one branch of the formula is off by that factor (check "
                       "each case of the piecewise derivative)", worst)
    if _near(low * high, 1.0):
        return Finding("swapped_branches", f"{what} is {low:.4g} times the expected value at {n_low} elements and "
                       f"{high:.4g} times at the other {n_high}: each branch has the other's formula (swap them, e.g. "
                       "the slopes for x > 0 and for x < 0)", worst)
    return Finding("wrong_branch", f"{what} is {low:.4g} times the expected value at {n_low} elements and {high:.4g} "
                   f"times at the other {n_high}: each branch of the formula is off by its own factor (check each "
                   "case of the piecewise derivative)", worst)


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(abs(a), abs(b))


def compare_values(name: str, what: str, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance,
                   ones_expected: torch.Tensor | None = None, twice_expected: torch.Tensor | None = None,
                   upstream: float | None = None, known: Known | None = None) -> Finding | None:
    """Compare two tensors of the same shape; name the mistake when they differ.

    `name` is the input (or "output") the tensor belongs to, `what` how a message refers to it.
    For a gradient, `ones_expected` and `twice_expected` are the reference's gradients for an
    upstream gradient of ones and of grad_output squared, and `upstream` the upstream gradient g of
    a scalar output (a loss): a factor 1/g means grad_output was ignored, a factor g that it was
    applied twice, whatever g the seed drew. Any other constant factor is a `scale_error` (with its
    `factor`; the checks keep that code only when every case shows the same factor). `known()` gives
    what the exercise's own common mistakes give here, each with its sentence (asked only for a
    result that none of the checks before has named): a match that is not
    a sign or a constant factor is a `known_mistake` (before a branch: the instructor's words say
    more), and a factor's message, or a factor that changes between cases, takes its words.
    """
    if close(got, expected, tol):
        return None
    worst = worst_element(name, got, expected)
    if not torch.isfinite(got).all() and torch.isfinite(expected).all():
        bad = (~torch.isfinite(got)).sum().item()
        return Finding("not_finite", f"{what} has {bad} nan/inf value(s) where the reference is finite "
                       "(an overflow? compute it in a numerically stable form)", worst)
    if ones_expected is not None and close(got, ones_expected, tol) and not close(ones_expected, expected, tol):
        return _ignores(what, worst)
    if twice_expected is not None and close(got, twice_expected, tol) and not close(twice_expected, expected, tol):
        return _twice(what, worst)
    for fill in (1.0, 0.0):
        if got.numel() and bool((got == fill).all()) and not close(expected, torch.full_like(expected, fill), tol):
            return Finding("placeholder", f"{what} is all {'ones' if fill else 'zeros'}: a placeholder, "
                           "not the derivative", worst)
    says = next((says for value, says in (known() if known else ())
                 if close(got, value, tol) and not close(value, expected, tol)), None)
    named = Finding("known_mistake", f"{what} is {KNOWN} {says}", worst) if says else None
    if close(got, -expected, tol):
        return Finding("sign_error", f"{what} has the wrong sign: it equals minus the expected value", worst)
    factor = _constant_factor(got, expected, tol)
    if factor is not None and upstream:
        if _near(factor * upstream, 1.0):
            return _ignores(what, worst)
        if _near(factor, upstream):
            return _twice(what, worst)
    if factor is not None:
        why = f", {KNOWN} {says}" if says else ": a constant factor is missing or extra"
        return Finding("scale_error", f"{what} is {factor:.4g} times the expected value{why}", worst, factor,
                       named or wrong_values(what, worst), what)
    hint = next((h for h in (f(got, expected, tol) for f in HINTS) if h), "")
    return named or _branches(what, got, expected, tol, worst) or wrong_values(what, worst, hint)


def diagnose_output(got: Any, expected: torch.Tensor, tol: Tolerance, type_name: str | None = None,
                    known: Known | None = None) -> Finding | None:
    """Check forward's output: a tensor of the reference's shape, dtype and values.

    `type_name` is what the child saw forward return (a tuple arrives here as a list); `known` as
    for `compare_values`."""
    if not isinstance(got, torch.Tensor):
        kind = type_name or _type_name(got)
        if isinstance(got, list) and len(got) == 1 and isinstance(got[0], torch.Tensor):
            return Finding("wrong_type", f"forward returned a {kind} holding one tensor, expected the tensor itself: "
                           "return y, not (y,) or [y] (Function.apply hands the caller what forward returns)")
        return Finding("wrong_type", f"forward returned {kind}, expected a tensor")
    if got.shape != expected.shape:
        return Finding("wrong_shape", f"the output has shape {_shape(got)}, expected {_shape(expected)}")
    if got.dtype != expected.dtype:
        return Finding("wrong_dtype", f"the output is {str(got.dtype)[6:]}, expected {str(expected.dtype)[6:]} "
                       "like the inputs (create new tensors with the input's dtype, e.g. torch.zeros_like)")
    return compare_values("output", "the output", got, expected, tol, known=known)


def _count(got: Sequence[Any], names: Sequence[str]) -> Finding | None:
    n = len(names)
    if len(got) < n or any(g is not None for g in got[n:]):
        listed = ", ".join(names)
        return Finding("wrong_count", f"backward returned {len(got)} value(s) for the {n} arguments of "
                       f"forward ({listed}); return one per argument, None for those without a gradient")
    return None


def _swapped(got: Sequence[Any], expected: Sequence[torch.Tensor | None], names: Sequence[str],
             tol: Tolerance) -> Finding | None:
    idx = [i for i, e in enumerate(expected) if e is not None and isinstance(got[i], torch.Tensor)]
    for a in idx:
        for b in idx:
            if a < b and close(got[a], expected[b], tol) and close(got[b], expected[a], tol) \
                    and not close(got[a], expected[a], tol):
                order = ", ".join(names[i] for i in idx)
                return Finding("swapped_gradients", f"the gradients of `{names[a]}` and `{names[b]}` are "
                               f"swapped: return them in the order of forward's arguments ({order})")
    return None


def _one_gradient(i: int, got: Any, expected: torch.Tensor, ones: torch.Tensor | None,
                  names: Sequence[str], tol: Tolerance, twice: torch.Tensor | None = None,
                  upstream: float | None = None, known: Known | None = None) -> Finding | None:
    what = f"the gradient of `{names[i]}`"
    if got is None:
        return Finding("missing_gradient", f"backward returned None for `{names[i]}`, which requires grad")
    if not isinstance(got, torch.Tensor):
        return Finding("wrong_type", f"backward returned {_type_name(got)} for `{names[i]}`, expected a tensor")
    if got.shape != expected.shape:
        hint = ""
        if got.dim() == 2 and got.T.shape == expected.shape and close(got.T, expected, tol):
            hint = " (it is the transpose of the right gradient)"
        elif got.numel() == 1 and expected.numel() > 1:
            hint = (" (one number: a gradient has the input's shape; spread a scalar grad_output over it, "
                    f"e.g. grad_output.expand_as({names[i]}))")
        elif dims := _summed_dims(got, expected):
            right = close(got.sum(dim=dims).reshape(expected.shape), expected, tol)
            over = f"dimension{'s' * (len(dims) > 1)} {', '.join(map(str, dims))}"
            hint = (f" (autograd sums such a gradient down to `{names[i]}`'s shape by itself"
                    f"{', and here that sum would be right' * right}; still, backward returns one gradient of "
                    f"each input's shape: sum over {over})")
        return Finding("wrong_shape", f"{what} has shape {_shape(got)}, but `{names[i]}` has shape "
                       f"{_shape(expected)}{hint}")
    return compare_values(names[i], what, got, expected, tol, ones, twice, upstream, known)


def _summed_dims(got: torch.Tensor, expected: torch.Tensor) -> list[int]:
    """The dimensions of `got` that autograd sums to bring it to `expected`'s shape (its `sum_to`: extra
    leading dimensions, and those where the input has size 1); [] when it cannot."""
    extra = got.dim() - expected.dim()
    if extra < 0:
        return []
    dims = list(range(extra))
    for j, (g, e) in enumerate(zip(got.shape[extra:], expected.shape)):
        if g != e:
            if e != 1:
                return []
            dims.append(extra + j)
    return dims


def diagnose_gradients(got: Sequence[Any], expected: Sequence[torch.Tensor | None],
                       ones_expected: Sequence[torch.Tensor | None], names: Sequence[str],
                       is_tensor: Sequence[bool], tol: Tolerance,
                       twice_expected: Sequence[torch.Tensor | None] | None = None,
                       upstream: float | None = None,
                       known: Callable[[int], Sequence[tuple[torch.Tensor, str]]] | None = None) -> Finding | None:
    """Compare what backward returned with the reference gradients (None: no gradient expected);
    `known(i)`: what common mistakes give for the i-th input (see `compare_values`)."""
    found = _count(got, names)
    if found:
        return found
    for i, g in enumerate(got[:len(names)]):
        if g is not None and not is_tensor[i]:
            return Finding("non_tensor_gradient", f"backward returned a gradient for `{names[i]}`, which is "
                           "not a tensor: return None in its place")
    found = _swapped(got, expected, names, tol)
    if found:
        return found
    twice_expected = twice_expected or [None] * len(expected)
    for i, e in enumerate(expected):
        if e is not None:
            found = _one_gradient(i, got[i], e, ones_expected[i], names, tol, twice_expected[i], upstream,
                                  (lambda i=i: known(i)) if known else None)
            if found:
                return found
    return None


def _precision(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def dtype_finding(name: str, got: Any, input_dtype: torch.dtype) -> Finding | None:
    """The dtype of a gradient backward returned, against its input's. Autograd casts a gradient to its
    input's dtype before the caller sees it, so a higher-precision gradient arrives right (a note that
    costs nothing), while a lower-precision one, or one that is not floating point, has lost digits
    on the way (a failure). Both are `wrong_dtype`."""
    if not isinstance(got, torch.Tensor) or got.dtype == input_dtype or not input_dtype.is_floating_point:
        return None
    have, want = str(got.dtype).removeprefix("torch."), str(input_dtype).removeprefix("torch.")
    if not got.is_floating_point() or got.is_complex():
        return Finding("wrong_dtype", f"the gradient of `{name}` is {have} for a {want} input: a gradient is a "
                       f"floating-point tensor of the input's dtype (e.g. torch.zeros_like({name}))")
    if _precision(got.dtype) > _precision(input_dtype):
        return Finding("wrong_dtype", f"the gradient of `{name}` is {have} for a {want} input: autograd casts it "
                       f"back to {want}, but the precision is already lost; compute it in the input's dtype "
                       "(no hard-coded dtype=torch.float32, .float(), torch.tensor(...) of Python numbers, or "
                       "torch.ones/zeros/empty(shape) without dtype=, which are float32: torch.ones_like(x) is not)")
    return Finding("wrong_dtype", f"the gradient of `{name}` is {have} for a {want} input: autograd casts it to "
                   f"{want}, so the caller gets the right values (no point lost; computing in {want} would "
                   "save time and memory)", note=True)


def diagnose_rejection(message: str) -> Finding:
    """Autograd refused what backward returned; say why in the student's terms."""
    count = re.search(r"incorrect number of gradients \(expected (\d+), got (\d+)\)", message)
    if count:
        listed = (" (a single tensor, or a list, counts as one value: return a tuple, `return gx, gy`)"
                  if count.group(2) == "1" and count.group(1) != "1" else "")
        return Finding("wrong_count", f"backward returned {count.group(2)} value(s) but forward takes "
                       f"{count.group(1)} arguments: return one per argument, None for those without a gradient"
                       f"{listed}")
    shape = re.search(r"invalid gradient at index (\d+) - got \[([\d, ]*)\] but expected shape compatible "
                      r"with \[([\d, ]*)\]", message)
    if shape:
        return Finding("wrong_shape", f"autograd rejected the gradient at position {shape.group(1)}: shape "
                       f"({shape.group(2)}) where the input has shape ({shape.group(3)})")
    return Finding("rejected", f"autograd rejected what backward returned: {message.splitlines()[0] if message else ''}")


# --------------------------------------------------------------------------- exceptions with a known cause

KNOWN_EXCEPTIONS = (  # (code, pattern in the exception's message, what to do) - seed mistakes seen in the notes
    ("unpacked_saved_tensors", re.compile(r"must be Tensor, not tuple|'tuple' object has no attribute"),
     "ctx.saved_tensors is a tuple: unpack it, e.g. `input_, = ctx.saved_tensors` (note the comma)"),
    ("retain_graph", re.compile(r"backward through the graph a second time"),
     "the graph was freed by an earlier backward: pass retain_graph=True to every backward but the last"),
    ("wrong_device", re.compile(r"Torch not compiled with CUDA|No CUDA GPUs are available|Found no NVIDIA driver"
                                r"|Expected all tensors to be on the same device"),
     "your code moves a tensor to a device of its own (.cuda(), .to('cuda'), device='cuda'): create tensors on "
     "the inputs' device instead (torch.zeros_like(x), device=x.device), so the Function runs wherever it is called"),
)


def diagnose_exception(message: str) -> Finding | None:
    """A known mistake behind an exception the student's code raised (its message), or None."""
    for code, pattern, advice in KNOWN_EXCEPTIONS:
        if pattern.search(message or ""):
            return Finding(code, advice)
    return None


INPLACE_SAVED = "modified by an inplace operation"  # torch's error when a saved tensor was overwritten


def diagnose_fault(kind: str, message: str) -> Finding | None:
    """A fault of the student's code that is a mistake to name, not a crash: autograd rejecting what
    backward returned, or torch refusing a saved tensor that was overwritten in place. None for the
    others (they are errors)."""
    if kind == "rejected":
        return diagnose_rejection(message)
    if kind == "wrong_dtype":
        return Finding("wrong_dtype", message)
    if INPLACE_SAVED in message:
        tensor = re.search(r"\[torch\.\w+ \[[\d, ]*\]\]", message)
        what = f" ({tensor.group(0)[1:-1]})" if tensor else ""
        return Finding("mutates_saved", f"a tensor saved for backward{what} was overwritten in place, so autograd "
                       "refuses it when backward runs again (as gradcheck does): work on a copy (x.clone()) or out "
                       "of place (x * y, not x.mul_(y))")
    return None
