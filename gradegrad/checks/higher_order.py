"""`double_backward` and `jvp`: optional checks of second-order and forward-mode derivatives.

Both verdicts are computed here, in the grader. The child runs the student's Function and sends
back numbers: for `double_backward`, the derivatives of <backward(v), u> with respect to the
inputs and to v, taken through the student's own backward with autograd; for `jvp`, the output's
tangent in forward-mode AD, which calls the student's `jvp` staticmethod. The grader computes the
same quantities for the reference expression with autograd and compares. `torch.autograd.
gradgradcheck` itself is not run: the proxy of `gradcheck` gets detached gradients from the child.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.autograd.forward_ad as fwAD

from gradegrad.cases import generator
from gradegrad.catalog import Exercise
from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.checks.values import first_case, gradient_finding, ordinary_cases
from gradegrad.diagnosis import Finding, close, compare_values
from gradegrad.evaluation import Fault
from gradegrad.reference import reference_output

SAVE_ADVICE = (" Compute backward with torch operations on tensors saved with ctx.save_for_backward (inputs "
               "or outputs of forward): a tensor computed inside forward is a constant when backward is "
               "differentiated.")


def directions(ex: Exercise, args: Sequence[Any], seed: int, purpose: str) -> list[torch.Tensor | None]:
    """A seeded random tensor per differentiable argument (None for the others)."""
    gen = generator(seed, ex.id, purpose)
    return [torch.randn(a.shape, generator=gen, dtype=a.dtype) if s.differentiable else None
            for s, a in zip(ex.inputs, args)]


def _leaves(ex: Exercise, args: Sequence[Any]) -> list[Any]:
    return [a.detach().clone().requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
            for s, a in zip(ex.inputs, args)]


def reference_second_order(ex: Exercise, args: Sequence[Any], grad_output: torch.Tensor,
                           dirs: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """d<vJp(v), u>/d(inputs, v) of the reference: per argument (None if not differentiable), then v."""
    leaves = _leaves(ex, args)
    wanted = [a for s, a in zip(ex.inputs, leaves) if s.differentiable]
    v = grad_output.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        grads = torch.autograd.grad(reference_output(ex, leaves), wanted, v, create_graph=True, allow_unused=True)
        udirs = [u for u in dirs if u is not None]
        terms = [(g * u).sum() for g, u in zip(grads, udirs) if g is not None and g.requires_grad]
        seconds = (torch.autograd.grad(torch.stack(terms).sum(), [*wanted, v], allow_unused=True) if terms
                   else [None] * (len(wanted) + 1))
    filled = iter(torch.zeros_like(t) if s is None else s.detach() for s, t in zip(seconds, [*wanted, v]))
    return [next(filled) if s.differentiable else None for s in ex.inputs] + [next(filled)]


def _second_finding(name: str, got: Any, expected: torch.Tensor, ctx: CheckContext) -> Finding | None:
    what = f"the derivative of backward's result with respect to {name}"
    got = torch.zeros_like(expected) if got is None else got
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return Finding("wrong_shape", f"{what} has the wrong shape")
    tol = ctx.exercise.tolerance64
    if not got.any() and not close(expected, torch.zeros_like(expected), tol):
        return Finding("not_differentiable", f"{what} is zero, but should not be: backward's result does not "
                       "depend on it through autograd." + SAVE_ADVICE)
    finding = compare_values(name.strip("`"), what, got, expected, tol)
    return Finding(finding.code, finding.message + "." + SAVE_ADVICE, finding.worst) if finding else None


@register("double_backward", reads=first_case)
def double_backward(ctx: CheckContext) -> Verdict:
    runner, ex = ctx.runner, ctx.exercise
    ev = runner.evaluate(ordinary_cases(ctx)[0])
    if ev.fault:
        return Verdict.fault(ev.fault)
    first = gradient_finding(ctx, ev)
    if first and not first.note:
        return Verdict("failed", "double backward: not run, backward's gradient is already wrong (see the "
                       "backward check)", first.code)
    dirs = directions(ex, ev.args, runner.seed, "double_backward")
    got = runner.guarded(lambda: runner.sub.second_order(runner.class_name, ev.args, ev.mask, ev.grad_output,
                                                         dirs, timeout=runner.remaining()), "double backward")
    if isinstance(got, Fault):
        return Verdict.fault(got, "double backward: ")
    for i, spec in enumerate(ex.inputs):
        if spec.differentiable and not (i < len(got.connected) and got.connected[i]):
            return Verdict.failed(Finding("not_differentiable", f"the gradient of `{spec.name}` that backward "
                                  "returns is not differentiable (no grad_fn): avoid .detach(), .item(), "
                                  ".numpy(), torch.no_grad() and @once_differentiable in backward."),
                                  "double backward: ")
    expected = reference_second_order(ex, ev.args, ev.grad_output, dirs)
    names = [f"`{s.name}`" for s in ex.inputs] + ["grad_output"]
    for name, want, have in zip(names, expected, got.second):
        finding = _second_finding(name, have, want, ctx) if want is not None else None
        if finding:
            return Verdict.failed(finding, "double backward: ")
    return Verdict.passed("double backward matches the reference's (computed in the grader)")


def reference_tangent(ex: Exercise, args: Sequence[Any], tangents: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """The reference output's tangent in forward-mode AD."""
    with fwAD.dual_level():
        duals = [fwAD.make_dual(a, t) if t is not None else a for a, t in zip(args, tangents)]
        tangent = fwAD.unpack_dual(reference_output(ex, duals)).tangent
    return tangent.detach()


def _tangent_finding(got: Any, expected: torch.Tensor, ones: torch.Tensor, ctx: CheckContext) -> Finding | None:
    what = "the output's tangent from jvp"
    if not isinstance(got, torch.Tensor):
        return Finding("missing_jvp", "forward-mode AD gave the output no tangent: jvp must return the output's "
                       "tangent (J times the input tangents)")
    if got.shape != expected.shape:
        return Finding("wrong_shape", f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)} "
                       "(the output's shape)")
    finding = compare_values("output", what, got, expected, ctx.exercise.tolerance64, ones)
    if finding and finding.code == "ignores_grad_output":
        return Finding("ignores_tangent", f"{what} is what tangents of ones would give: multiply by the "
                       "tangents jvp receives (the chain rule)", finding.worst)
    return finding


@register("jvp")
def jvp(ctx: CheckContext) -> Verdict:
    runner, ex = ctx.runner, ctx.exercise
    args = runner.inputs(ordinary_cases(ctx)[0])
    tangents = directions(ex, args, runner.seed, "jvp")
    got = runner.guarded(lambda: runner.sub.tangent(runner.class_name, args, tangents,
                                                    timeout=runner.remaining()), "jvp")
    if isinstance(got, Fault):
        return Verdict.fault(got, "jvp: ")
    defined, tangent = got
    if not defined:
        return Verdict.failed(Finding("missing_jvp", f"{ctx.info.name} has no jvp staticmethod: define "
                                      "jvp(ctx, *tangents) returning the output's tangent, and keep what it "
                                      "needs with ctx.save_for_forward(...) in forward"))
    expected = reference_tangent(ex, args, tangents)
    ones = reference_tangent(ex, args, [None if t is None else torch.ones_like(t) for t in tangents])
    finding = _tangent_finding(tangent, expected, ones, ctx)
    if finding:
        return Verdict.failed(finding, "jvp: ")
    return Verdict.passed("jvp matches the reference's forward-mode derivative (computed in the grader)")
