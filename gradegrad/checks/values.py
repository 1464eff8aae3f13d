"""`forward`, `backward`, `float32` and `stability`: the student's numbers against the reference."""

from __future__ import annotations

from typing import Iterable

import torch

from gradegrad.catalog import Case, Exercise
from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output, dtype_finding
from gradegrad.evaluation import Evaluation, Read
from gradegrad.reference import memo, mistaken, reference_gradients, reference_output


def ordinary(ex: Exercise) -> list[Case]:
    """The cases that are not stability cases (large magnitudes)."""
    return [c for c in ex.cases if not c.stability]


def ordinary_cases(ctx: CheckContext) -> Iterable[Case]:
    return ordinary(ctx.exercise)


def each_case(ex: Exercise, device: str) -> list[Read]:
    """What `forward` and `backward` read: every ordinary case in float64."""
    return [Read(c.name) for c in ordinary(ex)]


def first_case(ex: Exercise, device: str) -> list[Read]:
    """What a check of the first ordinary case in float64 reads."""
    return [Read(ordinary(ex)[0].name)] if ordinary(ex) else []


def reference_args(ev: Evaluation) -> list:
    return [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in ev.args]


def output_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    tol = ctx.exercise.tolerance(ev.dtype)
    expected = _reference(ctx, ev)[0]
    dtype = torch.float32 if ev.dtype == "float32" else torch.float64
    kind = ev.meta.get("type") if isinstance(ev.meta.get("type"), str) else None
    return diagnose_output(ev.output, expected.to(dtype), tol, kind, lambda: _known(ctx, ev, None))


def _known(ctx: CheckContext, ev: Evaluation, name: str | None) -> list:
    """What the exercise's common mistakes give for `ev`'s output (`name` None) or the gradient of
    the input `name`, with their sentences (asked only for a result already found wrong)."""
    key = ("mistakes", ctx.exercise, ev.case.name, ev.dtype, tuple(ev.mask), ctx.runner.seed, name)
    g = ev.grad_output.double() if ev.grad_output is not None else None
    return memo(key, lambda: mistaken(ctx.exercise, reference_args(ev), _reference(ctx, ev)[0], g, name))


def _reference(ctx: CheckContext, ev: Evaluation, upstream: str = "g"):
    """(output, gradients) of the reference for `ev`'s inputs and an upstream gradient: `ev`'s own
    ("g"), all ones ("ones": what ignoring it gives) or its square ("squared": applying it twice)."""
    key = ("values", ctx.exercise, ev.case.name, ev.dtype, tuple(ev.mask), ctx.runner.seed, upstream)
    if ev.grad_output is None:
        return memo(key, lambda: (reference_output(ctx.exercise, reference_args(ev)).detach(), None))
    g = ev.grad_output.double()
    vector = {"g": g, "ones": torch.ones_like(g), "squared": g * g}[upstream]
    return memo(key, lambda: reference_gradients(ctx.exercise, reference_args(ev), ev.mask, vector))


def received(ev: Evaluation) -> list:
    """The gradients as the caller receives them: autograd casts a floating-point gradient to its
    input's dtype (the gradient's own dtype is judged by `dtype_finding`)."""
    return [g.to(a.dtype) if isinstance(g, torch.Tensor) and isinstance(a, torch.Tensor) and g.is_floating_point()
            and a.is_floating_point() and not g.is_complex() else g for g, a in zip(ev.grads, ev.args)] \
        + list(ev.grads[len(ev.args):])


def _dtype_findings(ev: Evaluation) -> list[Finding]:
    found = [dtype_finding(s.name, g, a.dtype) for s, g, a in zip(ev.case.inputs, ev.grads, ev.args)
             if s.differentiable and isinstance(a, torch.Tensor)]
    return [f for f in found if f is not None]


def gradient_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    """Compare the gradients backward returned with the reference's, naming the mistake.

    Values are judged as the caller receives them (`received`). A gradient of lower precision than
    its input fails with `wrong_dtype` unless its values are wrong even at that precision; a
    higher-precision one is a note that costs nothing."""
    if ev.grads is None:
        return _no_backward(ev)
    if ev.grads_container == "list":
        return Finding("wrong_type", f"backward returned a list of {len(ev.grads)} value(s); return a tuple "
                       "(`return a, b`, or one tensor): autograd reads a list as one gradient and refuses it")
    spec = ev.case.inputs
    names, tensors = [s.name for s in spec], [s.is_tensor for s in spec]
    dtypes = _dtype_findings(ev)
    lost = next((f for f in dtypes if not f.note), None)
    tol = ctx.exercise.tolerance("float32" if lost else ev.dtype)
    got = received(ev)
    _, expected = _reference(ctx, ev)
    finding = diagnose_gradients(got, expected, [None] * len(expected), names, tensors, tol)
    if finding is not None:  # name the mistake: against ignoring grad_output, or applying it twice
        _, ones = _reference(ctx, ev, "ones")
        _, twice = _reference(ctx, ev, "squared")
        scalar = float(ev.grad_output) if ev.grad_output.numel() == 1 else None
        finding = diagnose_gradients(got, expected, ones, names, tensors, tol, twice, scalar,
                                     lambda i: _known(ctx, ev, names[i]))
    return finding or lost or (dtypes[0] if dtypes else None)


