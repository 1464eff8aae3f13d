"""The child side of `ode` (what forward keeps for backward) and `ode_field` (torchdiffeq).

Facts only: byte counts of the tensors an output's graph holds, and numbers from
`torchdiffeq.odeint_adjoint` on the student's field. The grader judges them.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from gradegrad.sandbox.protocol import encode_value

MAX_NODES = 200_000  # graph nodes walked for one output


def _tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)) and depth < 3:
        for v in value[:10_000]:
            yield from _tensors(v, depth + 1)
    elif isinstance(value, dict) and depth < 3:
        for v in list(value.values())[:10_000]:
            yield from _tensors(v, depth + 1)


def _held(node: Any) -> Iterator[torch.Tensor]:
    """The tensors a graph node keeps: a built-in node's `_saved_*`, a Function's saved tensors and
    whatever its ctx holds in attributes."""
    for name in dir(node):
        if name.startswith("_saved_"):
            try:
                yield from _tensors(getattr(node, name))
            except Exception:  # noqa: BLE001 - a freed or unreadable slot holds nothing
                pass
    if hasattr(node, "saved_tensors"):
        try:
            yield from _tensors(tuple(node.saved_tensors))
        except Exception:  # noqa: BLE001
            pass
    yield from _tensors(dict(getattr(node, "__dict__", {}) or {}))


def held_bytes(out: torch.Tensor) -> int:
    """Bytes of the distinct storages reachable from `out`'s graph (what backward may still read)."""
    storages: dict[int, int] = {}
    seen: dict[int, Any] = {}  # id -> node, kept alive so ids are not reused during the walk
    stack = [out.grad_fn]
    while stack and len(seen) < MAX_NODES:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        for t in _held(node):
            if t.layout == torch.strided and t.device.type != "meta":
                storage = t.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
            if t.grad_fn is not None:
                stack.append(t.grad_fn)
        stack.extend(fn for fn, _ in node.next_functions)
    return sum(storages.values())


def retained(evaluator: Any, msg: Any, tensors: list) -> dict:
    """At each size, forward on the given arguments; the bytes its output's graph holds."""
    cls = evaluator.find(msg.header["class"])
    counts: list[int | None] = []
    for args in msg.value(msg.header["sizes"]):
        prepared = [evaluator.prepare(a, rg) for a, rg in zip(args, msg.header["requires_grad"])]
        out = cls.apply(*prepared)
        counts.append(held_bytes(out) if isinstance(out, torch.Tensor) and out.grad_fn is not None else None)
        del out, prepared
    return {"ok": True, "bytes": counts}


def field(evaluator: Any, msg: Any, tensors: list) -> dict:
    """The student's nn.Module field integrated by torchdiffeq.odeint_adjoint, as in the notes: the
    trajectory, and the gradient of <trajectory, v> with respect to y0 (through the adjoint)."""
    from torchdiffeq import odeint_adjoint  # the `ode` extra; imported in this child only

    cls = evaluator.find(msg.header["class"])
    y0, t, v = msg.value(msg.header["args"])
    y0 = y0.clone().requires_grad_(True)
    func = cls()
    traj = odeint_adjoint(func, y0, t, rtol=1e-10, atol=1e-12, adjoint_params=tuple(func.parameters()))
    reply: dict[str, Any] = {"ok": True, "trajectory": encode_value(traj.detach(), tensors)}
    if isinstance(traj, torch.Tensor) and traj.grad_fn is not None:
        grad = torch.autograd.grad((traj * v).sum(), y0, allow_unused=True)[0]
        reply["grad"] = encode_value(grad, tensors)
    return reply
