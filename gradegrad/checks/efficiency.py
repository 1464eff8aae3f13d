"""`efficiency`: the memory forward and backward allocate grows no faster than the reference's.

At each size n of the manifest's `efficiency` block, the child runs the student's forward and
then backward once, under a `ByteCounter`, and replies the bytes each allocated (facts). The
grader measures its reference expression the same way, fits how the bytes grow (k in bytes ~ n^k,
between the two largest sizes measured) and compares the exponents. Bytes, not seconds: the same
numbers every run, on every machine. A backward that builds the n x n softmax Jacobian grows as
n^2 where the reference grows as n; any O(n) formula passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch

from gradegrad.cases import make_grad_output, make_inputs
from gradegrad.catalog import Case, Exercise
from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Fault
from gradegrad.growth import Growth, judge, size_text
from gradegrad.reference import reference_output
from gradegrad.sandbox.measure import ByteCounter
from gradegrad.sandbox.remote import Measured

MEMORY_CAP = 1 << 30  # do not run a size whose projected bytes exceed this (or a quarter of --memory)
ONE_SIZE_FACTOR = 64  # with a single size measured, fail only beyond this many times the reference's bytes
TIME_SAFETY = 3.0  # run a size only if this many times its projected duration is left of the budget


@dataclass(frozen=True)
class Point:
    """One size: the student's bytes (facts from the child) and the reference's, measured here."""

    n: int
    forward: int
    backward: int
    reference_forward: int
    reference_backward: int
    inputs: int = 0  # bytes of the tensor inputs: allocating as much is never inefficient
    seconds: float = 0.0


def growths(points: list[Point], phase: str) -> tuple[Growth, Growth]:
    """(the student's, the baseline's) growth in `phase` (forward or backward).

    The baseline is the reference's bytes, or the inputs' bytes where larger: a fused reference
    kernel (torch.dot allocates 8 bytes) must not fail a forward that allocates a temporary the
    size of its inputs.
    """
    sizes = tuple(p.n for p in points)
    mine = tuple(getattr(p, phase) for p in points)
    theirs = tuple(max(getattr(p, f"reference_{phase}"), p.inputs) for p in points)
    return Growth(sizes, mine), Growth(sizes, theirs)


def ctx_hint(names: tuple[str, ...]) -> str:
    """A hint (not a failure) for tensors kept as ctx attributes instead of save_for_backward."""
    if not names:
        return ""
    listed = " and ".join(f"ctx.{n}" for n in names[:3])
    verb = "holds a tensor" if len(names) == 1 else "hold tensors"
    return (f" Hint: {listed} {verb}; pass tensors to ctx.save_for_backward(...) and read them from "
            "ctx.saved_tensors: autograd then checks they were not changed in place, frees them with the "
            "graph, and double backward works.")


def sized_case(ex: Exercise, n: int) -> Case:
    """The first case's inputs with the shapes of the efficiency block at size n."""
    spec = ex.efficiency
    inputs = tuple(replace(s, shape=spec.shape(s.name, n)) if spec.shape(s.name, n) is not None else s
                   for s in ex.inputs)
    return Case(f"efficiency-n{n}", inputs)


def reference_bytes(ex: Exercise, args: list[Any], grad_output_of) -> tuple[torch.Tensor, int, int]:
    """(grad_output, forward bytes, backward bytes) of the reference expression with autograd."""
    leaves = [a.detach().clone().requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
              for s, a in zip(ex.inputs, args)]
    wanted = [a for s, a in zip(ex.inputs, leaves) if s.differentiable]
    with torch.enable_grad():
        with ByteCounter() as forward:
            out = reference_output(ex, leaves)
        grad_output = grad_output_of(out.detach())
        with ByteCounter() as backward:
            torch.autograd.grad(out, wanted, grad_output, allow_unused=True)
    return grad_output, forward.bytes, backward.bytes


def _cap(ctx: CheckContext) -> float:
    memory = ctx.runner.sub.limits.memory
    return min(MEMORY_CAP, memory / 4) if memory else MEMORY_CAP


@dataclass(frozen=True)
class Stop:
    """Why the next size is not run: its projected memory, or the time left."""

    reason: str
    memory: bool


def _stop_before(ctx: CheckContext, points: list[Point], n: int) -> Stop | None:
    """Why size n is not run (the projected memory or time is too large), or None to run it."""
    if not points:
        return None
    grown = sum(growths(points, phase)[0].projected(n) for phase in ("forward", "backward"))
    if grown > _cap(ctx):
        return Stop(f"n = {n} would allocate about {size_text(grown)}", True)
    last = points[-1]
    exponents = [growths(points, p)[0].exponent for p in ("forward", "backward")] if len(points) > 1 else []
    if TIME_SAFETY * last.seconds * (n / last.n) ** max([1.0, *exponents]) > ctx.runner.remaining():
        return Stop(f"n = {n} would not fit in the exercise's time budget", False)
    return None


