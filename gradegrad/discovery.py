"""Match the classes a submission defines to the exercises of the catalog.

Matching ignores case and underscores and accepts each manifest's aliases; a near miss (a typo,
or the exercise's name with a usual prefix or suffix such as `My…` or `…Function`) earns a "did
you mean" hint but no points. A class is offered as a near miss for one exercise at most, the one
whose name it is closest to.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from gradegrad.catalog import Exercise
from gradegrad.sandbox.remote import ClassInfo

# what students put around an exercise's name (normalised: lower case, no underscores)
PREFIXES = ("my", "custom", "manual", "autograd", "torch", "simple")
SUFFIXES = ("function", "func", "fun", "fn", "autograd", "op", "operation", "grad", "module", "layer", "loss",
            "impl", "implementation", "class", "custom", "manual", "product")
_BEFORE = re.compile(f"(?:{'|'.join(PREFIXES)})*")
_AFTER = re.compile(rf"(?:{'|'.join(SUFFIXES)}|v?\d+)*")


def normalize(name: str) -> str:
    return name.replace("_", "").lower()


@dataclass(frozen=True)
class Match:
    info: ClassInfo | None  # the student's class, None when missing
    hint: str = ""
    closeness: float = 0.0  # of a near miss (the hint's class) to the exercise's names, 0..1


def affixed(name: str, wanted: Iterable[str]) -> bool:
    """`name` (normalised) is one of `wanted` with only usual prefixes and suffixes around it."""
    wanted = set(wanted)
    for start in range(len(name)):
        for core in wanted:
            if name.startswith(core, start) and _only_affixes(name[:start], name[start + len(core):]):
                return True
    return False


def _only_affixes(before: str, after: str) -> bool:
    return _BEFORE.fullmatch(before) is not None and _AFTER.fullmatch(after) is not None


def closeness(ex: Exercise, info: ClassInfo) -> float:
    """How near a class's name is to an exercise's names (1: the same), 0 when it is no near miss."""
    if len(info.name) <= 64:  # the usual names: a batch asks the same pairs once per submission
        return _cached_closeness(tuple(ex.names), info.name)
    return _closeness(tuple(ex.names), info.name)


def _closeness(names: tuple[str, ...], class_name: str) -> float:
    wanted = [normalize(n) for n in names]
    name = normalize(class_name)
    ratio = max(difflib.SequenceMatcher(None, name, w).ratio() for w in wanted)
    if any(_typo(name, w) for w in wanted):
        return ratio
    return 0.5 + ratio / 2 if any(len(w) >= 3 for w in wanted) and affixed(name, wanted) else 0.0


_cached_closeness = functools.lru_cache(maxsize=4096)(_closeness)


def _typo(name: str, wanted: str) -> bool:
    """A misspelling of `wanted` (`sigmod`), not another word around it: `dotproduct` holds `product` (an
    alias of mul), yet it is no typo of it."""
    longest = max(len(name), len(wanted))
    return (abs(len(name) - len(wanted)) <= max(2, longest // 5)
            and difflib.SequenceMatcher(None, name, wanted).ratio() >= 0.8)


def _near_miss(ex: Exercise, classes: Iterable[ClassInfo]) -> Match:
    scored = [(closeness(ex, info), i, info) for i, info in enumerate(classes)]
    best = max((s for s in scored if s[0] > 0), default=None, key=lambda s: (s[0], -s[1]))
    if best is None:
        return Match(None)
    return Match(None, f"did you mean {best[2].name}? rename it {ex.class_name}", best[0])


def exact(ex: Exercise, classes: Sequence[ClassInfo]) -> ClassInfo | None:
    """The student's class named as the exercise: the class name first, then the aliases, in order."""
    by_norm: dict[str, ClassInfo] = {}
    for info in classes:
        by_norm.setdefault(normalize(info.name), info)
    return next((by_norm[normalize(n)] for n in ex.names if normalize(n) in by_norm), None)


def match_exercise(ex: Exercise, classes: Sequence[ClassInfo], taken: set[str]) -> Match:
    """The student's class for `ex`, else the nearest miss among the classes not `taken`."""
    info = exact(ex, classes)
    if info is not None:
        return Match(info)
    return _near_miss(ex, [c for c in classes if c.name not in taken])


def match_all(exercises: Sequence[Exercise], classes: Sequence[ClassInfo]) -> dict[str, Match]:
    """One Match per exercise id; classes matched exactly are never offered as near misses, and a
    near miss is offered only to the exercise it is closest to (`MultiplyAdd` is not both Mul and Add)."""
    exact_matches = {ex.id: Match(info) for ex in exercises if (info := exact(ex, classes)) is not None}
    taken = {m.info.name for m in exact_matches.values()}
    result = {ex.id: exact_matches.get(ex.id) or match_exercise(ex, classes, taken) for ex in exercises}
    best: dict[str, tuple[float, str]] = {}
    for ex_id, m in result.items():
        name = _hinted(m)
        if name and m.closeness > best.get(name, (-1.0, ""))[0]:
            best[name] = (m.closeness, ex_id)
    return {ex_id: (Match(None) if _hinted(m) and best[_hinted(m)][1] != ex_id else m)
            for ex_id, m in result.items()}


def _hinted(m: Match) -> str:
    return m.hint.split("did you mean ", 1)[1].split("?", 1)[0] if m.info is None and m.hint else ""


def prefer_fitting(ex: Exercise, found: Match, fitting: Sequence[ClassInfo], kind_noun: str,
                   describe: str) -> Match:
    """When the class named as the exercise is not of its kind (`Linear` an nn.Module), the one class
    of the right kind with the exercise's name and a usual affix (`LinearFunction`) is graded, with a
    note saying why."""
    if found.info is None:
        return found
    wanted = [normalize(n) for n in ex.names]
    candidates = [c for c in fitting if c.name != found.info.name and affixed(normalize(c.name), wanted)]
    if len(candidates) != 1:
        return found
    chosen = candidates[0]
    return replace(found, info=chosen, hint=f"graded {chosen.name}: {found.info.name} is {describe}, and the "
                   f"exercise asks for the {kind_noun}")
