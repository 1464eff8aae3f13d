"""Evaluate an exercise's reference expression, and its gradients, in the grading process."""

from __future__ import annotations

import ast
import math
from functools import lru_cache
from types import CodeType, ModuleType
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from gradegrad.catalog import Exercise
from gradegrad.errors import ManifestError


# the modules a reference may reach through attributes of torch, F, math and solvers (torch.linalg.norm)
ALLOWED_MODULES = ("torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.special",
                   "math", "gradegrad.kinds.solvers")


# the classes a reference may reach through torch, F, math and solvers (torch.finfo(x.dtype).eps); no other:
# torch.nn.Linear draws random weights, torch.CompilationUnit compiles TorchScript, torch.Generator seeds
ALLOWED_CLASSES = ("finfo", "iinfo", "Size", "dtype", "device", "Tensor")


def _chain(node: ast.AST) -> list[str]:
    """`torch.linalg.norm` as ["torch", "linalg", "norm"]; [] when the chain does not start at a name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id, *reversed(names)] if isinstance(node, ast.Name) else []


def _reach_only_math(expr: str, path: str, field: str = "reference") -> None:
    """Refuse an attribute chain from torch, F, math or solvers that passes through any other module
    (`torch.os.system`): the grader evaluates the reference with its own rights."""
    from gradegrad.kinds import solvers

    roots = {"torch": torch, "F": F, "math": math, "solvers": solvers}
    for node in ast.walk(ast.parse(expr, mode="eval")):
        names = _chain(node) if isinstance(node, ast.Attribute) else []
        if not names or names[0] not in roots:
            continue
        value = roots[names[0]]
        for i, name in enumerate(names[1:], start=1):
            value = getattr(value, name, None)
            if isinstance(value, ModuleType) and value.__name__ not in ALLOWED_MODULES:
                raise ManifestError(path, field, f"{'.'.join(names[:i + 1])} is the module {value.__name__}, "
                                    f"which a reference may not use (only {', '.join(ALLOWED_MODULES)})")
            if isinstance(value, type) and name not in ALLOWED_CLASSES:
                raise ManifestError(path, field, f"{'.'.join(names[:i + 1])} is a class, which a reference may not "
                                    f"use (only {', '.join(ALLOWED_CLASSES)}): a formula calls functions")


@lru_cache(maxsize=None)
def _compiled(expr: str, path: str, field: str = "reference") -> CodeType:
    _reach_only_math(expr, path, field)
    return compile(expr, f"{path}:{field}", "eval")


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


def _evaluate(ex: Exercise, expr: str, field: str, names: dict[str, Any]) -> torch.Tensor:
    # names were validated at load (inputs, torch, F, math, solvers); torch may import through the frame's
    # builtins (e.g. inside a dispatch mode), so __import__ is the one builtin given
    from gradegrad.kinds import solvers

    scope = {"torch": torch, "F": F, "math": math, "solvers": solvers, "__builtins__": {"__import__": __import__}}
    scope.update(names)
    code = _compiled(expr, ex.path, field)  # a ManifestError of its own when it reaches past torch's math
    try:
        out = eval(code, scope)  # instructor's manifest, never student data
    except Exception as exc:
        raise ManifestError(ex.path, field, f"evaluating {expr!r} failed: {exc}") from None
    if not isinstance(out, torch.Tensor):
        raise ManifestError(ex.path, field, f"must evaluate to a tensor, got {type(out).__name__}")
    return out


def reference_output(ex: Exercise, args: Sequence[Any]) -> torch.Tensor:
    return _evaluate(ex, ex.reference, "reference", {spec.name: a for spec, a in zip(ex.inputs, args)})


def mistaken(ex: Exercise, args: Sequence[Any], out: torch.Tensor, grad_output: torch.Tensor | None,
             name: str | None = None, strict: bool = False) -> list[tuple[torch.Tensor, str]]:
    """The numbers each of the exercise's `mistakes` gives, with what it says: for forward's output
    (`name` None) or for the gradient of the input `name`. One that fails to evaluate (unless
    `strict`: a ManifestError) or is not of the shape of `out` or of that input is left out: it only
    helps name a result already wrong (`gradegrad validate` reports it)."""
    names = {spec.name: a for spec, a in zip(ex.inputs, args)}
    like = out if name is None else names[name]
    scope = {**names, "out": out.detach(), "grad_output": grad_output}
    found = []
    for i, m in enumerate(ex.mistakes):
        expr = m.output if name is None else dict(m.gradients).get(name)
        if expr is None:
            continue
        field = f"mistakes[{i}]." + ("output" if name is None else f"gradient.{name}")
        try:
            with torch.no_grad():
                value = _evaluate(ex, expr, field, scope)
        except ManifestError:
            if strict:
                raise
            continue
        if value.shape == like.shape:
            found.append((value, m.says))
    return found


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