def _no_backward(ev: Evaluation) -> Finding:
    if not isinstance(ev.output, torch.Tensor):
        return Finding("wrong_type", "forward did not return a tensor, so there is nothing to differentiate")
    return Finding("detached", "the output of forward has no grad_fn: it is not connected to the inputs "
                   "(did you return a detached tensor or call .apply on something else?)")


def per_case(ctx: CheckContext, cases: Iterable[Case], judge, dtype: str = "float64",
             forward_only: bool = False, evaluate=None, where: str = "") -> Verdict:
    """Run `judge(ctx, ev)` on every case; the first fault or finding decides.

    With `forward_only`, a fault in backward does not stop judging the output forward returned.
    `evaluate(case)` gives the evaluation of a case (default: the runner's, in `dtype`). A finding
    that is a note (it costs nothing) passes the check and is kept as its message.
    """
    evaluate = evaluate or (lambda case: ctx.runner.evaluate(case, dtype))
    note = None
    for case in cases:
        ev = evaluate(case)
        if ev.fault and not (forward_only and ev.phase == "backward"):
            return Verdict.fault(ev.fault)
        finding = judge(ctx, ev)
        if finding is not None and finding.note:
            note = note or _prefixed(ctx, case, where, finding)
        elif finding is not None:
            finding = same_factor(ctx, finding, case, judge, evaluate)
            return Verdict.failed(finding, _prefix(ctx, case, where))
    return Verdict.passed(note.message, note.code) if note else Verdict.passed()


def _prefix(ctx: CheckContext, case: Case, where: str) -> str:
    named = f"case '{case.name}'" if case.name != ctx.exercise.cases[0].name else ""
    prefix = " ".join(p for p in (named, where) if p)
    return f"{prefix}: " if prefix else ""


def _prefixed(ctx: CheckContext, case: Case, where: str, finding: Finding) -> Finding:
    return Finding(finding.code, _prefix(ctx, case, where) + finding.message, finding.worst, note=True)


def same_factor(ctx: CheckContext, finding: Finding, case: Case, judge, evaluate,
                fault_of=lambda ev: ev.fault) -> Finding:
    """A `scale_error` only when every ordinary case shows the same factor: a loss's single number
    is always "some factor" of the expected one, so one case alone does not make it a scale error.
    Otherwise the finding's `wrong_values` (or the common mistake whose numbers it matches).
    `evaluate(case)` gives another case's evaluation, and `fault_of(evaluation)` what stopped it (an
    exercise kind's evaluations may say it otherwise)."""
    if finding.code != "scale_error" or finding.factor is None or finding.otherwise is None:
        return finding
    others = [c for c in ordinary_cases(ctx) if c.name != case.name]
    scalar = finding.worst is not None and finding.worst.index == ()
    if not others and scalar:
        return finding.otherwise
    for other in others:
        ev = evaluate(other)
        found = None if fault_of(ev) else judge(ctx, ev)
        if found is None or found.code != "scale_error" or found.factor is None:
            return finding.otherwise
        if abs(found.factor - finding.factor) > 1e-3 * abs(finding.factor):
            if scalar or finding.otherwise.code == "known_mistake":  # scalar: any two numbers have "a factor"
                return finding.otherwise
            return Finding("wrong_values", f"{finding.subject} is {finding.factor:.4g} times the expected value "
                           f"in case '{case.name}' but {found.factor:.4g} times in case '{other.name}': a factor "
                           "that changes with the input's size (a sum or a mean over the wrong number of "
                           "elements?)", finding.worst)
    return finding


@register("forward", reads=each_case)
def forward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx), output_finding, forward_only=True)


@register("backward", reads=each_case)
def backward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx), gradient_finding)


def _float32_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    return output_finding(ctx, ev) or gradient_finding(ctx, ev)


@register("float32", reads=lambda ex, device: [Read(c.name, "float32") for c in ordinary(ex)[:1]])
def float32(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx)[:1], _float32_finding, "float32")


def _stable_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    return output_finding(ctx, ev) or gradient_finding(ctx, ev)


def _stability_reads(ex: Exercise, device: str) -> list[Read]:
    cases = [c for c in ex.cases if c.stability]
    return [Read(c.name) for c in cases] + [Read(c.name, "float32") for c in cases]


@register("stability", applies=lambda ex: any(c.stability for c in ex.cases), reads=_stability_reads)
def stability(ctx: CheckContext) -> Verdict:
    """The large-magnitude cases, in float64 and then in float32 (whose exp overflows past 88.7)."""
    cases = [c for c in ctx.exercise.cases if c.stability]
    verdict = per_case(ctx, cases, _stable_finding)
    if verdict.status != "passed":
        return verdict
    return per_case(ctx, cases, _stable_finding, "float32", where="in float32")
