"""Kind `jax_vjp`: seed 002's vjp functions written with `jax.custom_vjp` (extra `jax`).

The student defines `f = jax.custom_vjp(f)` with `f.defvjp(f_fwd, f_bwd)`, as the notes' `dot`,
`add`, `squared_loss`. The child (and only the child) imports JAX, in float64, and answers
f(x, p) and the cotangents of `jax.vjp(f, x, p)` for an upstream u. References are computed in
the grader in torch float64 (the manifest's `reference`, as for `vjp`), so the grader never
imports JAX: the same numbers as `jax.vjp` of the reference, without a second framework in the
trusted process. `gradcheck` is `torch.autograd.gradcheck` in the grader on a proxy whose forward
and backward are those two requests: reverse-mode vjps against finite differences of the
student's own forward, which is what `jax.test_util.check_grads(f, args, 1, modes=['rev'])`
checks, with the verdict in the grader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.autograd.gradcheck import GradcheckError

from gradegrad.cases import make_grad_output
from gradegrad.catalog import Case
from gradegrad.checks import CheckContext, Verdict
from gradegrad.checks.values import same_factor
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.reference import mistaken, reference_gradients, reference_output
from gradegrad.sandbox.protocol import Other, encode_value


def _ask(ctx: CheckContext, args: list, phase: str, u: torch.Tensor | None = None, timeout: float | None = None):
    runner, tensors = ctx.runner, []
    header = {"op": "kind", "side": "jax_vjp", "function": ctx.info.name, "phase": phase,
              "args": encode_value([a.detach() for a in args], tensors), "u": encode_value(u, tensors)}
    reply = runner.sub.ask(header, tensors, timeout=timeout if timeout is not None else runner.remaining())
    return reply.value(reply.header.get("value"))


def _guarded(ctx: CheckContext, args: list, phase: str, u: torch.Tensor | None = None) -> Any:
    return ctx.runner.guarded(lambda: _ask(ctx, args, phase, u), phase)


def _upstream(ctx: CheckContext, case: Case, args: list) -> torch.Tensor | None:
    like = reference_output(ctx.exercise, args).detach()
    if ctx.exercise.spec.upstream == "none":
        return None
    return make_grad_output(like, ctx.runner.seed, ctx.exercise.id, case.name, "float64")


def _cases(ctx: CheckContext) -> list[Case]:
    return [c for c in ctx.exercise.cases if not c.stability]


@kind_check("jax_vjp", "found")
def found(ctx: CheckContext) -> Verdict:
    if "custom_vjp" not in ctx.info.bases:
        return Verdict.failed(Finding("no_custom_vjp", f"{ctx.info.name} is a plain function: wrap it with "
                                      f"jax.custom_vjp and give it {ctx.info.name}.defvjp(fwd, bwd)"))
    return Verdict.passed()


@dataclass(frozen=True)
class _Run:
    """One case's call of the student's JAX function (forward, or the vjp with `upstream`)."""

    case: Case
    args: list
    upstream: torch.Tensor | None
    got: Any  # the value, or the Fault that stopped it


def _run(ctx: CheckContext, case: Case, phase: str) -> _Run:
    args = ctx.runner.inputs(case)
    u = _upstream(ctx, case, args) if phase == "backward" else None
    got = ctx.runner.memo(("jax", case.name, phase), lambda: _guarded(ctx, args, phase, u))
    return _Run(case, args, u, got)


def _fault(run: _Run) -> Fault | None:
    return run.got if isinstance(run.got, Fault) else None


def _output_finding(ctx: CheckContext, run: _Run) -> Finding | None:
    ex = ctx.exercise
    expected = reference_output(ex, run.args).detach()
    return diagnose_output(run.got, expected, ex.tolerance("float64"),
                           known=lambda: mistaken(ex, run.args, expected, None))


def _cotangent_finding(ctx: CheckContext, run: _Run) -> Finding | None:
    ex, got = ctx.exercise, run.got
    if not isinstance(got, list) or len(got) != 2:
        return Finding("wrong_count", "the vjp returned the wrong number of cotangents: "
                       "bwd(res, g) returns one per argument of f, as a tuple")
    mask = [s.differentiable for s in run.case.inputs]
    upstream = torch.ones_like(reference_output(ex, run.args)) if run.upstream is None else run.upstream
    out, expected = reference_gradients(ex, run.args, mask, upstream)
    _, ones = reference_gradients(ex, run.args, mask, torch.ones_like(upstream))
    kept = [g if m else None for g, m in zip(got, mask)]  # a target's cotangent is not graded
    names = [s.name for s in run.case.inputs]
    return diagnose_gradients(kept, expected, ones, names, mask, ex.tolerance("float64"),
                              known=lambda i: mistaken(ex, run.args, out, upstream, names[i]))  # g is grad_output


def _per_case(ctx: CheckContext, phase: str, judge) -> Verdict:
    """The first case whose call fails or is wrong decides; a scale error is named only when every
    case shows the same factor (as for Functions)."""
    for case in _cases(ctx):
        run = _run(ctx, case, phase)
        if _fault(run):
            return Verdict.fault(_fault(run))
        finding = judge(ctx, run)
        if finding:
            finding = same_factor(ctx, finding, case, judge, lambda other: _run(ctx, other, phase), _fault)
            return Verdict.failed(replace(finding, message=finding.message.replace("backward returned", "bwd returned")),
                                  "" if case is ctx.exercise.cases[0] else f"case '{case.name}': ")
    return Verdict.passed()


@kind_check("jax_vjp", "forward")
def forward(ctx: CheckContext) -> Verdict:
    return _per_case(ctx, "forward", _output_finding)


@kind_check("jax_vjp", "backward")
def backward(ctx: CheckContext) -> Verdict:
    return _per_case(ctx, "backward", _cotangent_finding)


@kind_check("jax_vjp", "gradcheck")
def gradcheck(ctx: CheckContext) -> Verdict:
    """torch.autograd.gradcheck here, on a proxy of the student's JAX function (check_grads' rev mode)."""
    case = _cases(ctx)[0]
    specs = case.inputs
    args = tuple(a.requires_grad_(s.differentiable) for s, a in zip(specs, ctx.runner.inputs(case)))
    deadline = ctx.runner.deadline

    class Proxy(torch.autograd.Function):
        @staticmethod
        def forward(c, x, p):
            c.save_for_backward(x, p)
            out = _ask(ctx, [x, p], "forward", timeout=deadline - time.monotonic())
            if not isinstance(out, torch.Tensor):
                raise GradcheckError(f"f returned {getattr(out, 'type_name', type(out).__name__)}, not an array")
            return out.clone()

        @staticmethod
        def backward(c, g):
            x, p = c.saved_tensors
            got = _ask(ctx, [x, p], "backward", g.detach(), timeout=deadline - time.monotonic())
            if not isinstance(got, list) or len(got) != 2 or isinstance(got[0], Other):
                raise GradcheckError("the vjp did not return one cotangent per argument")
            return tuple(t.to(g.dtype) if isinstance(t, torch.Tensor) and s.differentiable else None
                         for t, s in zip(got, specs))

    def run() -> bool | Exception:
        try:
            return torch.autograd.gradcheck(Proxy.apply, args, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True,
                                            check_undefined_grad=False)
        except GradcheckError as exc:
            return exc

    outcome = ctx.runner.guarded(run, "gradcheck")
    if isinstance(outcome, Fault):
        return Verdict.fault(outcome)
    if isinstance(outcome, Exception):
        first = (str(outcome).strip().splitlines() or [type(outcome).__name__])[0]
        return Verdict.failed(Finding("jacobian_mismatch", f"gradcheck: your vjp does not match finite "
                                      f"differences of your f ({first[:200]})"))
    return Verdict.passed()
