"""Kind `ode_field`: the student's `nn.Module` field f(t, y), integrated by `torchdiffeq.odeint_adjoint`
as in the notes (`SimpleODEFunc`, extra `ode`).

The child builds the module, integrates it from the seeded y0 over `torch.linspace(*times)` with
`odeint_adjoint` (dopri5, rtol 1e-10), and backpropagates <trajectory, v> for a seeded v through
the adjoint. The grader integrates the manifest's reference field (an expression over t and y)
with fine RK4 steps, differentiates it with autograd and compares the trajectory (`forward`) and
the gradient with respect to y0 (`backward`). The grader never imports torchdiffeq.
"""

from __future__ import annotations

from typing import Any

import torch

from gradegrad.cases import generator
from gradegrad.checks import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_gradients, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.reference import reference_output
from gradegrad.sandbox.protocol import encode_value

SUBSTEPS = 200  # RK4 steps of the reference between two time points


def _field(ctx: CheckContext):
    ex = ctx.exercise
    return lambda t, y: reference_output(ex, [y]) if "t" not in ex.reference else _with_t(ex, t, y)


def _with_t(ex, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from dataclasses import replace

    from gradegrad.catalog import InputSpec

    timed = replace(ex, cases=(replace(ex.cases[0], inputs=(*ex.inputs, InputSpec("t"))),))
    return reference_output(timed, [y, t])


def trajectory(field, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """y at each time of t, by SUBSTEPS RK4 steps per interval (differentiable)."""
    ys, y = [y0], y0
    for t0, t1 in zip(t[:-1], t[1:]):
        h = (t1 - t0) / SUBSTEPS
        s = t0
        for _ in range(SUBSTEPS):
            k1 = field(s, y)
            k2 = field(s + h / 2, y + h / 2 * k1)
            k3 = field(s + h / 2, y + h / 2 * k2)
            k4 = field(s + h, y + h * k3)
            y, s = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), s + h
        ys.append(y)
    return torch.stack(ys)


def _data(ctx: CheckContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ex, seed = ctx.exercise, ctx.runner.seed
    y0 = ctx.runner.inputs(ex.cases[0])[0]
    t = torch.linspace(*ex.spec.times, dtype=torch.float64)
    v = torch.randn((len(t), *y0.shape), generator=generator(seed, ex.id, "v"), dtype=torch.float64)
    return y0, t, v


def _reference(ctx: CheckContext) -> tuple[torch.Tensor, torch.Tensor]:
    y0, t, v = _data(ctx)
    leaf = y0.clone().requires_grad_(True)
    with torch.enable_grad():
        traj = trajectory(_field(ctx), leaf, t)
        grad = torch.autograd.grad((traj * v).sum(), leaf)[0]
    return traj.detach(), grad


def run(ctx: CheckContext) -> dict[str, Any] | Fault:
    return ctx.runner.memo(("ode_field",), lambda: _run(ctx))


def _run(ctx: CheckContext) -> dict[str, Any] | Fault:
    runner, tensors = ctx.runner, []
    header = {"op": "kind", "side": "ode_field", "class": ctx.info.name, "args": encode_value(list(_data(ctx)), tensors)}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "forward")
    if isinstance(reply, Fault):
        return reply
    return {k: reply.value(reply.header.get(k)) for k in ("trajectory", "grad")}


@kind_check("ode_field", "found")
def found(ctx: CheckContext) -> Verdict:
    if not ctx.info.is_module:
        base = ctx.info.bases[0] if ctx.info.bases else "object"
        return Verdict.failed(Finding("not_a_module", f"{ctx.info.name} derives from {base}, not from torch.nn.Module: "
                                      "odeint_adjoint needs the field as an nn.Module with forward(self, t, y)"))
    return Verdict.passed()


@kind_check("ode_field", "forward")
def forward(ctx: CheckContext) -> Verdict:
    ev = run(ctx)
    if isinstance(ev, Fault):
        return Verdict.fault(ev)
    expected, _ = _reference(ctx)
    got = ev["trajectory"]
    finding = diagnose_output(got.double() if isinstance(got, torch.Tensor) else got, expected,
                              ctx.exercise.tolerance("float64"))
    return Verdict.failed(finding, "the trajectory of odeint_adjoint: ") if finding else Verdict.passed()


@kind_check("ode_field", "backward")
def backward(ctx: CheckContext) -> Verdict:
    ev = run(ctx)
    if isinstance(ev, Fault):
        return Verdict.fault(ev)
    _, expected = _reference(ctx)
    got = ev.get("grad")
    if got is None:
        return Verdict.failed(Finding("detached", "the trajectory has no grad_fn: the field's output is not "
                                      "connected to y (did it detach or convert to NumPy?)"))
    finding = diagnose_gradients([got], [expected], [None], ["y0"], [True], ctx.exercise.tolerance("float64"))
    return Verdict.failed(finding, "through the adjoint: ") if finding else Verdict.passed()
