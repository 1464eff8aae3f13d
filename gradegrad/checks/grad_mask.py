"""`needs_input_grad`: the Function works when only some of its inputs require grad."""

from __future__ import annotations

from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.catalog import Exercise
from gradegrad.checks.values import ordinary, reference_args, ordinary_cases
from gradegrad.evaluation import Read
from gradegrad.diagnosis import diagnose_gradients
from gradegrad.reference import mistaken, reference_gradients


def _reads(ex: Exercise, device: str) -> list[Read]:
    """The first case with one input requiring grad at a time, through autograd's engine."""
    case = ordinary(ex)[0]
    return [Read(case.name, mask=tuple(j == i for j in range(len(ex.inputs))), mode="engine")
            for i in ex.differentiable]


@register("needs_input_grad", applies=lambda ex: len(ex.differentiable) >= 2, reads=_reads)
def needs_input_grad(ctx: CheckContext) -> Verdict:
    ex = ctx.exercise
    case = ordinary_cases(ctx)[0]
    for i in ex.differentiable:
        name = ex.inputs[i].name
        mask = tuple(j == i for j in range(len(ex.inputs)))
        ev = ctx.runner.evaluate(case, mask=mask, mode="engine")
        prefix = f"with only `{name}` requiring grad: "
        if ev.fault:
            return Verdict.fault(ev.fault, prefix)
        if ev.grads is None:
            return Verdict("failed", prefix + "forward's output has no grad_fn", "detached")
        args, g = reference_args(ev), ev.grad_output.double()
        out, expected = reference_gradients(ex, args, ev.mask, g)
        _, ones = reference_gradients(ex, args, ev.mask, g * 0 + 1)
        finding = diagnose_gradients(ev.grads, expected, ones, ctx.names, [s.is_tensor for s in ex.inputs],
                                     ex.tolerance64, known=lambda j: mistaken(ex, args, out, g, ex.inputs[j].name))
        if finding:
            return Verdict.failed(finding, prefix)
    return Verdict.passed()
