"""The child side of `jacobian`: call the student's jacobian(f, x) on gradegrad's functions."""

from __future__ import annotations

from typing import Any

import torch

from gradegrad.kinds.jacobian_fns import FUNCTIONS
from gradegrad.sandbox.protocol import encode_value


def jacobian(evaluator: Any, msg: Any, tensors: list) -> dict:
    """jacobian(f, x) for one named function and point x (a leaf that requires grad)."""
    fn = evaluator.find_function(msg.header["function"])
    f, _ = FUNCTIONS[msg.header["f"]]
    x = msg.value(msg.header["x"]).clone().requires_grad_(True)
    out = fn(f, x)
    if isinstance(out, torch.Tensor):
        out = out.detach()
    return {"ok": True, "value": encode_value(out, tensors)}
