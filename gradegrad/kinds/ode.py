"""Kind `ode`: a Function that integrates dy/dt = f(y; θ) forward and solves the adjoint ODE backward.

Graded as a function (`forward`, `backward` against the reference, backprop through the same RK4
unrolled in plain torch or a closed form such as `matrix_exp`; `gradcheck`; ...), plus the lesson
of the adjoint, `efficiency`: what forward keeps for backward must not grow with the number of
steps. The child reports, at each step count of the manifest's `memory` block, the bytes of the
storages its output's graph holds (the Function's saved tensors and ctx attributes, and any graph
they lead to); the grader fits their growth. A true adjoint keeps y(T) and θ (constant); a
Function that saves every step, or autograd through the unrolled loop, grows linearly.
"""

from __future__ import annotations

import math

import torch

from gradegrad.checks import CheckContext, Verdict
from gradegrad.diagnosis import Finding
from gradegrad.evaluation import Fault
from gradegrad.registry import kind_check
from gradegrad.kinds.functionlike import share_function_checks
from gradegrad.sandbox.protocol import encode_value

GROWTH_LIMIT = 0.5  # exponent k of bytes ~ steps^k above which the memory grows with the steps
KEPT_FACTOR = 2.0  # ... and the bytes at the largest count exceed the smallest's this many times

share_function_checks("ode")


def _sized_args(ctx: CheckContext, n: int) -> list:
    name, _ = ctx.exercise.spec.memory
    case = ctx.exercise.cases[0]
    args = ctx.runner.inputs(case)
    return [n if spec.name == name else a for spec, a in zip(case.inputs, args)]


def _measure(ctx: CheckContext) -> list[int | None] | Fault:
    runner, (_, sizes) = ctx.runner, ctx.exercise.spec.memory
    tensors: list[torch.Tensor] = []
    header = {"op": "kind", "side": "retained", "class": ctx.info.name,
              "sizes": encode_value([_sized_args(ctx, n) for n in sizes], tensors),
              "requires_grad": [s.differentiable for s in ctx.exercise.inputs]}
    reply = runner.guarded(lambda: runner.sub.ask(header, tensors, timeout=runner.remaining()), "efficiency")
    if isinstance(reply, Fault):
        return reply
    counts = reply.header.get("bytes")
    if not isinstance(counts, list) or len(counts) != len(sizes):
        return Fault("protocol", "the evaluator sent an invalid memory reply")
    return [c if isinstance(c, int) and not isinstance(c, bool) and c >= 0 else None for c in counts]


def judge_memory(sizes: tuple[int, ...], counts: list[int], name: str) -> Finding | None:
    """None when the bytes kept for backward do not grow with the steps (pure: unit-tested)."""
    (n1, b1), (n2, b2) = (sizes[-2], counts[-2]), (sizes[-1], counts[-1])
    k = math.log(max(b2, 1) / max(b1, 1)) / math.log(n2 / n1)
    if k <= GROWTH_LIMIT or counts[-1] <= KEPT_FACTOR * max(counts[0], 1):
        return None
    return Finding("memory_grows_with_steps",
                   f"what forward keeps for backward grows with the number of steps (like {name}^{k:.2f}: "
                   f"{counts[0]} bytes at {name} = {sizes[0]}, {counts[-1]} at {sizes[-1]}): an adjoint keeps "
                   "y(T) and the parameters only, and integrates y back in time with the adjoint state "
                   "during backward, instead of saving every step or differentiating through the loop")


@kind_check("ode", "efficiency", applies=lambda ex: ex.spec.memory is not None)
def efficiency(ctx: CheckContext) -> Verdict:
    if ctx.exercise.spec.memory is None:
        return Verdict("skipped", "the manifest has no memory block")
    name, sizes = ctx.exercise.spec.memory
    counts = _measure(ctx)
    if isinstance(counts, Fault):
        return Verdict.fault(counts)
    if any(c is None for c in counts):
        return Verdict.failed(Finding("detached", "the output of forward has no grad_fn: nothing to measure"))
    finding = judge_memory(sizes, counts, name)
    if finding:
        return Verdict.failed(finding)
    return Verdict.passed(f"forward keeps {counts[0]} to {counts[-1]} bytes for backward from {name} = "
                          f"{sizes[0]} to {sizes[-1]}")
