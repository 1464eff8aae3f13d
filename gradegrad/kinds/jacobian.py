"""Kind `jacobian`: the student's `jacobian(f, x)`, for f: R^n -> R^m given by gradegrad.

The orientation is part of the exercise: `m_by_n` (the notes' J, one row per output f_i, one
column per input x_j) or `n_by_m` (its transpose, as seed 003's loop fills
`gradients[:, i] = inputs.grad`). The child calls the student's function on gradegrad's functions
(`jacobian_fns`: a wide, a tall and a square one whose J is far from symmetric) at seeded points;
the grader compares with `torch.func.jacrev` (and `jacfwd`, which must agree) and names the
mistakes: the transpose, gradients that accumulate from row to row (no `inputs.grad = None`),
and a second backward through a freed graph (no `retain_graph=True`).
"""

from __future__ import annotations

from typing import Any

import torch

from gradegrad.cases import generator
from gradegrad.checks import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.kinds.jacobian_fns import FUNCTIONS
from gradegrad.sandbox.protocol import encode_value

CASES = ("wide", "tall", "square")


def point(seed: int, ex_id: str, name: str) -> torch.Tensor:
    _, n = FUNCTIONS[name]
    return torch.randn(n, generator=generator(seed, ex_id, name, "jacobian"), dtype=torch.float64)


def expected(name: str, x: torch.Tensor, orientation: str) -> torch.Tensor:
    """The reference in the exercise's orientation; jacrev and jacfwd must agree (gradegrad's own test)."""
    f, _ = FUNCTIONS[name]
    J = torch.func.jacrev(f)(x)
    return J if orientation == "m_by_n" else J.T


def layout(orientation: str, m: int, n: int) -> str:
    if orientation == "m_by_n":
        return f"{m}×{n}: one row per output f_i, one column per input x_j"
    return f"{n}×{m}: one row per input x_j, one column per output f_i (seed 003's gradients[:, i] = inputs.grad)"


def diagnose(got: Any, want: torch.Tensor, orientation: str, tol) -> Finding | None:
    """What is wrong with the student's matrix (pure: unit-tested)."""
    m, n = (want.shape if orientation == "m_by_n" else want.T.shape)
    if isinstance(got, torch.Tensor) and got.is_floating_point() and got.dim() == 2:
        g = got.double()
        close = lambda a, b: a.shape == b.shape and torch.allclose(a, b, tol.rtol, tol.atol)  # noqa: E731
        if close(g, want):
            return None
        if close(g, want.T):
            return Finding("transposed", f"the matrix is transposed: expected {layout(orientation, m, n)}")
        rows = 0 if orientation == "m_by_n" else 1  # the axis along the outputs
        if close(g, want.cumsum(rows)):
            return Finding("accumulated_gradients", "each output's gradient includes the previous ones: "
                           "gradients accumulate in inputs.grad; reset it (inputs.grad = None) after each row")
    if isinstance(got, torch.Tensor) and got.is_floating_point():
        got = got.double()  # a float32 matrix (seed 003's torch.empty((d, k))) is compared in float64
    return diagnose_output(got, want, tol)


def _ask(ctx: CheckContext, name: str, x: torch.Tensor) -> Any:
    runner, tensors = ctx.runner, []
    header = {"op": "kind", "side": "jacobian", "function": ctx.info.name, "f": name,
              "x": encode_value(x, tensors)}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "forward")
    return reply if isinstance(reply, Fault) else reply.value(reply.header.get("value"))


def _fault(fault: Fault) -> Verdict:
    if "backward through the graph a second time" in fault.message:
        return Verdict.failed(Finding("retain_graph", "the second backward through the same outputs failed: "
                                      "the first one freed the graph; call outputs[i].backward(retain_graph=True) "
                                      "(or torch.autograd.grad(..., retain_graph=True)) for every row but the last"))
    return Verdict.fault(fault)


@kind_check("jacobian", "found")
def found(ctx: CheckContext) -> Verdict:
    return Verdict.passed()


@kind_check("jacobian", "forward")
def forward(ctx: CheckContext) -> Verdict:
    ex = ctx.exercise
    for name in CASES:
        x = point(ctx.runner.seed, ex.id, name)
        got = ctx.runner.memo(("jacobian", name), lambda: _ask(ctx, name, x))
        if isinstance(got, Fault):
            return _fault(got)
        f, n = FUNCTIONS[name]
        finding = diagnose(got, expected(name, x, ex.spec.orientation), ex.spec.orientation, ex.tolerance("float64"))
        if finding:
            m = int(f(x).shape[0])
            return Verdict.failed(finding, f"f: R^{n} -> R^{m} ('{name}'): ")
    return Verdict.passed()
