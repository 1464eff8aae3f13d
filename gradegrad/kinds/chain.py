"""Kind `chain`: `backward_diff_chain` and a few SGD steps on the seed's linear-regression data.

The data are the seed's: 30 points x in [0, 1)^2, y = 2 x1 - 3 x2 + 1, and W, b drawn by
`np.random.RandomState(seed)` as in `create_feed_forward` (seed 0 gives the printed losses
110.29, 17.18, 15.48, ...; a per-student variant gets its own seed). The child runs the training
loop with gradegrad's `dot`, `add` and `squared_loss` (numpy_ops, whose parameter gradients keep
one row per example as in the notes) and the student's `backward_diff_chain`, which may pass those
rows on or sum them; the grader replays it with torch autograd and compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gradegrad.verdict import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_gradients
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.sandbox.protocol import encode_value

SAMPLES = 30
NAMES = ("x", "W", "b", "y")  # the input, then the parameters of dot, add and squared_loss


def chain_data(seed: int) -> list[torch.Tensor]:
    """x (30, 2) and y (30, 1) in float32, W (2, 1) and b (1,) in float64, as in the seed."""
    rng = np.random.RandomState(seed % 2**32)
    x = rng.random((SAMPLES, 2)).astype("float32")
    y = np.expand_dims(np.dot(x, [2.0, -3.0]) + 1.0, axis=1).astype("float32")
    init = np.random.RandomState(seed % 2**32)
    w, b = init.randn(2, 1), init.randn(1)
    return [torch.from_numpy(a) for a in (x, y, w, b)]


def reference_run(data: list[torch.Tensor], steps: int, lr: float) -> tuple[list[float], list[torch.Tensor]]:
    """The losses of `steps` SGD steps, and the gradients (x, W, b) of the first, by torch autograd."""
    x, y, w, b = data
    x, y = x.double().requires_grad_(True), y.double()
    losses: list[float] = []
    first: list[torch.Tensor] = []
    for step in range(steps):
        w, b = w.detach().requires_grad_(True), b.detach().requires_grad_(True)
        loss = ((y - (x @ w + b)) ** 2).sum()
        grads = torch.autograd.grad(loss, [x, w, b])
        losses.append(float(loss.detach()))
        first = first or [g.detach() for g in grads]
        w, b = w - lr * grads[1], b - lr * grads[2]
    return losses, first


@dataclass(frozen=True)
class ChainRun:
    losses: list[Any] | None = None
    grads: list[Any] | None = None  # grad_x, then one gradient per function's parameter
    fault: Fault | None = None


def run(ctx: CheckContext) -> ChainRun:
    return ctx.runner.memo(("chain",), lambda: _run(ctx))


def _run(ctx: CheckContext) -> ChainRun:
    runner, spec = ctx.runner, ctx.exercise.spec
    tensors: list[torch.Tensor] = []
    header = {"op": "chain", "function": ctx.info.name, "args": encode_value(chain_data(runner.seed), tensors),
              "steps": spec.steps, "lr": spec.lr}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "training")
    if isinstance(reply, Fault):
        return ChainRun(fault=reply)
    losses, grads = reply.value(reply.header.get("losses")), reply.value(reply.header.get("grads"))
    return ChainRun(losses if isinstance(losses, list) else None, grads if isinstance(grads, list) else None)


def _loss(value: Any) -> float | str:
    """One number from what the student returned as the loss, or why not."""
    if not isinstance(value, torch.Tensor):
        return f"the loss is {getattr(value, 'type_name', type(value).__name__)}, expected a NumPy array"
    if value.numel() != 1:
        return f"the loss has shape {tuple(value.shape)}, expected one number (shape (1,), like squared_loss's)"
    return float(value.double().reshape(-1)[0])


def _loss_finding(got: Any, expected: float, step: int, ctx: CheckContext) -> Finding | None:
    value = _loss(got)
    if isinstance(value, str):
        return Finding("wrong_shape", value)
    tol = ctx.exercise.tolerance("float64")
    if abs(value - expected) <= tol.atol + tol.rtol * abs(expected):
        return None
    when = "the first loss" if step == 0 else f"the loss after {step} SGD step(s)"
    return Finding("wrong_losses", f"{when} is {value:.8g}, expected {expected:.8g}")


def _ready(ctx: CheckContext) -> tuple[ChainRun, list[float], list[torch.Tensor]] | Verdict:
    ev = run(ctx)
    if ev.fault:
        return Verdict.fault(ev.fault)
    losses, first = reference_run(chain_data(ctx.runner.seed), ctx.exercise.spec.steps, ctx.exercise.spec.lr)
    return ev, losses, first


@kind_check("chain", "found")
def found(ctx: CheckContext) -> Verdict:
    return Verdict.passed()


@kind_check("chain", "forward")
def forward(ctx: CheckContext) -> Verdict:
    ready = _ready(ctx)
    if isinstance(ready, Verdict):
        return ready
    ev, losses, _ = ready
    finding = _loss_finding((ev.losses or [None])[0], losses[0], 0, ctx)
    return Verdict.failed(finding) if finding else Verdict.passed()


def _per_example(grad: Any, param: torch.Tensor) -> Any:
    if isinstance(grad, torch.Tensor) and grad.shape == (SAMPLES, *param.shape) and grad.shape != param.shape:
        return grad.sum(0)
    return grad


@kind_check("chain", "backward")
def backward(ctx: CheckContext) -> Verdict:
    ready = _ready(ctx)
    if isinstance(ready, Verdict):
        return ready
    ev, _, expected = ready
    got = ev.grads or []
    if len(got) != len(NAMES):
        return Verdict.failed(Finding("wrong_count", f"backward_diff_chain returned {max(len(got) - 1, 0)} "
                                      "parameter gradient(s): J must hold one per function (dot, add, squared_loss)"))
    data = chain_data(ctx.runner.seed)
    got = [got[0], _per_example(got[1], data[2]), _per_example(got[2], data[3]), got[3]]
    if got[3] is not None and not (isinstance(got[3], torch.Tensor) and not got[3].any()):
        return Verdict.failed(Finding("wrong_values", "the gradient of the target y must be zeros: y is not a parameter"))
    if got[0] is None:
        return Verdict.failed(Finding("missing_gradient", "backward_diff_chain returned None as grad_x: return "
                                      "the u left after the last vjp (the gradient of the loss with respect to x)"))
    finding = diagnose_gradients(got, [*expected, None], [None] * 4, NAMES, [True] * 4, ctx.exercise.tolerance("float64"))
    if finding is None:
        return Verdict.passed()
    words = finding.message.replace("backward returned", "backward_diff_chain returned")
    return Verdict.failed(Finding(finding.code, f"after one pass: {words}", finding.worst))


@kind_check("chain", "training")
def training(ctx: CheckContext) -> Verdict:
    ready = _ready(ctx)
    if isinstance(ready, Verdict):
        return ready
    ev, losses, _ = ready
    got = ev.losses or []
    if len(got) != len(losses):
        return Verdict.failed(Finding("wrong_losses", f"{len(got)} losses came back for {len(losses)} steps"))
    for step, (g, e) in enumerate(zip(got, losses)):
        finding = _loss_finding(g, e, step, ctx)
        if finding:
            shown = ", ".join(f"{x:.6g}" for x in losses)
            return Verdict.failed(Finding(finding.code, f"{finding.message} (the reference run: {shown})"))
    return Verdict.passed()
