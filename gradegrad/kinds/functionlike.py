"""Kinds whose answer is a `torch.autograd.Function` (`ode`, `deq`): the function kind's checks,
reused under the kind's name with their rules, plus the kind's own (registered in its module)."""

from __future__ import annotations

from gradegrad.registry import share

SHARED = ("found", "forward", "backward", "gradcheck", "needs_input_grad", "float32", "inputs_unchanged",
          "hand_written")


def share_function_checks(kind: str, ids: tuple[str, ...] = SHARED) -> None:
    """Register the function kind's checks `ids` for `kind` (a module of the kind may override one)."""
    share(kind, ids)
