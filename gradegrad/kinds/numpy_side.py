"""NumPy inside the child: call a student's functional-style code, send back tensors.

Imported only in the child process, on request. It turns the grader's tensors into NumPy arrays,
calls the student's function, and turns what came back into tensors, so that the parent receives
raw bytes (or a type name), never a NumPy object. Every verdict is computed in the parent.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

MAX_VALUES = 16  # gradients kept from one vjp or one chain step


def to_array(value: Any) -> Any:
    """A tensor from the grader as a NumPy array (a copy); anything else unchanged."""
    return value.detach().cpu().numpy().copy() if isinstance(value, torch.Tensor) else value


def to_tensor(value: Any) -> Any:
    """A NumPy array or number as a tensor; other values are left as they are (sent as a type name)."""
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "fiub":
        return torch.from_numpy(np.ascontiguousarray(np.array(value)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(value, dtype=torch.float64)
    return value


def _values(result: Any) -> list[Any]:
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    return [to_tensor(v) for v in items[:MAX_VALUES]]


def call(fn: Callable[..., Any], args: Sequence[Any], vjp: bool, u: Any) -> Any:
    """f(x, p), or the list f.make_vjp(x, p)(u) returned."""
    arrays = [to_array(a) for a in args]
    if not vjp:
        return to_tensor(fn(*arrays))
    return _values(fn.make_vjp(*arrays)(None if u is None else to_array(u)))


def _step(param: np.ndarray, grad: Any, lr: float) -> np.ndarray:
    """SGD on one parameter; a gradient with one row per example is summed over them first."""
    grad = np.asarray(grad)
    if grad.shape != np.shape(param):
        grad = grad.sum(0)
    return param - lr * grad


def train(backward_diff_chain: Callable[..., Any], x: Any, y: Any, w: Any, b: Any, steps: int,
          lr: float) -> tuple[list[Any], list[Any]]:
    """The seed's training loop: the losses of every step, and the gradients of the first one."""
    from gradegrad.kinds.numpy_ops import FUNCS

    x, params = to_array(x), [to_array(w), to_array(b), to_array(y)]
    losses: list[Any] = []
    first: list[Any] = []
    for step in range(steps):
        loss, grad_x, grads = backward_diff_chain(x, list(FUNCS), list(params))
        grads = list(grads)
        losses.append(to_tensor(loss))
        if step == 0:
            first = [to_tensor(grad_x), *_values(grads)]
        params = [_step(p, g, lr) for p, g in zip(params, grads)]
    return losses, first
