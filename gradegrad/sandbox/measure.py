"""Measurements of a Function beyond its values: bytes allocated, second derivatives, tangents.

`ByteCounter` counts the bytes of the new storages torch creates; the grader uses it on the
reference expression (the model the `efficiency` check compares with; the student's memory is
the kernel's count, read by the grader, see `meter.py`). The other functions run in the child
and return facts (numbers and tensors); the grader judges them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.autograd.forward_ad as fwAD
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MAX_NAMES = 20


def _storages(values: Any) -> list[torch.UntypedStorage]:
    leaves, _ = tree_flatten(values)
    return [t.untyped_storage() for t in leaves if isinstance(t, torch.Tensor)]


class ByteCounter(TorchDispatchMode):
    """Sums the bytes of every new storage the aten ops create (views and in-place writes are free).

    A storage is new when no input of the op shares it; the total counts every temporary, even
    one freed at once, so it depends on the algorithm and the sizes only (not on time or on the
    allocator). Run on the reference in the grader; in a student's process it would be only that
    process's word (a dispatch mode can be switched off).
    """

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # else torch wraps __torch_dispatch__ and imports torch._dynamo (a second)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {s.data_ptr() for s in _storages((args, kwargs))}
        for storage in _storages(out):
            ptr = storage.data_ptr()
            if ptr not in inputs:
                inputs.add(ptr)  # an op returning the same new storage twice counts it once
                self.bytes += storage.nbytes()
        return out


def tensor_attributes(ctx: Any) -> list[str]:
    """Names of the attributes set on ctx that hold tensors (directly or in a list, tuple or dict)."""
    names = []
    for name, value in list(getattr(ctx, "__dict__", {}).items()):
        inner = list(value.values()) if isinstance(value, dict) else value
        inner = inner if isinstance(inner, (list, tuple)) else [inner]
        if any(isinstance(v, torch.Tensor) for v in inner):
            names.append(str(name)[:100])
    return sorted(names)[:MAX_NAMES]


def second_order(cls: type, args: Sequence[Any], grad_output: torch.Tensor,
                 directions: Sequence[torch.Tensor | None]) -> tuple[list[bool], list[Any]]:
    """Differentiate backward: d<backward(v), u>/d(inputs, v) through the student's own graph.

    Returns, per argument, whether the gradient backward returned is connected to the graph,
    then the second derivatives for every argument and, last, for grad_output (None: unused).
    """
    wanted = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    out = cls.apply(*args)
    v = grad_output.to(out.device).detach().requires_grad_(True)
    firsts = iter(torch.autograd.grad(out, wanted, v, create_graph=True, allow_unused=True))
    grads = [next(firsts) if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args]
    connected = [isinstance(g, torch.Tensor) and g.requires_grad for g in grads]
    terms = [(g * u.to(g.device)).sum() for g, u, c in zip(grads, directions, connected) if c and u is not None]
    if not terms:
        return connected, [None] * (len(args) + 1)
    seconds = iter(torch.autograd.grad(torch.stack(terms).sum(), [*wanted, v], allow_unused=True))
    second = [next(seconds) if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args]
    return connected, [*second, next(seconds)]


def has_jvp(cls: type) -> bool:
    return getattr(cls, "jvp", None) is not getattr(torch.autograd.Function, "jvp", None)


def forward_tangent(cls: type, args: Sequence[Any], tangents: Sequence[torch.Tensor | None]) -> Any:
    """The output's tangent in forward-mode AD (the student's `jvp`), or None if it has none."""
    with fwAD.dual_level():
        duals = [fwAD.make_dual(a, t.to(a.device)) if isinstance(a, torch.Tensor) and t is not None else a
                 for a, t in zip(args, tangents)]
        out = cls.apply(*duals)
        if not isinstance(out, torch.Tensor):
            return None
        tangent = fwAD.unpack_dual(out).tangent
        return None if tangent is None else tangent.detach().clone()
