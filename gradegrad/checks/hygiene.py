"""`inputs_unchanged` and `device`: a Function must not write to what it was given, or leave the GPU.

`inputs_unchanged` looks at every evaluation the checks make (every case, float64 and float32, and
the evaluations of `needs_input_grad`): forward must leave its arguments alone, and backward its
arguments, grad_output (the caller's upstream gradient, shared by every branch of the graph), the
output forward returned, and the tensors saved for backward.

It passes on a fact the grader saw: the arguments and grad_output were in memory shared with the
evaluator, and the grader read them back after the call and found its own values
(`Evaluation.inputs_after`, `grad_output_after`, `read_back`). What only the child can report
(torch's version counters, which also see a write of the same values, forward's output and the
saved tensors as backward left them, and which of forward and backward wrote) can fail the check
or name the culprit, never pass it.
"""

from __future__ import annotations

from typing import Iterator

import torch

from gradegrad.catalog import Exercise
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Evaluation, Read
from gradegrad.registry import register, skipped_on
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import first_case, ordinary_cases

WORK_ON_A_COPY = "work on a copy (x.clone()) or out of place (x * y, not x.mul_(y))"


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    return True


def _changed(a: object, b: object) -> bool:
    """`b` (as the call left it) differs from `a` (what was given); nothing to compare is no evidence."""
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and not _same(a, b)


def _bumped(versions: tuple[int, int] | None) -> bool:
    return versions is not None and versions[1] != versions[0]


def _reads(ex: Exercise, device: str) -> list[Read]:
    """Every case in float64, then in float32."""
    return [Read(c.name, dtype) for dtype in ("float64", "float32") for c in ex.cases]


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


def _input_changed(ev: Evaluation, i: int) -> bool:
    """Argument i, read back by the grader after the call, differs from what it gave."""
    after = ev.inputs_after
    return after is not None and i < len(after) and i < len(ev.args) and _changed(ev.args[i], after[i])


def _written_in_forward(ev: Evaluation, i: int) -> bool:
    return i < len(ev.versions) and bool(ev.versions[i])


def _written_in_backward(ev: Evaluation, i: int) -> bool:
    facts = ev.in_place
    return facts is not None and i < len(facts.args) and _bumped(facts.args[i])


def forward_finding(ev: Evaluation) -> Finding | None:
    """Forward wrote to an argument: its values changed, and forward's version counter moved (or
    backward never ran); or only the counter moved (a write of the same values, e.g. clamp_)."""
    names = [s.name for s in ev.case.inputs]
    backward_ran = ev.grads is not None or ev.in_place is not None
    for i, name in enumerate(names):
        if _input_changed(ev, i) and (_written_in_forward(ev, i) or not backward_ran):
            return Finding("mutates_input", f"forward changed the values of input `{name}` in place (x.exp_(), "
                           f"x += ..., x[...] = ...); {WORK_ON_A_COPY}")
    for i, name in enumerate(names):
        if _written_in_forward(ev, i):
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
    for i, name in enumerate(names):
        if _written_in_backward(ev, i):
            return Finding("mutates_input", f"backward changed the values of input `{name}` in place (a saved input "
                           f"is the caller's tensor); {WORK_ON_A_COPY}")
        if _input_changed(ev, i):
            return Finding("mutates_input", f"forward or backward changed the values of input `{name}` in place "
                           f"(the grader read it back after the call); {WORK_ON_A_COPY}")
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


def _unverified(ctx: CheckContext, evaluated: list[Evaluation]) -> Evaluation | None:
    """An evaluation that ran but whose inputs the grader could not read back (too large to share)."""
    return next((ev for ev in evaluated if ev.fault is None and not ev.read_back), None)


@register("inputs_unchanged", reads=_reads)
def inputs_unchanged(ctx: CheckContext) -> Verdict:
    evaluated = []
    for ev in evaluations(ctx):
        finding = forward_finding(ev) or backward_finding(ev)
        if finding is not None:
            return Verdict.failed(finding, _where(ctx, ev))
        evaluated.append(ev)
    first = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    if first.fault:  # not even the first case ran: no evidence either way
        return Verdict.fault(first.fault)
    missing = _unverified(ctx, evaluated)
    if missing is not None:
        return Verdict("error", f"{_where(ctx, missing)}not verified: the inputs did not fit in the memory the "
                       "grader shares with the evaluator, so it could not read them back")
    if ctx.device != "cpu":  # the evaluator gave the student's code copies on the GPU, and copied them back
        return Verdict.passed("on the GPU, the inputs were read back from the copies the evaluator wrote back")
    return Verdict.passed()


@register("device", reads=lambda ex, device: first_case(ex, device) if device != "cpu" else [])
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
