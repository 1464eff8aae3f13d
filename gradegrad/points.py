"""What a rubric's checks are worth for an exercise on a device: the one place maxima come from.

A check counts when it applies to the exercise (`registry.applies`: no `stability` without a
stability case, ...) and runs on the device (`registry.skipped_on`: `device` is skipped on cpu,
`efficiency` on a GPU, and each then counts 0 of 0). `list`, `show`, grading (`check`, `grade`, `gradescope`) and so every writer take
their maxima from here, so that they agree for the same rubric and device.
"""

from __future__ import annotations

from typing import Mapping

from gradegrad.catalog import Exercise, Rubric, RubricItem
from gradegrad.registry import applies, skipped_on
from gradegrad.errors import UsageError

LISTING_DEVICES = ("cpu", "cuda", "auto")


def applicable(ex: Exercise, item: RubricItem) -> tuple[tuple[str, float], ...]:
    """The rubric's checks that mean something for this exercise, with their points."""
    return tuple((cid, p) for cid, p in item.points if applies(cid, ex))


def counted(ex: Exercise, item: RubricItem, device: str) -> tuple[tuple[str, float], ...]:
    """The checks that count on `device`: they apply and are not skipped there."""
    return tuple((cid, p) for cid, p in applicable(ex, item) if not skipped_on(cid, device))


def skipped_here(ex: Exercise, item: RubricItem, device: str) -> tuple[tuple[str, float, str], ...]:
    """(check, points, why) for the checks that apply but do not run on `device`."""
    return tuple((cid, p, skipped_on(cid, device) or "") for cid, p in applicable(ex, item)
                 if skipped_on(cid, device))


def maximum(ex: Exercise, item: RubricItem, device: str) -> float:
    """An exercise's maximum on `device`: what its report's `max_score` is."""
    return sum(p for _, p in counted(ex, item, device))


def rubric_maximum(rubric: Rubric, catalog: Mapping[str, Exercise], device: str) -> float:
    """A rubric's maximum on `device`: every student's `max` in the gradebook."""
    return sum(maximum(catalog[it.exercise], it, device) for it in rubric.items)


def listing_device(name: str) -> str:
    """`--device` of `list` and `show`: cpu or cuda (no GPU needed to look), auto for this machine's."""
    if name not in LISTING_DEVICES:
        raise UsageError(f"unknown device {name!r}: use cpu, cuda or auto")
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
