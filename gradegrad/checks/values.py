"""`forward`, `backward`, `float32` and `stability`: the student's numbers against the reference."""

from __future__ import annotations

from typing import Iterable

import torch

from gradegrad.catalog import Case
from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output
from gradegrad.evaluation import Evaluation
from gradegrad.reference import memo, reference_gradients, reference_output


def ordinary_cases(ctx: CheckContext) -> Iterable[Case]:
    return [c for c in ctx.exercise.cases if not c.stability]


def reference_args(ev: Evaluation) -> list:
    return [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in ev.args]


def output_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    tol = ctx.exercise.tolerance(ev.dtype)
    expected = _reference(ctx, ev)[0]
    dtype = torch.float32 if ev.dtype == "float32" else torch.float64
    kind = ev.meta.get("type") if isinstance(ev.meta.get("type"), str) else None
    return diagnose_output(ev.output, expected.to(dtype), tol, kind)


def _reference(ctx: CheckContext, ev: Evaluation, ones: bool = False):
    """(output, gradients) of the reference for `ev`'s inputs and upstream gradient (or all ones)."""
    key = ("values", ctx.exercise, ev.case.name, ev.dtype, tuple(ev.mask), ctx.runner.seed, ones)
    if ev.grad_output is None:
        return memo(key, lambda: (reference_output(ctx.exercise, reference_args(ev)).detach(), None))
    upstream = torch.ones_like(ev.grad_output) if ones else ev.grad_output
    return memo(key, lambda: reference_gradients(ctx.exercise, reference_args(ev), ev.mask, upstream.double()))


def gradient_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    """Compare the gradients backward returned with the reference's, naming the mistake."""
    if ev.grads is None:
        return _no_backward(ev)
    _, expected = _reference(ctx, ev)
    _, ones = _reference(ctx, ev, ones=True)
    spec = ev.case.inputs
    return diagnose_gradients(ev.grads, expected, ones, [s.name for s in spec], [s.is_tensor for s in spec],
                              ctx.exercise.tolerance(ev.dtype))


def _no_backward(ev: Evaluation) -> Finding:
    if not isinstance(ev.output, torch.Tensor):
        return Finding("wrong_type", "forward did not return a tensor, so there is nothing to differentiate")
    return Finding("detached", "the output of forward has no grad_fn: it is not connected to the inputs "
                   "(did you return a detached tensor or call .apply on something else?)")


def per_case(ctx: CheckContext, cases: Iterable[Case], judge, dtype: str = "float64",
             forward_only: bool = False, evaluate=None, where: str = "") -> Verdict:
    """Run `judge(ctx, ev)` on every case; the first fault or finding decides.

    With `forward_only`, a fault in backward does not stop judging the output forward returned.
    `evaluate(case)` gives the evaluation of a case (default: the runner's, in `dtype`).
    """
    for case in cases:
        ev = evaluate(case) if evaluate else ctx.runner.evaluate(case, dtype)
        if ev.fault and not (forward_only and ev.phase == "backward"):
            return Verdict.fault(ev.fault)
        finding = judge(ctx, ev)
        if finding:
            named = f"case '{case.name}'" if case.name != ctx.exercise.cases[0].name else ""
            prefix = " ".join(p for p in (named, where) if p)
            return Verdict.failed(finding, f"{prefix}: " if prefix else "")
    return Verdict.passed()


@register("forward")
def forward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx), output_finding, forward_only=True)


@register("backward")
def backward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx), gradient_finding)


def _float32_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    finding = output_finding(ctx, ev)
    if finding:
        return finding
    for spec, g in zip(ev.case.inputs, ev.grads or []):
        if spec.differentiable and isinstance(g, torch.Tensor) and g.dtype != torch.float32:
            return Finding("wrong_dtype", f"the gradient of `{spec.name}` is {str(g.dtype)[6:]} for a float32 "
                           "input: keep the input's dtype")
    return gradient_finding(ctx, ev)


@register("float32")
def float32(ctx: CheckContext) -> Verdict:
    return per_case(ctx, ordinary_cases(ctx)[:1], _float32_finding, "float32")


def _stable_finding(ctx: CheckContext, ev: Evaluation) -> Finding | None:
    return output_finding(ctx, ev) or gradient_finding(ctx, ev)


@register("stability", applies=lambda ex: any(c.stability for c in ex.cases))
def stability(ctx: CheckContext) -> Verdict:
    """The large-magnitude cases, in float64 and then in float32 (whose exp overflows past 88.7)."""
    cases = [c for c in ctx.exercise.cases if c.stability]
    verdict = per_case(ctx, cases, _stable_finding)
    if verdict.status != "passed":
        return verdict
    return per_case(ctx, cases, _stable_finding, "float32", where="in float32")
