"""The checks of an autograd Function exercise (kind `function`), one module each.

A check reads evaluations from the exercise's `Runner` and compares them with references computed
here; it returns a `Verdict` (gradegrad.verdict). Each module registers its checks, with the rule
saying which exercises they apply to, in `gradegrad.registry`; importing this package registers
them all. Points are assigned by `grading`, not here.
"""

from __future__ import annotations

from typing import Callable

from gradegrad.registry import Applies, Reads, applies, checks_for, register, skipped_on
from gradegrad.verdict import Check, CheckContext, Verdict

__all__ = ["Check", "CheckContext", "Verdict", "applies", "check", "registered", "skipped_on"]


def check(check_id: str, applies: Applies | None = None, reads: Reads | None = None) -> Callable[[Check], Check]:
    """Register a check of kind `function` under an id that rubrics use."""
    return register(check_id, "function", applies, reads)


def registered(kind: str = "function") -> dict[str, Check]:
    """Every check of an exercise kind, in the order of CHECK_IDS."""
    return checks_for(kind)


# importing the modules registers their checks
from gradegrad.checks import authorship, efficiency, found, grad_mask, gradcheck, higher_order, hygiene, values  # noqa: E402,F401
