"""Kind `vjp`: NumPy functions in the functional style of the seed "Autodiff and Backpropagation".

The student writes `f(x, p)` and `f.make_vjp(x, p)` returning `vjp(u) -> (grad_x, grad_p)`.
The child converts the grader's tensors to arrays, calls them, and converts the results back to
tensors; the grader compares with torch autograd of the manifest's reference, in float64 and
float32. A parameter's gradient may keep one row per example (the seed's `dot` returns
`einsum('na,nb->nab', x, u)`, summed later by `optim_SGD`): it is summed over them first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from gradegrad.cases import make_grad_output
from gradegrad.catalog import Case
from gradegrad.checks.values import same_factor
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.reference import mistaken, reference_gradients, reference_output
from gradegrad.sandbox.protocol import encode_value


@dataclass
class VjpRun:
    """f(x, p) and f.make_vjp(x, p)(u) on one case; each may fail on its own."""

    case: Case
    dtype: str
    args: list[Any]
    upstream: torch.Tensor  # u, or ones for a loss whose vjp takes None
    output: Any = None
    grads: Any = None
    forward_fault: Fault | None = None
    backward_fault: Fault | None = None


def run(ctx: CheckContext, case: Case, dtype: str = "float64") -> VjpRun:
    return ctx.runner.memo(("vjp", case.name, dtype), lambda: _run(ctx, case, dtype))


def _ask(ctx: CheckContext, args: list[Any], phase: str, u: torch.Tensor | None = None) -> Any:
    runner = ctx.runner
    tensors: list[torch.Tensor] = []
    header = {"op": "numpy", "function": ctx.info.name, "args": encode_value(args, tensors),
              "vjp": phase == "backward", "u": encode_value(u, tensors)}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), phase)
    return reply if isinstance(reply, Fault) else reply.value(reply.header.get("value"))


def _run(ctx: CheckContext, case: Case, dtype: str) -> VjpRun:
    ex, runner = ctx.exercise, ctx.runner
    args = runner.inputs(case, dtype)
    like = reference_output(ex, args).detach()
    none = ex.spec.upstream == "none"
    upstream = torch.ones_like(like) if none else make_grad_output(like, runner.seed, ex.id, case.name, dtype)
    ev = VjpRun(case, dtype, args, upstream)
    out = _ask(ctx, args, "forward")
    ev.output, ev.forward_fault = (None, out) if isinstance(out, Fault) else (out, None)
    grads = _ask(ctx, args, "backward", None if none else upstream)
    ev.grads, ev.backward_fault = (None, grads) if isinstance(grads, Fault) else (grads, None)
    return ev


def _words(finding: Finding | None, name: str) -> Finding | None:
    """Say it in the terms of the functional style: f(x, p), vjp(u), arrays."""
    if finding is None:
        return None
    text = (finding.message.replace("forward returned", f"{name}(x, p) returned")
            .replace("backward returned", "vjp(u) returned").replace("expected a tensor", "expected a NumPy array"))
    return replace(finding, message=text)


def _double(args: list[Any]) -> list[Any]:
    return [a.double() if isinstance(a, torch.Tensor) else a for a in args]


def _per_example(grad: Any, param: torch.Tensor, x: torch.Tensor) -> Any:
    """A parameter gradient with one row per example, summed over the examples."""
    if isinstance(grad, torch.Tensor) and grad.shape != param.shape and grad.shape == (x.shape[0], *param.shape):
        return grad.sum(0)
    return grad


def output_finding(ctx: CheckContext, ev: VjpRun) -> Finding | None:
    ex, args = ctx.exercise, _double(ev.args)
    expected = reference_output(ex, args).detach()
    dtype = torch.float32 if ev.dtype == "float32" else torch.float64
    finding = diagnose_output(ev.output, expected.to(dtype), ex.tolerance(ev.dtype),
                              known=lambda: mistaken(ex, args, expected, None))
    return _words(finding, ctx.info.name)


def gradient_finding(ctx: CheckContext, ev: VjpRun) -> Finding | None:
    ex, specs, name = ctx.exercise, ev.case.inputs, ctx.info.name
    grads = ev.grads
    if not isinstance(grads, list) or len(grads) != 2:
        n = len(grads) if isinstance(grads, list) else 1
        return Finding("wrong_count", f"vjp(u) returned {n} value(s): return the pair (grad_{specs[0].name}, "
                       f"grad_{specs[1].name}), one per argument of {name}")
    got = [grads[0], _per_example(grads[1], ev.args[1], ev.args[0])]
    for spec, g in zip(specs, got):
        if not spec.differentiable and g is not None and not (isinstance(g, torch.Tensor) and not g.any()):
            return Finding("wrong_values", f"the gradient of `{spec.name}` must be zeros (or None): "
                           f"{spec.name} is a target, not a parameter to update")
    mask = [s.differentiable for s in specs]
    args, u, names = _double(ev.args), ev.upstream.double(), [s.name for s in specs]
    out, expected = reference_gradients(ex, args, mask, u)
    _, ones = reference_gradients(ex, args, mask, torch.ones_like(u))
    finding = diagnose_gradients(got, expected, ones, names, [True, True], ex.tolerance(ev.dtype),
                                 known=lambda i: mistaken(ex, args, out, u, names[i]))  # u is their grad_output
    return _words(finding, name)


def _per_case(ctx: CheckContext, judge, phase: str, cases: list[Case], dtype: str = "float64") -> Verdict:
    def fault_of(ev: VjpRun) -> Fault | None:
        return ev.forward_fault if phase == "forward" else ev.backward_fault

    for case in cases:
        ev = run(ctx, case, dtype)
        fault = fault_of(ev)
        if fault:
            return Verdict.fault(fault)
        finding = judge(ctx, ev)
        if finding:  # a scale error only with the same factor on every case, as for Functions
            finding = same_factor(ctx, finding, case, judge, lambda other: run(ctx, other, dtype), fault_of)
            where = f"case '{case.name}': " if case.name != ctx.exercise.cases[0].name else ""
            return Verdict.failed(finding, where)
    return Verdict.passed()


def _ordinary(ctx: CheckContext) -> list[Case]:
    return [c for c in ctx.exercise.cases if not c.stability]


@kind_check("vjp", "found")
def found(ctx: CheckContext) -> Verdict:
    name = ctx.info.name
    if not ctx.info.has_make_vjp:
        return Verdict.failed(Finding("no_make_vjp", f"{name} has no make_vjp: define {name}_make_vjp(x, p) "
                                      f"returning vjp(u), then set {name}.make_vjp = {name}_make_vjp"))
    return Verdict.passed()


@kind_check("vjp", "forward")
def forward(ctx: CheckContext) -> Verdict:
    return _per_case(ctx, output_finding, "forward", _ordinary(ctx))


@kind_check("vjp", "backward")
def backward(ctx: CheckContext) -> Verdict:
    return _per_case(ctx, gradient_finding, "backward", _ordinary(ctx))


def _float32_finding(ctx: CheckContext, ev: VjpRun) -> Finding | None:
    finding = output_finding(ctx, ev)
    if finding:
        return finding
    for spec, g in zip(ev.case.inputs, ev.grads if isinstance(ev.grads, list) else []):
        if spec.differentiable and isinstance(g, torch.Tensor) and g.dtype != torch.float32:
            return Finding("wrong_dtype", f"the gradient of `{spec.name}` is {str(g.dtype)[6:]} for float32 "
                           "arrays: keep the inputs' dtype (e.g. np.zeros_like, no float64 constants arrays)")
    return gradient_finding(ctx, ev)


@kind_check("vjp", "float32")
def float32(ctx: CheckContext) -> Verdict:
    case = _ordinary(ctx)[0]
    ev = run(ctx, case, "float32")
    fault = ev.forward_fault or ev.backward_fault
    if fault:
        return Verdict.fault(fault)
    finding = _float32_finding(ctx, ev)
    return Verdict.failed(finding) if finding else Verdict.passed()
