"""Kind `deq`: a deep equilibrium layer, z* = tanh(W z* + x), as a Function.

Forward finds the fixed point; backward solves the implicit-function equation
(I - J^T) g = v, J = ∂f/∂z at z*, for the vjp. Graded as a function against
`solvers.deq_tanh` (the same fixed point, gradients from the linear solve; unrolling enough
iterations gives the same to 1e-14), and the classic mistakes are named: the linear system
without its transpose, W where Wᵀ belongs (which is exactly the jvp (I - J)⁻¹ D v where the vjp
belongs), the one-step (Jacobian-free) gradient, and a forward tolerance that leaks into the
gradient. Inputs keep W's
spectral norm well below 1 (a contraction), so the fixed point exists and is unique.
"""

from __future__ import annotations

import torch

from gradegrad.checks import CheckContext, Verdict
from gradegrad.checks.values import backward as values_backward
from gradegrad.checks.values import forward as values_forward
from gradegrad.checks.values import each_case, ordinary_cases
from gradegrad.diagnosis import Finding
from gradegrad.kinds import solvers
from gradegrad.registry import kind_check
from gradegrad.kinds.functionlike import share_function_checks

RESIDUAL = 1e-9  # a fixed point whose |f(z) - z| exceeds this was not converged
MISTAKE_RTOL, MISTAKE_ATOL = 1e-5, 1e-8

share_function_checks("deq", ("found", "gradcheck", "needs_input_grad", "inputs_unchanged", "hand_written"))

MISTAKES = {
    "untransposed": "backward solves (I - J) g = v where the vjp needs the transpose, (I - Jᵀ) g = v "
                    "(J = diag(1 - z*²) W)",
    "w_not_transposed": "backward uses W where Wᵀ belongs, which gives the jvp (I - J)⁻¹ D v instead of the "
                        "vjp D (I - Jᵀ)⁻¹ v: the vjp solves (I - Wᵀ D) g = v, D = diag(1 - z*²)",
    "one_step": "backward is the one-step (Jacobian-free) gradient: it backpropagates through one "
                "application of f and skips the solve with (I - Jᵀ)",
}


def residual(z: object, x: torch.Tensor, W: torch.Tensor) -> float | None:
    """max |f(z, x) - z| of the student's output (None when it is not a fitting tensor)."""
    if not isinstance(z, torch.Tensor) or z.shape != x.shape:
        return None
    with torch.no_grad():
        return float((solvers.tanh_layer(z.double(), x.double(), W.double()) - z.double()).abs().max())


def _loose(r: float) -> Finding:
    return Finding("loose_tolerance", f"forward stopped at a point that is not fixed: |f(z) - z| = {r:.1e}; "
                   f"iterate until the residual is below {RESIDUAL:g}, or the tolerance leaks into the output "
                   "and the gradient")


def mistake(grads: list, x: torch.Tensor, W: torch.Tensor, v: torch.Tensor) -> str | None:
    """The classic mistake whose gradients the student's match, if any (pure: unit-tested)."""
    got = [g.double() if isinstance(g, torch.Tensor) else None for g in grads[:2]]
    for name, expected in solvers.deq_mistakes(x.double(), W.double(), v.double()).items():
        if all(g is not None and g.shape == e.shape and torch.allclose(g, e, MISTAKE_RTOL, MISTAKE_ATOL)
               for g, e in zip(got, expected)):
            return name
    return None


@kind_check("deq", "forward", reads=each_case)
def forward(ctx: CheckContext) -> Verdict:
    verdict = values_forward(ctx)
    if verdict.status != "failed":
        return verdict
    for case in ordinary_cases(ctx):
        ev = ctx.runner.evaluate(case)
        r = residual(ev.output, ev.args[0], ev.args[1])
        if r is not None and r > RESIDUAL:
            return Verdict.failed(_loose(r))
    return verdict


@kind_check("deq", "backward", reads=each_case)
def backward(ctx: CheckContext) -> Verdict:
    verdict = values_backward(ctx)
    if verdict.status != "failed":
        return verdict
    for case in ordinary_cases(ctx):
        ev = ctx.runner.evaluate(case)
        if ev.grads is None or ev.grad_output is None:
            continue
        name = mistake(ev.grads, ev.args[0], ev.args[1], ev.grad_output)
        if name:
            return Verdict("failed", MISTAKES[name], name, verdict.worst)
        r = residual(ev.output, ev.args[0], ev.args[1])
        if r is not None and r > RESIDUAL:
            finding = _loose(r)
            return Verdict("failed", finding.message, finding.code, verdict.worst)
    return verdict
