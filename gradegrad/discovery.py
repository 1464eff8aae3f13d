"""Match the classes a submission defines to the exercises of the catalog.

Matching ignores case and underscores and accepts each manifest's aliases; a near miss (a typo,
or a longer name that contains the exercise's) earns a "did you mean" hint but no points.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence

from gradegrad.catalog import Exercise
from gradegrad.sandbox.remote import ClassInfo


def normalize(name: str) -> str:
    return name.replace("_", "").lower()


@dataclass(frozen=True)
class Match:
    info: ClassInfo | None  # the student's class, None when missing
    hint: str = ""


def _near_misses(ex: Exercise, classes: Iterable[ClassInfo]) -> list[str]:
    wanted = [normalize(n) for n in ex.names]
    close = []
    for info in classes:
        name = normalize(info.name)
        similar = difflib.get_close_matches(name, wanted, n=1, cutoff=0.8)
        contains = any(len(w) >= 3 and w in name for w in wanted)
        if similar or contains:
            close.append(info.name)
    return close


def match_exercise(ex: Exercise, classes: Sequence[ClassInfo], taken: set[str]) -> Match:
    """The student's class for `ex`: the exact class name first, then the aliases, in order."""
    by_norm: dict[str, ClassInfo] = {}
    for info in classes:
        by_norm.setdefault(normalize(info.name), info)
    for name in ex.names:
        info = by_norm.get(normalize(name))
        if info is not None:
            return Match(info)
    misses = _near_misses(ex, [c for c in classes if c.name not in taken])
    if misses:
        return Match(None, f"did you mean {misses[0]}? rename it {ex.class_name}")
    return Match(None)


def match_all(exercises: Sequence[Exercise], classes: Sequence[ClassInfo]) -> dict[str, Match]:
    """One Match per exercise id; classes matched exactly are never offered as near misses."""
    exact: dict[str, Match] = {}
    for ex in exercises:
        m = match_exercise(ex, classes, set())
        if m.info is not None:
            exact[ex.id] = m
    taken = {m.info.name for m in exact.values()}
    return {ex.id: exact.get(ex.id) or match_exercise(ex, classes, taken) for ex in exercises}
