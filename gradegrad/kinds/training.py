"""Kind `training`: the student's optimizer step and training loop, on the notes' linear regression.

The data are the chain exercise's (30 points, y = 2 x1 - 3 x2 + 1, W and b from
`np.random.RandomState(seed)`). Three loops of "Autodiff and Backpropagation" (`loop:`):
`numpy_sgd` (the student's `optim_SGD` and `update_params` in the notes' 10-epoch loop),
`torch_sgd` (the student's `train(model, x, y, epochs, lr)`: `nn.Linear`, `MSELoss(reduction='sum')`,
`torch.optim.SGD`) and `haiku_optax` (the same with haiku and optax, extra `jax`). The child runs
the loop and sends back the losses and the final parameters; the grader replays SGD in float64
(`replay`) and compares. With `--seed 0` the losses are the notes' printed 110.29, 17.18, ..., 8.83.

Checks: `found`, `forward` (numpy_sgd: the first updates are -lr times the summed gradients; a
whole loop: the loss before the first step),
`training` (every epoch's loss), `parameters` (W and b after the last epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradegrad.checks import CheckContext, Verdict
from gradegrad.diagnosis import Finding, diagnose_output
from gradegrad.evaluation import Fault
from gradegrad.registry import evaluator_imports, kind_check
from gradegrad.kinds.chain import chain_data
from gradegrad.sandbox.protocol import encode_value

FLOAT32 = ("torch_sgd", "haiku_optax")  # loops that train in float32, as in the notes

# torch.optim's first call (each optimizer method is wrapped to keep torch.compile out) imports
# torch._dynamo: a second in every evaluator that runs the torch loop, unless the fork server has it
evaluator_imports("training", lambda ex: ("torch._dynamo",) if ex.spec.loop == "torch_sgd" else ())


def replay(seed: int, epochs: int, lr: float) -> tuple[list[float], list[torch.Tensor], list[torch.Tensor]]:
    """(losses, first gradients [W, b], final [W, b]): SGD on sum((x W + b - y)^2) in float64."""
    x, y, w, b = (t.double() for t in chain_data(seed))
    losses: list[float] = []
    first: list[torch.Tensor] = []
    for _ in range(epochs):
        w, b = w.detach().requires_grad_(True), b.detach().requires_grad_(True)
        loss = ((x @ w + b - y) ** 2).sum()
        gw, gb = torch.autograd.grad(loss, [w, b])
        losses.append(float(loss.detach()))
        first = first or [gw, gb]
        w, b = (w - lr * gw).detach(), (b - lr * gb).detach()
    return losses, first, [w, b]


@dataclass(frozen=True)
class Run:
    losses: list[Any]
    updates: list[Any]
    params: list[Any]


def run(ctx: CheckContext) -> Run | Fault:
    return ctx.runner.memo(("training",), lambda: _run(ctx))


def _run(ctx: CheckContext) -> Run | Fault:
    runner, spec, tensors = ctx.runner, ctx.exercise.spec, []
    header = {"op": "kind", "side": "train", "loop": spec.loop, "function": ctx.info.name,
              "args": encode_value(chain_data(runner.seed), tensors), "epochs": spec.epochs, "lr": spec.lr}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "training")
    if isinstance(reply, Fault):
        return reply
    values = [reply.value(reply.header.get(k)) for k in ("losses", "updates", "params")]
    return Run(*[v if isinstance(v, list) else [] for v in values])


def _tolerance(ctx: CheckContext):
    return ctx.exercise.tolerance("float32" if ctx.exercise.spec.loop in FLOAT32 else "float64")


def _params(ctx: CheckContext, final: list[torch.Tensor]) -> list[torch.Tensor]:
    """The reference parameters in the loop's own layout (nn.Linear keeps W transposed)."""
    w, b = final
    return [w.T, b] if ctx.exercise.spec.loop == "torch_sgd" else [w, b]


def _match_leaves(got: list[Any], want: list[torch.Tensor]) -> list[Any]:
    """haiku's parameters come as a tree's leaves (b before w): pair them with W and b by shape."""
    pool = [g for g in got if isinstance(g, torch.Tensor)]
    out = []
    for w in want:
        hit = next((g for g in pool if tuple(g.shape) == tuple(w.shape)), None)
        out.append(hit if hit is not None else (got[len(out)] if len(got) > len(out) else None))
        if hit is not None:
            pool = [g for g in pool if g is not hit]
    return out


