"""`hand_written`: backward derives its numbers instead of asking autograd for them.

Reads what the child recorded while the student's code ran (aten ops, and whether autograd's
engine ran) and compares it with the exercise's `forbidden` list. A flag by default (the `all`
rubric gives it 0 points); a rubric can give it points.
"""

from __future__ import annotations

from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import first_case, ordinary_cases


@register("hand_written", reads=first_case)
def hand_written(ctx: CheckContext) -> Verdict:
    ev = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    if ev.fault:
        return Verdict.fault(ev.fault)
    # a composition's backward is its own Functions' backwards, run by the engine (kinds.compose_side)
    composed = ev.used_autograd == "backward" and "composition" in ctx.info.bases
    if ev.used_autograd and not composed:
        return Verdict("failed", f"{ev.used_autograd} calls autograd (torch.autograd.grad or .backward()) "
                       "instead of computing the gradient by hand", "uses_autograd")
    called = sorted(set(ev.backward_ops) & set(ctx.exercise.forbidden))
    if called:
        return Verdict("failed", f"backward calls {', '.join(called)}, PyTorch's own derivative of this "
                       "operation: derive it by hand", "uses_reference_backward")
    return Verdict.passed()
