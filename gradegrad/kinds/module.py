"""Kind `module`: an `nn.Module` that wraps the student's own autograd Function.

The seed's `LeakyReLU_Better` and `ParamReLU(alpha)`. The child builds the module from the
manifest's `init` inputs, calls it on the others, and reports the output and a fact about its
grad_fn (its class, and for a custom Function that Function's name and module); backward runs
through the child's autograd engine. The grader compares with the reference and decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradegrad.cases import make_grad_output
from gradegrad.catalog import Case
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import per_case
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.reference import mistaken, reference_gradients, reference_output
from gradegrad.sandbox.protocol import encode_value

STUDENT_MODULE = "submission"  # the name the child imports the submission under


@dataclass
class ModuleRun:
    """One call of the student's module on one case, then backward through it."""

    case: Case
    dtype: str
    args: list[Any]
    mask: list[bool]
    output: Any = None
    root: dict[str, str | None] | None = None  # the output's grad_fn, as the child saw it
    grad_output: torch.Tensor | None = None
    grads: list[Any] | None = None
    fault: Fault | None = None
    phase: str = ""


def run(ctx: CheckContext, case: Case, dtype: str = "float64") -> ModuleRun:
    return ctx.runner.memo(("module", case.name, dtype), lambda: _run(ctx, case, dtype))


def _root(value: Any) -> dict[str, str | None] | None:
    if not isinstance(value, dict):
        return None
    return {k: (str(value[k])[:200] if isinstance(value.get(k), str) else None) for k in ("node", "function", "module")}


def _run(ctx: CheckContext, case: Case, dtype: str) -> ModuleRun:
    ex, runner = ctx.exercise, ctx.runner
    ev = ModuleRun(case, dtype, runner.inputs(case, dtype), [s.differentiable for s in case.inputs])
    tensors: list[torch.Tensor] = []
    header = {"op": "module", "class": ctx.info.name, "args": encode_value(ev.args, tensors),
              "requires_grad": ev.mask, "init": [s.name in ex.spec.init for s in case.inputs]}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "forward")
    if isinstance(reply, Fault):
        ev.fault, ev.phase = reply, "forward"
        return ev
    ev.output, ev.root = reply.value(reply.header.get("output")), _root(reply.header.get("root"))
    handle = reply.header.get("handle")
    if not isinstance(ev.output, torch.Tensor) or not isinstance(handle, int):
        return ev
    like = reference_output(ex, ev.args).detach().to(ev.output.dtype)
    ev.grad_output = make_grad_output(like, runner.seed, ex.id, case.name, dtype)
    back = runner.guarded(lambda: runner.sub.backward(handle, ev.grad_output, timeout=runner.remaining(),
                                                      mode="engine", release=True), "backward")
    if isinstance(back, Fault):
        ev.fault, ev.phase = back, "backward"
    else:
        ev.grads = back.grads
    return ev


def _double(args: list[Any]) -> list[Any]:
    return [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]


def _ordinary(ctx: CheckContext) -> list[Case]:
    return [c for c in ctx.exercise.cases if not c.stability]


@kind_check("module", "found")
def found(ctx: CheckContext) -> Verdict:
    info = ctx.info
    if not info.is_module:
        base = info.bases[0] if info.bases else "object"
        return Verdict.failed(Finding("not_a_module", f"{info.name} derives from {base}, not from torch.nn.Module"))
    return Verdict.passed()


def _output_finding(ctx: CheckContext, ev: ModuleRun) -> Finding | None:
    ex, args = ctx.exercise, _double(ev.args)
    expected = reference_output(ex, args).detach()
    return diagnose_output(ev.output, expected, ex.tolerance(ev.dtype),
                           known=lambda: mistaken(ex, args, expected, None))


def _gradient_finding(ctx: CheckContext, ev: ModuleRun) -> Finding | None:
    if ev.grads is None:
        return Finding("detached", "the module's output has no grad_fn: it is not connected to its input")
    ex, args, g = ctx.exercise, _double(ev.args), ev.grad_output.double()
    out, expected = reference_gradients(ex, args, ev.mask, g)
    _, ones = reference_gradients(ex, args, ev.mask, torch.ones_like(g))
    specs = ev.case.inputs
    names, tensors = [s.name for s in specs], [s.is_tensor for s in specs]
    return diagnose_gradients(ev.grads, expected, ones, names, tensors, ex.tolerance(ev.dtype),
                              known=lambda i: mistaken(ex, args, out, g, names[i]))


@kind_check("module", "forward")
def forward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, _ordinary(ctx), _output_finding, forward_only=True, evaluate=lambda c: run(ctx, c))


@kind_check("module", "backward")
def backward(ctx: CheckContext) -> Verdict:
    return per_case(ctx, _ordinary(ctx), _gradient_finding, evaluate=lambda c: run(ctx, c))


@kind_check("module", "wraps_function", applies=lambda ex: ex.spec.wraps)
def wraps_function(ctx: CheckContext) -> Verdict:
    """The output's grad_fn is the backward of a Function defined in the submission."""
    if not ctx.exercise.spec.wraps:
        return Verdict("skipped", "this module may compute with built-in operations (wraps: false)")
    ev = run(ctx, _ordinary(ctx)[0])
    if ev.fault and ev.phase == "forward":
        return Verdict.fault(ev.fault)
    root = ev.root
    if root is None:
        return Verdict.failed(Finding("detached", "the module's output has no grad_fn: forward must return "
                                      "YourFunction.apply(...) on its input"))
    if root["function"] is None or root["module"] != STUDENT_MODULE:
        what = (f"{root['function']} from {root['module']}" if root["function"]
                else f"{root['node']}, a built-in operation")
        return Verdict.failed(Finding("builtin_output", f"the output's grad_fn is {what}, not your own Function: "
                                      "forward must return YourFunction.apply(...), so that your backward runs"))
    return Verdict.passed(f"the output comes from {root['function']}")
