"""The child side of `jax_vjp`: the student's `jax.custom_vjp` functions, called through `jax.vjp`.

JAX is imported here, in the evaluator that answers the request, never in the zygote or the
grader: forking after JAX has started its threads is unsafe. float64 (`jax_enable_x64`) as in
`jax.test_util.check_grads`. Arrays go back as tensors (raw bytes); the grader compares them with
its torch float64 reference and runs gradcheck on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gradegrad.sandbox.protocol import encode_value


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _tensor(value: Any) -> Any:
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - not an array: its type name goes back
        return value
    return torch.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind in "fiub" else value


def vjp(evaluator: Any, msg: Any, tensors: list) -> dict:
    """f(x, p) (phase forward), or the cotangents of jax.vjp(f, x, p) for u (phase backward)."""
    jax = _jax()
    fn = evaluator.find_function(msg.header["function"])
    x, p = (np.asarray(a.detach().numpy()) for a in msg.value(msg.header["args"]))
    if msg.header.get("phase") == "forward":
        return {"ok": True, "value": encode_value(_tensor(fn(x, p)), tensors)}
    out, pullback = jax.vjp(fn, x, p)
    u = msg.value(msg.header.get("u"))
    cotangent = np.ones(np.shape(out), dtype=np.asarray(out).dtype) if u is None else u.numpy()
    grads = pullback(cotangent)
    return {"ok": True, "value": encode_value([_tensor(g) for g in list(grads)[:4]], tensors)}
