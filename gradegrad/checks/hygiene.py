"""`inputs_unchanged` and `device`: a Function must not write to its inputs or leave the GPU."""

from __future__ import annotations

import torch

from gradegrad.registry import register, skipped_on
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import ordinary_cases


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
    return True


@register("inputs_unchanged")
def inputs_unchanged(ctx: CheckContext) -> Verdict:
    ev = ctx.runner.evaluate(ordinary_cases(ctx)[0])
    for phase, echo in (("forward", ev.echo_forward), ("backward", ev.echo_backward)):
        for spec, sent, seen in zip(ev.case.inputs, ev.args, echo or []):
            if not _same(sent, seen):
                return Verdict("failed", f"{phase} changed the values of input `{spec.name}` in place "
                               "(e.g. x.exp_(), x += ..., x[...] = ...): work on a copy", "mutates_input")
        if phase == "forward":
            for spec, version in zip(ev.case.inputs, ev.versions):
                if version:
                    return Verdict("failed", f"forward wrote to input `{spec.name}` in place (an in-place "
                                   "operation such as clamp_ or mul_): work on a copy", "mutates_input")
    if ev.fault:
        return Verdict.fault(ev.fault)
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
