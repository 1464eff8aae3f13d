"""`gradcheck`: torch.autograd.gradcheck in float64, run here on a proxy of the student's Function.

gradcheck compares the student's backward with finite differences of the student's own forward,
so it is its own check: a forward that spots the probes can fool it, which is why `backward`
compares with the reference on fresh inputs instead.
"""

from __future__ import annotations

import re
import sys

import torch
from torch.autograd.gradcheck import GradcheckError

from gradegrad.registry import register
from gradegrad.verdict import CheckContext, Verdict
from gradegrad.catalog import Exercise
from gradegrad.checks.values import gradient_finding, ordinary, ordinary_cases, output_finding
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Ahead, Fault, Read

EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3
# check_undefined_grad is off: the proxy's backward always receives a materialised grad_output,
# so that sub-check would test the proxy, not the student's Function
OPTIONS = {"eps": EPS, "atol": ATOL, "rtol": RTOL, "check_undefined_grad": False}
# what torch adds to a fast_mode failure whose full Jacobian would have passed (None: a torch
# that does not say, so the full gradcheck settles every fast_mode failure)
SLOW_MODE_PASSES: str | None = getattr(sys.modules["torch.autograd.gradcheck"], "FAST_FAIL_SLOW_OK_MSG", None)


def _explain(ctx: CheckContext, exc: Exception, blame: str) -> Finding:
    """gradcheck's failure in a student's terms. `blame` (`_blame`): "backward" when backward's
    gradients differ from the reference's; otherwise the finite differences of forward are at
    fault: "forward" when forward's values are wrong too, "precision" when they pass the
    reference's tolerance (right only to a lower precision: computed in float32 and cast back)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    diff = [s.name for s in ctx.exercise.inputs if s.differentiable]
    match = re.search(r"with respect to input (\d+)", first)
    if match and int(match.group(1)) < len(diff):
        name = diff[int(match.group(1))]
        if blame == "forward":
            return Finding("jacobian_mismatch", f"gradcheck: your backward's gradient of `{name}` agrees with "
                           "the reference, but your forward does not (see `forward`), and gradcheck "
                           "differentiates your forward: fix forward")
        if blame == "precision":
            return Finding("imprecise_forward", f"gradcheck: your backward's gradient of `{name}` agrees with the "
                           "reference, but finite differences of your forward do not: forward lacks float64's "
                           "precision (computed in float32, or with .float(), and cast back?); compute in the "
                           "inputs' dtype")
        return Finding("jacobian_mismatch", f"gradcheck: the gradient of `{name}` from your backward does not "
                       "match finite differences of your forward")
    if "not multiplied by grad_output" in text:
        return Finding("ignores_grad_output", "gradcheck: backward is not multiplied by grad_output")
    return Finding("gradcheck_failed", f"gradcheck: {first}")


def _blame(ctx: CheckContext, case) -> str:
    """Which part a failed gradcheck points at, from the memoised evaluation of the same case:
    "backward" (its gradients differ from the reference's, or are unknown), "forward" (backward's
    agree, forward's values do not), "precision" (both agree within the reference's tolerance)."""
    ev = ctx.runner.evaluate(case)
    if ev.fault is not None or ev.grads is None or _wrong(gradient_finding(ctx, ev)):
        return "backward"
    return "forward" if _wrong(output_finding(ctx, ev)) else "precision"


def _wrong(finding: Finding | None) -> bool:
    """A finding that costs points (a note costs nothing)."""
    return finding is not None and not finding.note


def _expect_failure(ctx: CheckContext, case) -> bool:
    """Whether the student's gradients already differ from the reference's on this case (the
    evaluation and the reference are memoised: `backward` compared them)."""
    ev = ctx.runner.evaluate(case)
    return ev.fault is None and _wrong(gradient_finding(ctx, ev))


def _not_float64(ctx: CheckContext, case) -> Finding | None:
    """gradcheck perturbs float64 inputs by 1e-6: a forward that answers in another dtype cannot be
    checked (and would only make torch's own gradcheck raise)."""
    ev = ctx.runner.evaluate(case)
    out = ev.output[0] if isinstance(ev.output, list) and len(ev.output) == 1 else ev.output
    if ev.fault is None and isinstance(out, torch.Tensor) and out.dtype != torch.float64:
        return Finding("wrong_dtype", f"gradcheck: forward returned {str(out.dtype).removeprefix('torch.')} for "
                       "float64 inputs, so finite differences cannot be compared with backward: return the "
                       "inputs' dtype (no hard-coded dtype=torch.float32 or .float())")
    return None


def _reads(ex: Exercise, device: str) -> list[Read | Ahead]:
    """The first case (to see whether it answers in float64), and gradcheck's run-ahead on it."""
    case = ordinary(ex)[0].name
    return [Read(case), Ahead(case, tuple(OPTIONS.items()))]


@register("gradcheck", reads=_reads)
def gradcheck(ctx: CheckContext) -> Verdict:
    case = ordinary_cases(ctx)[0]
    wrong = _not_float64(ctx, case)
    if wrong is not None:
        return Verdict.failed(wrong)
    args = tuple(a.requires_grad_(spec.differentiable) if isinstance(a, torch.Tensor) else a
                 for spec, a in zip(case.inputs, ctx.runner.inputs(case, "float64")))
    fn = ctx.runner.function()
    options = dict(OPTIONS)

    def checked(ahead: bool, **mode: bool) -> bool | Exception:
        """gradcheck here, on the proxy, after the child ran the same gradcheck ahead (with the
        exercise's evaluations, or asked now when `ahead`), so that the proxy's calls find their
        replies ready instead of costing a round trip each."""
        with ctx.runner.gradcheck_ahead(args, {**options, **mode}, speculate=ahead):
            try:
                return torch.autograd.gradcheck(fn, args, **options, **mode)
            except GradcheckError as exc:
                return exc

    def run() -> bool | Exception:
        """fast_mode decides in a few calls. When it fails, torch recomputes the failing Jacobian
        in full to explain it: two calls per input element and one per output element. Only where
        that full Jacobian would pass does the full gradcheck settle it. The child runs both ahead
        with the exercise's evaluations (`evaluation.Ahead`); without those replies, it runs
        fast_mode ahead only when backward already disagrees with the reference (a failure is
        then expected), and the full gradcheck always.
        """
        fast = checked(_expect_failure(ctx, case), fast_mode=True)
        if fast is True or (SLOW_MODE_PASSES and SLOW_MODE_PASSES not in str(fast)):
            return fast
        return checked(True, fast_mode=False)

    outcome = ctx.runner.guarded(run, "gradcheck")
    if isinstance(outcome, Fault):
        return Verdict.fault(outcome)
    if isinstance(outcome, Exception):
        return Verdict.failed(_explain(ctx, outcome, _blame(ctx, case)))
    return Verdict.passed()