@kind_check("training", "found")
def found(ctx: CheckContext) -> Verdict:
    return Verdict.passed()


def _fault(fault: Fault) -> Verdict:
    if "function update_params not found" in fault.message:
        return Verdict.failed(Finding("missing", "no function update_params: the loop applies optim_SGD's "
                                      "updates with update_params(updates, params), as in the notes"))
    return Verdict.fault(fault)


@kind_check("training", "forward")
def forward(ctx: CheckContext) -> Verdict:
    """numpy_sgd: the first updates are -lr times the summed gradients; a whole loop: its first loss."""
    ev = run(ctx)
    if isinstance(ev, Fault):
        return _fault(ev)
    lr = ctx.exercise.spec.lr
    losses, first, _ = replay(ctx.runner.seed, 1, lr)
    if ctx.exercise.spec.loop != "numpy_sgd":
        value, tol = _loss(ev.losses[0]) if ev.losses else None, _tolerance(ctx)
        if value is None or abs(value - losses[0]) > tol.atol + tol.rtol * abs(losses[0]):
            return Verdict.failed(Finding("wrong_losses", f"the loss before any step is {value}, expected "
                                          f"{losses[0]:.8g}: the model's forward and the summed squared error"))
        return Verdict.passed()
    if len(ev.updates) < 2:
        return Verdict.failed(Finding("wrong_count", "optim_SGD returned fewer updates than parameters"))
    for name, got, g in zip(("W", "b"), ev.updates, first):
        if isinstance(got, torch.Tensor) and got.shape != g.shape and got.dim() == g.dim() + 1:
            return Verdict.failed(Finding("per_example_update", f"the update of {name} has shape "
                                          f"{tuple(got.shape)}: sum the per-example gradients over the "
                                          f"examples (axis 0) to get {tuple(g.shape)}"))
        finding = diagnose_output(got, -lr * g, ctx.exercise.tolerance("float64"))
        if finding:
            if finding.code == "sign_error":
                return Verdict.failed(Finding("sign_error", f"the update of {name} goes up the gradient: "
                                              "an SGD update is -learning_rate * gradient"))
            return Verdict.failed(finding, f"the first update of {name}: ")
    return Verdict.passed()


def _loss(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value.double().reshape(-1)[0])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


@kind_check("training", "training")
def training(ctx: CheckContext) -> Verdict:
    ev = run(ctx)
    if isinstance(ev, Fault):
        return _fault(ev)
    spec, tol = ctx.exercise.spec, _tolerance(ctx)
    losses, _, _ = replay(ctx.runner.seed, spec.epochs, spec.lr)
    shown = ", ".join(f"{x:.6g}" for x in losses)
    if len(ev.losses) != len(losses):
        return Verdict.failed(Finding("wrong_losses", f"{len(ev.losses)} losses came back for {len(losses)} "
                                      f"epochs (the reference run: {shown})"))
    for epoch, (g, e) in enumerate(zip(ev.losses, losses)):
        value = _loss(g)
        if value is None:
            return Verdict.failed(Finding("wrong_type", f"the loss of epoch {epoch} is not one number"))
        if abs(value - e) > tol.atol + tol.rtol * abs(e):
            return Verdict.failed(Finding("wrong_losses", f"the loss of epoch {epoch} is {value:.8g}, expected "
                                          f"{e:.8g} (the reference run: {shown})"))
    return Verdict.passed(f"the {len(losses)} losses match the reference run ({losses[0]:.6g} ... {losses[-1]:.6g})")


@kind_check("training", "parameters")
def parameters(ctx: CheckContext) -> Verdict:
    ev = run(ctx)
    if isinstance(ev, Fault):
        return _fault(ev)
    spec = ctx.exercise.spec
    _, _, final = replay(ctx.runner.seed, spec.epochs, spec.lr)
    want = _params(ctx, final)
    got = _match_leaves(ev.params, want) if spec.loop == "haiku_optax" else ev.params
    if len(got) < 2:
        return Verdict.failed(Finding("wrong_count", "the final parameters did not come back (W and b)"))
    for name, g, w in zip(("W", "b"), got, want):
        finding = diagnose_output(g, w.to(g.dtype) if isinstance(g, torch.Tensor) else w, _tolerance(ctx))
        if finding:
            return Verdict.failed(finding, f"{name} after {spec.epochs} epochs: ")
    return Verdict.passed()
