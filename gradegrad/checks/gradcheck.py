"""`gradcheck`: torch.autograd.gradcheck in float64, run here on a proxy of the student's Function.

gradcheck compares the student's backward with finite differences of the student's own forward,
so it is its own check: a forward that spots the probes can fool it, which is why `backward`
compares with the reference on fresh inputs instead.
"""

from __future__ import annotations

import re

import torch
from torch.autograd.gradcheck import GradcheckError

from gradegrad.checks import CheckContext, Verdict, check
from gradegrad.checks.values import ordinary_cases
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Fault

EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3


def _explain(ctx: CheckContext, exc: Exception) -> Finding:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    diff = [s.name for s in ctx.exercise.inputs if s.differentiable]
    match = re.search(r"with respect to input (\d+)", first)
    if match and int(match.group(1)) < len(diff):
        name = diff[int(match.group(1))]
        return Finding("jacobian_mismatch", f"gradcheck: the gradient of `{name}` from your backward does not "
                       "match finite differences of your forward")
    if "not multiplied by grad_output" in text:
        return Finding("ignores_grad_output", "gradcheck: backward is not multiplied by grad_output")
    return Finding("gradcheck_failed", f"gradcheck: {first}")


@check("gradcheck")
def gradcheck(ctx: CheckContext) -> Verdict:
    case = ordinary_cases(ctx)[0]
    args = tuple(a.requires_grad_(spec.differentiable) if isinstance(a, torch.Tensor) else a
                 for spec, a in zip(case.inputs, ctx.runner.inputs(case, "float64")))
    fn = ctx.runner.function()

    def run() -> bool | Exception:
        """fast_mode decides (a few calls to the child); the full Jacobian only explains a failure.

        check_undefined_grad is off: the proxy's backward always receives a materialised
        grad_output, so that sub-check would test the proxy, not the student's Function.
        """
        try:
            torch.autograd.gradcheck(fn, args, eps=EPS, atol=ATOL, rtol=RTOL, fast_mode=True,
                                     check_undefined_grad=False)
            return True
        except GradcheckError:
            pass
        try:
            return torch.autograd.gradcheck(fn, args, eps=EPS, atol=ATOL, rtol=RTOL, raise_exception=True,
                                            check_undefined_grad=False)
        except GradcheckError as exc:
            return exc

    outcome = ctx.runner.guarded(run, "gradcheck")
    if isinstance(outcome, Fault):
        return Verdict.fault(outcome)
    if isinstance(outcome, Exception):
        return Verdict.failed(_explain(ctx, outcome))
    return Verdict.passed()
