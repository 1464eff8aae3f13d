"""Evaluate an exercise's reference expression, and its gradients, in the grading process."""

from __future__ import annotations

import math
from functools import lru_cache
from types import CodeType
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from gradegrad.catalog import Exercise
from gradegrad.errors import ManifestError


@lru_cache(maxsize=None)
def _compiled(expr: str, path: str) -> CodeType:
    return compile(expr, f"{path}:reference", "eval")


_MEMO: dict[tuple, Any] = {}
MEMO_SIZE = 4096


def memo(key: tuple, compute: Callable[[], Any]) -> Any:
    """A reference result by key. Inputs and upstream gradients are seeded, so a key of
    (exercise, case, dtype, mask, seed, ...) fixes the result: every submission of a batch shares
    it. Callers must not modify what they get."""
    hit = _MEMO.get(key)
    if hit is None:
        if len(_MEMO) >= MEMO_SIZE:
            _MEMO.clear()
        hit = _MEMO[key] = compute()
    return hit


def reference_output(ex: Exercise, args: Sequence[Any]) -> torch.Tensor:
    # names were validated at load (inputs, torch, F, math, solvers); torch may import through the frame's
    # builtins (e.g. inside a dispatch mode), so __import__ is the one builtin given
    from gradegrad.kinds import solvers

    scope = {"torch": torch, "F": F, "math": math, "solvers": solvers, "__builtins__": {"__import__": __import__}}
    scope.update({spec.name: a for spec, a in zip(ex.inputs, args)})
    try:
        out = eval(_compiled(ex.reference, ex.path), scope)  # instructor's manifest, never student data
    except Exception as exc:
        raise ManifestError(ex.path, "reference", f"evaluating {ex.reference!r} failed: {exc}") from None
    if not isinstance(out, torch.Tensor):
        raise ManifestError(ex.path, "reference", f"must evaluate to a tensor, got {type(out).__name__}")
    return out


def reference_gradients(ex: Exercise, args: Sequence[Any], mask: Sequence[bool],
                        grad_output: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The reference output and the gradient of every input in `mask` (None for the others)."""
    leaves = [a.detach().clone().requires_grad_(m) if isinstance(a, torch.Tensor) else a
              for a, m in zip(args, mask)]
    with torch.enable_grad():
        out = reference_output(ex, leaves)
        wanted = [a for a, m in zip(leaves, mask) if m]
        grads = iter(torch.autograd.grad(out, wanted, grad_output, allow_unused=True)) if wanted else iter(())
    result = []
    for a, m in zip(leaves, mask):
        g = next(grads) if m else None
        result.append(torch.zeros_like(a) if m and g is None else g)
    return out.detach(), result
