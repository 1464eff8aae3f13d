"""The chain exercise's building blocks, `dot`, `add`, `squared_loss`, in the seed's functional style.

`backward_diff_chain` is graded with these (not with the student's own vjps, graded separately),
so one mistake costs one exercise. Their vjps come from torch autograd, not from hand-written
formulas: the grader ships no solution to the `vjp` exercises. Runs in the child process.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def numpy_function(name: str, expr: Callable[..., torch.Tensor], differentiable: tuple[bool, bool]):
    """f(x, p) on NumPy arrays computed by `expr` on tensors, with f.make_vjp(x, p) -> vjp(u).

    vjp(u) returns (J_x^T u, J_p^T u), the gradient of p summed over the batch (zeros for a p that
    is not differentiable, such as a target); u=None stands for the gradient 1 of a scalar loss.
    """

    def tensors(x: Any, p: Any, grad: bool = False) -> list[torch.Tensor]:
        dtype = np.result_type(np.asarray(x), np.asarray(p))
        return [torch.from_numpy(np.array(a, dtype=dtype)).requires_grad_(grad and d)
                for a, d in zip((x, p), differentiable)]

    def f(x: Any, p: Any) -> np.ndarray:
        return expr(*tensors(x, p)).numpy()

    def make_vjp(x: Any, p: Any) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
        def vjp(u: Any) -> tuple[np.ndarray, np.ndarray]:
            leaves = tensors(x, p, grad=True)
            out = expr(*leaves)
            if u is not None and np.shape(u) != tuple(out.shape):
                raise ValueError(f"{name}.make_vjp(x, p)(u) got u of shape {np.shape(u)}, but {name}'s output "
                                 f"has shape {tuple(out.shape)}: pass the vjp of the next function")
            upstream = (torch.ones_like(out) if u is None
                        else torch.from_numpy(np.asarray(u, dtype=np.float64)).to(out.dtype))
            wanted = [t for t in leaves if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, upstream))
            return tuple(next(grads).numpy() if t.requires_grad else np.zeros_like(np.asarray(a))
                         for t, a in zip(leaves, (x, p)))

        return vjp

    f.__name__ = f.__qualname__ = name
    f.make_vjp = make_vjp
    return f


dot = numpy_function("dot", lambda x, w: x @ w, (True, True))
add = numpy_function("add", lambda x, b: x + b, (True, True))
squared_loss = numpy_function("squared_loss", lambda y_pred, y: torch.sum((y - y_pred) ** 2).reshape(1), (True, False))
FUNCS = (dot, add, squared_loss)
