"""Per-student variants: each student's own shapes, values and constants, derived from the name.

A rubric with `variants: true` gives every student their own version of its exercises: the
manifest's `variants:` entry that their name picks (another alpha, p or shape), and inputs drawn
from a seed derived from their name. Two students' numbers differ while the exercise stays the
same; the same name always gives the same variant, and the report's notes say which, so a TA can
reproduce it (the same name and `--seed` give the same report).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence, TypeVar

from gradegrad.cases import stable_seed
from gradegrad.catalog import Exercise
from gradegrad.options import Options

T = TypeVar("T")


def normalize(student: str) -> str:
    """'Ada_Lovelace', 'ada lovelace ' and 'ADA-LOVELACE' are the same student."""
    return re.sub(r"[\s_\-.]+", " ", student).strip().lower()


def student_name(path: Path) -> str:
    """The student a submission belongs to when none is given: its file name (ada_lovelace.py)."""
    return Path(path).stem


def variant_seed(seed: int, student: str) -> int:
    """The seed of a student's inputs: the same name and --seed, the same numbers."""
    return stable_seed("variant", seed, normalize(student)) % (1 << 31)


def pick(ex: Exercise, student: str) -> tuple[Exercise, str]:
    """The student's variant of an exercise, and how the report names it."""
    if not ex.variants:
        return ex, ""
    i = stable_seed("variant", ex.id, normalize(student)) % len(ex.variants)
    chosen = ex.variants[i]
    return replace(ex, cases=chosen.cases), f"variant {i + 1}/{len(ex.variants)} ({chosen.label})"


def personalise(pairs: Sequence[tuple[Exercise, T]], student: str,
                options: Options) -> tuple[list[tuple[Exercise, T]], Options, str]:
    """Each exercise's variant for `student`, the options with their seed, and the report's note."""
    seed = variant_seed(options.seed, student)
    chosen = [(pick(ex, student), item) for ex, item in pairs]
    labels = [f"{ex.id}: {label}" for (ex, label), _ in chosen if label]
    note = (f"variant of student '{normalize(student)}' (--seed {options.seed}): inputs seed {seed}"
            + "".join(f"; {label}" for label in labels))
    return [(ex, item) for (ex, _), item in chosen], replace(options, seed=seed), note
