"""`efficiency`: the memory forward and backward use stays of the reference's order.

At the largest size n of the manifest's `efficiency` block, the evaluator runs the student's
forward, then its raw backward, once each, on inputs the grader shares with it (decoding them
allocates nothing). Around each phase the grader resets and reads the kernel's account of the
evaluator's memory itself (`sandbox/meter.py`: the peak of the tree's cgroup, or its processes'
VmHWM): those are the numbers judged. The reference is measured in the grader: its expression
with autograd at the same size, counting the bytes of every new storage (`ByteCounter`). The pass
rule (`growth.py`): a phase fails beyond 8 times the reference's bytes (or the inputs'), and
never below 16 MiB, so allocator noise cannot fail anyone and a Jacobian-sized matrix cannot pass.

That the memory measured is backward's is checked too: the evaluator sends back the gradients it
computed, projected on random probes of the grader's, which compares them with the reference's
projections. An evaluator that skips the student's backward while it is measured cannot produce
them without computing the gradient some other way (which is an efficient backward after all);
when the student's backward is right on the ordinary cases, a mismatch fails the check.
The evaluator's own account of its memory is never used; only the names of ctx attributes
holding tensors, which it reports, become a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch

from gradegrad.cases import generator, make_grad_output, make_inputs
from gradegrad.catalog import Case, Exercise
from gradegrad.registry import register, skipped_on
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import first_case, gradient_finding, ordinary_cases
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Fault
from gradegrad.growth import allowance, judge, size_text
from gradegrad.reference import reference_output
from gradegrad.sandbox.measure import ByteCounter
from gradegrad.sandbox.remote import Measured


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


def reference_bytes(ex: Exercise, args: list[Any], grad_output_of) -> tuple[torch.Tensor, int, int, list[Any]]:
    """(grad_output, forward bytes, backward bytes, gradients) of the reference expression with autograd."""
    leaves = [a.detach().clone().requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
              for s, a in zip(ex.inputs, args)]
    wanted = [a for s, a in zip(ex.inputs, leaves) if s.differentiable]
    with torch.enable_grad():
        with ByteCounter() as forward:
            out = reference_output(ex, leaves)
        grad_output = grad_output_of(out.detach())
        with ByteCounter() as backward:
            found = iter(torch.autograd.grad(out, wanted, grad_output, allow_unused=True))
    grads = [next(found) if s.differentiable else None for s in ex.inputs]
    return grad_output, forward.bytes, backward.bytes, grads


@dataclass(frozen=True)
class Reference:
    """What the check needs at size n, the same for every submission of a batch (measured once
    per grading process; callers must not modify the tensors)."""

    args: list[Any]
    grad_output: torch.Tensor
    forward: int  # bytes the reference's forward allocates
    backward: int  # ... and its backward
    probes: list[torch.Tensor | None]  # per argument, a random vector the gradients are projected on
    projections: list[float | None]  # the reference's gradients projected on them
    scales: list[float]  # |gradient| |probe|: the largest such a projection can be


@lru_cache(maxsize=128)
def _reference_at(ex: Exercise, n: int, seed: int) -> Reference:
    case = sized_case(ex, n)
    args = make_inputs(ex, case, seed)
    grad_output, ref_forward, ref_backward, grads = reference_bytes(
        ex, args, lambda out: make_grad_output(out, seed, ex.id, case.name))
    gen = generator(seed, ex.id, case.name, "probes")
    probes = [torch.randn(a.shape, generator=gen, dtype=torch.float64) if s.differentiable and
              isinstance(a, torch.Tensor) else None for s, a in zip(ex.inputs, args)]
    flat = [g.reshape(-1).double() if g is not None else None for g in grads]
    projections = [None if p is None else float(torch.dot(g, p.reshape(-1))) if g is not None else 0.0
                   for g, p in zip(flat, probes)]
    scales = [float(g.norm() * p.norm()) if g is not None and p is not None else 0.0 for g, p in zip(flat, probes)]
    return Reference(args, grad_output, ref_forward, ref_backward, probes, projections, scales)


PROJECTION_RTOL = 1e-6  # of |gradient| |probe|: a right formula's rounding is far below, a wrong gradient far above


def backward_was_measured(got: Measured, ref: Reference) -> bool:
    """The measured backward's gradients, as projected by the evaluator, are the reference's."""
    seen_all = got.projections + (None,) * len(ref.probes)
    for p, expected, scale, seen in zip(ref.probes, ref.projections, ref.scales, seen_all):
        if p is not None and (seen is None or not abs(seen - expected) <= PROJECTION_RTOL * scale + 1e-12):
            return False
    return True


def _measure(ctx: CheckContext, n: int) -> tuple[Measured, Reference, int] | Verdict:
    """The student's Function measured at size n: (what it used, the reference, the inputs'
    bytes), or the verdict that ends the check."""
    ex, runner = ctx.exercise, ctx.runner
    ref = _reference_at(ex, n, runner.seed)
    mask = [s.differentiable for s in ex.inputs]
    got = runner.guarded(lambda: runner.sub.measure(runner.class_name, ref.args, mask, ref.grad_output, ref.probes,
                                                    timeout=runner.remaining()), "efficiency")
    if isinstance(got, Fault):
        return _fault(got, n, ref.forward + ref.backward)
    if got.problem:
        return _problem(got, n, tuple(ref.grad_output.shape))
    if got.forward_bytes is None or got.backward_bytes is None:
        return Verdict("error", f"efficiency: the evaluator's memory could not be read at n = {n} ({got.source})")
    inputs = sum(a.numel() * a.element_size() for a in ref.args if isinstance(a, torch.Tensor))
    return got, ref, inputs


def _backward_right(ctx: CheckContext) -> bool:
    """The student's backward gives the reference's gradients on the first ordinary case."""
    ev = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    if ev.fault is not None:
        return False
    finding = gradient_finding(ctx, ev)
    return finding is None or finding.note


def _fault(fault: Fault, n: int, reference: int) -> Verdict:
    """Running out of memory (a MemoryError, or the tree stopped at its memory limit) fails the
    check; any other fault is an error."""
    if fault.kind == "memory" or fault.message.startswith("memory limit"):
        return Verdict.failed(Finding("inefficient_backward", f"forward and backward ran out of memory at n = {n}, "
                                      f"where the reference allocates {size_text(reference)}: they use far too "
                                      "much memory. Does backward build the full Jacobian?"))
    return Verdict.fault(fault, f"efficiency (n = {n}): ")


def _problem(got: Measured, n: int, expected: tuple[int, ...]) -> Verdict:
    if got.problem == "shape":
        return Verdict.failed(Finding("wrong_shape", f"efficiency: at n = {n} forward returned shape "
                                      f"{tuple(got.shape)}, expected {expected}"))
    return Verdict.failed(Finding("detached", f"efficiency: at n = {n} the output of forward has no grad_fn, "
                                  "so backward cannot be measured"))


def _summary(got: Measured, n: int, ref: Reference, inputs: int) -> str:
    """What passed, in numbers that are the same on every run (not the kernel's count, which moves
    by pages)."""
    parts = [f"{phase} within {size_text(allowance(reference, inputs))} (the reference allocates "
             f"{size_text(reference)})" for phase, reference in (("forward", ref.forward), ("backward", ref.backward))]
    return f"at n = {n}, as the kernel counted it ({got.source}): " + "; ".join(parts) + "."


# reads the first case: with the exercise's other evaluations it runs before the measurement, so that
# torch's code and buffers for these operations are in the evaluator's memory already (a process
# that never ran them maps several MiB of library code on first use, which the kernel would count)
@register("efficiency", applies=lambda ex: ex.efficiency is not None, reads=first_case)
def efficiency(ctx: CheckContext) -> Verdict:
    why = skipped_on("efficiency", ctx.device)
    if why:
        return Verdict("skipped", why)
    ctx.runner.evaluate(ordinary_cases(ctx)[0])  # the warm-up (memoised: the other checks read it too)
    n = ctx.exercise.efficiency.sizes[-1]
    measured = _measure(ctx, n)
    if isinstance(measured, Verdict):
        return measured
    got, ref, inputs = measured
    hint = ctx_hint(got.ctx_tensors)
    for phase, used, reference in (("backward", got.backward_bytes, ref.backward),
                                   ("forward", got.forward_bytes, ref.forward)):
        finding = judge(phase, used, reference, inputs, n, got.source)
        if finding:
            return Verdict("failed", finding.message + hint, finding.code)
    if not backward_was_measured(got, ref) and _backward_right(ctx):
        return Verdict("failed", f"efficiency: at n = {n}, the gradients that came back while backward's memory was "
                       "measured are not the reference's, although backward is right on the ordinary cases: what "
                       "was measured is not the backward that was graded", "inefficient_backward")
    return Verdict("passed", _summary(got, n, ref, inputs) + hint)
