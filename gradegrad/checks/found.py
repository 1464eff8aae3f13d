"""`found`: the class exists and is a torch.autograd.Function with forward and backward."""

from __future__ import annotations

from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding


@register("found")
def found(ctx: CheckContext) -> Verdict:
    info = ctx.info
    if not info.is_function:
        base = info.bases[0] if info.bases else "object"
        return Verdict.failed(Finding("not_a_function", f"{info.name} derives from {base}, not from "
                              "torch.autograd.Function"))
    missing = [m for m, ok in (("forward", info.has_forward), ("backward", info.has_backward)) if not ok]
    if missing:
        return Verdict.failed(Finding("not_a_function", f"{info.name} has no {' or '.join(missing)} "
                              "staticmethod"))
    return Verdict.passed()
