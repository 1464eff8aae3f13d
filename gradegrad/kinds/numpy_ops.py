"""The chain exercise's building blocks, `dot`, `add`, `squared_loss`, in the seed's functional style.

`backward_diff_chain` is graded with these (not with the student's own vjps, graded separately),
so one mistake costs one exercise. Their vjps come from torch autograd, not from hand-written
formulas: the grader ships no solution to the `vjp` exercises. Runs in the child process.

As in the notes, a parameter's gradient keeps one row per example (`dot`'s W gets
`einsum('na,nb->nab', x, u)`, `add`'s b gets u itself) and the optimizer sums them: a chain that
passes them on (`J[k] = vjp_param`) and one that sums them (`J[k] = vjp_param.sum(0)`) both train.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def numpy_function(name: str, expr: Callable[..., torch.Tensor], differentiable: tuple[bool, bool]):
    """f(x, p) on NumPy arrays computed by `expr` on tensors, with f.make_vjp(x, p) -> vjp(u).

    vjp(u) returns (J_x^T u, J_p^T u); the gradient of p has one row per example (shape
    (n, *p.shape), from `torch.func.vmap` over the rows of x and u), or zeros for a p that is not
    differentiable (a target); u=None stands for the gradient 1 of a scalar loss.
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
            grad_x = torch.autograd.grad(out, leaves[0], upstream)[0].numpy()
            if not differentiable[1]:
                return grad_x, np.zeros_like(np.asarray(p))
            return grad_x, _per_example(expr, leaves[0].detach(), leaves[1].detach(), upstream).numpy()

        return vjp

    f.__name__ = f.__qualname__ = name
    f.make_vjp = make_vjp
    return f


def _per_example(expr: Callable[..., torch.Tensor], x: torch.Tensor, p: torch.Tensor,
                 u: torch.Tensor) -> torch.Tensor:
    """The parameter's gradient of each example (row of x and u): shape (n, *p.shape)."""

    def one(xn: torch.Tensor, un: torch.Tensor) -> torch.Tensor:
        return torch.func.vjp(lambda q: expr(xn.unsqueeze(0), q), p)[1](un.unsqueeze(0))[0]

    return torch.func.vmap(one)(x, u)


dot = numpy_function("dot", lambda x, w: x @ w, (True, True))
add = numpy_function("add", lambda x, b: x + b, (True, True))
squared_loss = numpy_function("squared_loss", lambda y_pred, y: torch.sum((y - y_pred) ** 2).reshape(1), (True, False))
FUNCS = (dot, add, squared_loss)
