"""Kinds whose answer is a `torch.autograd.Function` (`ode`, `deq`): the function kind's checks,
reused under the kind's name, plus the kind's own (registered in its module)."""

from __future__ import annotations

from gradegrad.kinds import kind_check

SHARED = ("found", "forward", "backward", "gradcheck", "needs_input_grad", "float32", "inputs_unchanged",
          "hand_written")


def share_function_checks(kind: str, ids: tuple[str, ...] = SHARED) -> None:
    """Register the function kind's checks `ids` for `kind` (a module of the kind may override one)."""
    from gradegrad.checks import registered

    checks = registered("function")
    for cid in ids:
        kind_check(kind, cid)(checks[cid])
