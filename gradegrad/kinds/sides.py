"""The child side of the newer exercise kinds, behind one request: `{"op": "kind", "side": ...}`.

Runs in the evaluator (the child), imported on request. Each side runs the student's code and
returns facts (tensors as raw bytes, JSON scalars, names) for the grader to judge; none of them
decides anything. Modules that need an optional package (JAX, torchdiffeq) import it here,
lazily: the zygote and the grader never import JAX (forking after JAX has started its threads is
unsafe), so only an evaluator that answers a JAX request ever starts it.
"""

from __future__ import annotations

from typing import Any, Callable

SIDES = {  # side -> "module:function", each called as fn(evaluator, message, tensors) -> reply header
    "retained": "gradegrad.kinds.ode_side:retained",
    "jacobian": "gradegrad.kinds.jacobian_side:jacobian",
    "train": "gradegrad.kinds.training_side:train",
    "jax_vjp": "gradegrad.kinds.jax_side:vjp",
    "ode_field": "gradegrad.kinds.ode_side:field",
}


def answer(evaluator: Any, msg: Any, tensors: list) -> dict:
    """Answer a kind's request with the side it names."""
    side = msg.header.get("side")
    if side not in SIDES:
        raise ValueError(f"unknown kind request {str(side)[:50]!r}")
    module, name = SIDES[side].split(":")
    fn: Callable[..., dict] = getattr(__import__(module, fromlist=[name]), name)
    return fn(evaluator, msg, tensors)
