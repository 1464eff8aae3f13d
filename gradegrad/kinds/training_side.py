"""The child side of `training`: the notes' loops, driven by the student's code.

`numpy_sgd`: the notes' 10-epoch loop over `backward_diff_chain` (gradegrad's, with the notes'
per-example vjps) and the student's `optim_SGD(grads, learning_rate)` and
`update_params(updates, params)`. `torch_sgd`: the student's `train(model, x, y, epochs, lr)` on
the notes' `nn.Sequential(nn.Linear(2, 1))` initialised from W and b. `haiku_optax`: the
student's `train(x, y, W, b, epochs, lr) -> (losses, params)` in JAX (imported here, lazily).
Only numbers come back: the losses, the first updates, the final parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gradegrad.kinds.numpy_side import to_array, to_tensor
from gradegrad.sandbox.protocol import encode_value

MAX_LOSSES = 1000


def _chain(x: Any, funcs: list, params: list) -> tuple[Any, Any, list]:
    """The notes' backward_diff_chain (given code there), on gradegrad's dot, add, squared_loss."""
    xs = [x]
    for f, p in zip(funcs, params):
        xs.append(f(xs[-1], p))
    u, J = None, [None] * len(funcs)
    for k in reversed(range(len(funcs))):
        u, J[k] = funcs[k].make_vjp(xs[k], params[k])(u)
    return xs[-1], u, J


def _numbers(values: Any) -> list[Any]:
    items = list(values)[:MAX_LOSSES] if isinstance(values, (list, tuple)) else [values]
    out = []
    for v in items:
        if isinstance(v, torch.Tensor):
            out.append(v.detach().cpu())
        else:
            out.append(to_tensor(np.asarray(v)) if isinstance(v, (np.ndarray, np.generic, float, int)) else v)
    return out


def _numpy_sgd(evaluator: Any, msg: Any) -> dict:
    from gradegrad.kinds.numpy_ops import FUNCS

    optim = evaluator.find_function(msg.header["function"])
    update = evaluator.find_function("update_params")
    x, y, w, b = (to_array(a) for a in msg.value(msg.header["args"]))
    params: Any = [w, b, y]
    losses, first = [], None
    for _ in range(int(msg.header["epochs"])):
        loss, _, grads = _chain(x, list(FUNCS), list(params))
        losses.append(loss)
        updates = optim(grads, float(msg.header["lr"]))
        first = list(updates)[:2] if first is None else first
        params = update(updates, params)
    return {"losses": _numbers(losses), "updates": _numbers(first or []), "params": _numbers(list(params)[:2])}


def _torch_sgd(evaluator: Any, msg: Any) -> dict:
    train = evaluator.find_function(msg.header["function"])
    x, y, w, b = msg.value(msg.header["args"])
    model = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(w.T.float())
        model[0].bias.copy_(b.float())
    losses = train(model, x.float(), y.float(), int(msg.header["epochs"]), float(msg.header["lr"]))
    return {"losses": _numbers(losses), "params": [p.detach().clone() for p in model[0].parameters()]}


def _haiku_optax(evaluator: Any, msg: Any) -> dict:
    import jax  # the `jax` extra, imported in this child only

    train = evaluator.find_function(msg.header["function"])
    x, y, w, b = (to_array(a) for a in msg.value(msg.header["args"]))
    losses, params = train(x, y, w, b, int(msg.header["epochs"]), float(msg.header["lr"]))
    leaves = [np.asarray(v) for v in jax.tree_util.tree_leaves(params)][:16]
    return {"losses": _numbers([np.asarray(v) for v in list(losses)[:MAX_LOSSES]]), "params": _numbers(leaves)}


LOOPS = {"numpy_sgd": _numpy_sgd, "torch_sgd": _torch_sgd, "haiku_optax": _haiku_optax}


def train(evaluator: Any, msg: Any, tensors: list) -> dict:
    result = LOOPS[msg.header["loop"]](evaluator, msg)
    return {"ok": True, **{k: encode_value(v, tensors) for k, v in result.items()}}
