"""`inputs_unchanged` and `device`: a Function must not write to what it was given, or leave the GPU.

`inputs_unchanged` looks at every evaluation the checks make (every case, float64 and float32, and
the evaluations of `needs_input_grad`): forward must leave its arguments alone, and backward its
arguments, grad_output (the caller's upstream gradient, shared by every branch of the graph), the
output forward returned, and the tensors saved for backward. Its evidence is what the child
reports (the values it echoes back and torch's version counters): it can fail the check, never
pass it on its own.
"""

from __future__ import annotations

from typing import Iterator

import torch

from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Evaluation
from gradegrad.registry import register, skipped_on
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import ordinary_cases

WORK_ON_A_COPY = "work on a copy (x.clone()) or out of place (x * y, not x.mul_(y))"


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    return True


def _changed(a: object, b: object) -> bool:
    """`b` (what the child echoed) differs from `a`; a missing echo is no evidence."""
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and not _same(a, b)


def _bumped(versions: tuple[int, int] | None) -> bool:
    return versions is not None and versions[1] != versions[0]


def evaluations(ctx: CheckContext) -> Iterator[Evaluation]:
    """Every case in float64 and float32, then whatever else the other checks evaluated."""
    seen = set()
    for dtype in ("float64", "float32"):
        for case in ctx.exercise.cases:
            ev = ctx.runner.evaluate(case, dtype)
            seen.add(id(ev))
            yield ev
    for ev in list(ctx.runner.cache.values()):
        if isinstance(ev, Evaluation) and id(ev) not in seen:
            yield ev


def _where(ctx: CheckContext, ev: Evaluation) -> str:
    parts = [f"case '{ev.case.name}'" if ev.case.name != ctx.exercise.cases[0].name else "",
             "in float32" if ev.dtype == "float32" else ""]
    text = " ".join(p for p in parts if p)
    return f"{text}: " if text else ""


def forward_finding(ev: Evaluation) -> Finding | None:
    names = [s.name for s in ev.case.inputs]
    for name, sent, seen in zip(names, ev.args, ev.echo_forward or []):
        if _changed(sent, seen):
            return Finding("mutates_input", f"forward changed the values of input `{name}` in place (x.exp_(), "
                           f"x += ..., x[...] = ...); {WORK_ON_A_COPY}")
    for name, version in zip(names, ev.versions):
        if version:
            return Finding("mutates_input", f"forward wrote to input `{name}` in place (an in-place operation "
                           f"such as clamp_ or mul_); {WORK_ON_A_COPY}")
    return None


def backward_finding(ev: Evaluation) -> Finding | None:
    """What backward wrote to: its arguments, grad_output, forward's output, a saved tensor."""
    names = [s.name for s in ev.case.inputs]
    facts = ev.in_place
    if facts is not None and facts.saved_error:
        return Finding("mutates_saved", "forward overwrote a tensor after saving it for backward (torch: "
                       f"{facts.saved_error.splitlines()[0][:200]}); save it once it is final, or {WORK_ON_A_COPY}")
    for i, (name, sent) in enumerate(zip(names, ev.args)):
        seen = (ev.echo_backward or [None] * len(names))[i] if i < len(ev.echo_backward or []) else None
        version = facts.args[i] if facts is not None and i < len(facts.args) else None
        if _changed(ev.echo_forward[i] if ev.echo_forward and i < len(ev.echo_forward) else sent, seen) \
                or _bumped(version):
            return Finding("mutates_input", f"backward changed the values of input `{name}` in place (a saved input "
                           f"is the caller's tensor); {WORK_ON_A_COPY}")
    if _changed(ev.grad_output, ev.grad_output_after) or _bumped(facts.grad_output if facts else None):
        return Finding("mutates_grad_output", "backward changed grad_output in place (grad_output.mul_(...), -= ..., "
                       "[mask] *= ...): it is the caller's upstream gradient, shared with the other branches of the "
                       "graph; " + WORK_ON_A_COPY)
    if _changed(ev.output, ev.output_after) or _bumped(facts.output if facts else None):
        return Finding("mutates_output", "backward changed the output forward returned, in place (a saved output "
                       "is the caller's tensor, e.g. y.mul_(1 - y)); " + WORK_ON_A_COPY)
    for role, before, after in (facts.saved if facts else ()):
        if after != before and role == "other":
            return Finding("mutates_saved", "backward wrote in place to a tensor saved for backward, so a second "
                           "backward (retain_graph=True) would read it changed; " + WORK_ON_A_COPY)
    return None


@register("inputs_unchanged")
def inputs_unchanged(ctx: CheckContext) -> Verdict:
    for ev in evaluations(ctx):
        finding = forward_finding(ev) or backward_finding(ev)
        if finding is not None:
            return Verdict.failed(finding, _where(ctx, ev))
    first = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    if first.fault:  # not even the first case ran: no evidence either way
        return Verdict.fault(first.fault)
    return Verdict.passed()


@register("device")
def device(ctx: CheckContext) -> Verdict:
    why = skipped_on("device", ctx.device)
    if why:
        return Verdict("skipped", why)
    ev = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    if ev.fault:
        return Verdict.fault(ev.fault)
    where = ev.meta.get("device", "?")
    if not str(where).startswith("cuda"):
        return Verdict("failed", f"inputs on {ctx.device} gave an output on {where}: create new tensors on "
                       "the input's device (e.g. torch.zeros_like, x.new_zeros)", "wrong_device")
    for spec, dev in zip(ev.case.inputs, ev.grad_devices):
        if spec.differentiable and dev is not None and not dev.startswith("cuda"):
            return Verdict("failed", f"the gradient of `{spec.name}` is on {dev}, not on the GPU", "wrong_device")
    return Verdict.passed()