@lru_cache(maxsize=128)
def _reference_at(ex: Exercise, n: int, seed: int) -> tuple[list[Any], torch.Tensor, int, int]:
    """Inputs, upstream gradient and the reference's bytes at size n: the same for every
    submission of a batch, so measured once per grading process (callers must not modify them)."""
    case = sized_case(ex, n)
    args = make_inputs(ex, case, seed)
    grad_output, ref_forward, ref_backward = reference_bytes(
        ex, args, lambda out: make_grad_output(out, seed, ex.id, case.name))
    return args, grad_output, ref_forward, ref_backward


def _measure(ctx: CheckContext, n: int) -> tuple[Point, Measured] | Verdict:
    """Measure the student's Function and the reference at size n."""
    ex, runner = ctx.exercise, ctx.runner
    args, grad_output, ref_forward, ref_backward = _reference_at(ex, n, runner.seed)
    mask = [s.differentiable for s in ex.inputs]
    start = time.monotonic()
    got = runner.guarded(lambda: runner.sub.measure(runner.class_name, args, mask, grad_output,
                                                    timeout=runner.remaining()), "efficiency")
    if isinstance(got, Fault):
        return _fault(got, n, ref_forward + ref_backward)
    if got.problem or got.backward_bytes is None:
        return _problem(got, n, tuple(grad_output.shape))
    inputs = sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))
    point = Point(n, got.forward_bytes, got.backward_bytes, ref_forward, ref_backward, inputs,
                  time.monotonic() - start)
    return point, got


def _fault(fault: Fault, n: int, reference: int) -> Verdict:
    if fault.kind == "memory":
        return Verdict.failed(Finding("inefficient_backward", f"forward and backward ran out of memory at n = {n}, "
                                      f"where the reference allocates {size_text(reference)}: their memory grows "
                                      "too fast. Does backward build the full Jacobian?"))
    return Verdict.fault(fault, f"efficiency (n = {n}): ")


def _problem(got: Measured, n: int, expected: tuple[int, ...]) -> Verdict:
    if got.problem == "shape":
        return Verdict.failed(Finding("wrong_shape", f"efficiency: at n = {n} forward returned shape "
                                      f"{tuple(got.shape)}, expected {expected}"))
    return Verdict.failed(Finding("detached", f"efficiency: at n = {n} the output of forward has no grad_fn, "
                                  "so backward cannot be measured"))


def _summary(points: list[Point]) -> str:
    last, parts = points[-1], []
    for phase in ("backward", "forward"):
        mine, theirs = growths(points, phase)
        parts.append(f"{phase} allocates {size_text(getattr(last, phase))} at n = {last.n} and grows as "
                     f"n^{mine.exponent:.2f} (the reference: n^{theirs.exponent:.2f})")
    return "; ".join(parts) + "."


def _one_size(point: Point, stop: Stop) -> Verdict:
    """Only the smallest size could run: fail if its memory alone is far beyond the reference's."""
    baseline = max(point.reference_forward, point.inputs) + max(point.reference_backward, point.inputs)
    if point.forward + point.backward <= ONE_SIZE_FACTOR * baseline:
        return Verdict("error", f"efficiency: not run: {stop.reason} (measured n = {point.n} only; "
                       "a larger --memory lets it run)")
    return Verdict.failed(Finding("inefficient_backward", f"forward and backward allocate "
                                  f"{size_text(point.forward + point.backward)} at n = {point.n} already, against "
                                  f"{size_text(baseline)} for the reference, and {stop.reason}: their memory grows "
                                  "far too fast. Does backward build the full Jacobian?"))


@register("efficiency", applies=lambda ex: ex.efficiency is not None)
def efficiency(ctx: CheckContext) -> Verdict:
    points: list[Point] = []
    hint, stop = "", None
    for n in ctx.exercise.efficiency.sizes:
        stop = _stop_before(ctx, points, n)
        if stop:
            break
        measured = _measure(ctx, n)
        if isinstance(measured, Verdict):
            return measured
        point, got = measured
        points.append(point)
        hint = hint or ctx_hint(got.ctx_tensors)
    if len(points) < 2:
        if stop.memory:
            return _one_size(points[0], stop)
        return Verdict("error", f"efficiency: not run: {stop.reason} (measured n = {points[0].n} only; "
                       "a larger --timeout lets it run)")
    note = f" Measured up to n = {points[-1].n}: {stop.reason}." if stop else ""
    for phase in ("backward", "forward"):
        finding = judge(phase, *growths(points, phase))
        if finding:
            return Verdict("failed", finding.message + note + hint, finding.code)
    return Verdict("passed", _summary(points) + note + hint)
