"""What `gradegrad list` and `gradegrad show` display about exercises, as data.

The CLI formats it; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gradegrad.catalog import Exercise, Rubric, RubricItem
from gradegrad.points import applicable, maximum, rubric_maximum

CHECK_MEANINGS = {
    "found": "the class (or function) exists and has the right kind",
    "forward": "the output matches the reference (value, shape, dtype) on every case",
    "backward": "each gradient matches the reference's, for a random upstream gradient, on every case",
    "gradcheck": "torch.autograd.gradcheck (float64) passes on the student's own Function",
    "needs_input_grad": "it works when only some inputs require grad",
    "float32": "float32 inputs give float32 results within float32 tolerance",
    "stability": "large-magnitude inputs give finite, correct outputs and gradients",
    "inputs_unchanged": "forward and backward leave the caller's tensors as they were",
    "device": "with --device cuda, outputs and gradients stay on the GPU",
    "hand_written": "backward derives its numbers instead of asking autograd",
    "efficiency": "forward's and backward's memory grow no faster than the reference's",
    "double_backward": "the gradient backward returns can itself be differentiated",
    "jvp": "the jvp staticmethod gives the output's tangent (forward-mode AD)",
    "wraps_function": "the module's output comes from the student's own Function, not built-in ops",
    "training": "a few SGD steps with backward_diff_chain give the reference run's losses",
    "parameters": "a training loop's final parameters match the reference run's",
}


@dataclass(frozen=True)
class Row:
    """One exercise in `gradegrad list`."""

    id: str
    kind: str
    names: str  # "MatVec (MyMatVec, Mv)"
    teaches: str
    points: float | None  # under the rubric; None when the rubric does not grade it


def checks_of(ex: Exercise, item: RubricItem | None) -> list[tuple[str, float]]:
    """The checks a rubric runs on an exercise, with their points (those that apply)."""
    return [] if item is None else list(applicable(ex, item))


def points(ex: Exercise, item: RubricItem | None, device: str | None = None) -> float | None:
    """The exercise's maximum on `device` (as graded there); None: every check that applies."""
    if item is None:
        return None
    return sum(p for _, p in checks_of(ex, item)) if device is None else maximum(ex, item, device)


def names(ex: Exercise) -> str:
    if not ex.class_name:
        return "-"
    return ex.class_name + (f" ({', '.join(ex.aliases)})" if ex.aliases else "")


def rows(catalog: Mapping[str, Exercise], rubric: Rubric, device: str = "cpu") -> list[Row]:
    """Every exercise the rubric names; with the implicit rubric, the whole catalog. Points are the
    maxima grading gives on `device`."""
    items = {it.exercise: it for it in rubric.items}
    ids = list(catalog) if rubric.only_found else [it.exercise for it in rubric.items]
    return [Row(i, catalog[i].kind, names(catalog[i]), catalog[i].teaches,
                points(catalog[i], items.get(i), device)) for i in ids]


@dataclass(frozen=True)
class Total:
    """What `list --rubric` says under its rows: the rubric's maximum on this device and elsewhere."""

    device: str
    points: float
    other_device: str
    other_points: float


def total(catalog: Mapping[str, Exercise], rubric: Rubric, device: str) -> Total | None:
    if rubric.only_found:
        return None
    other = "cuda" if device == "cpu" else "cpu"
    return Total(device, rubric_maximum(rubric, catalog, device), other, rubric_maximum(rubric, catalog, other))


def item_for(rubric: Rubric, ex_id: str) -> RubricItem | None:
    return next((it for it in rubric.items if it.exercise == ex_id), None)

