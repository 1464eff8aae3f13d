"""A starter file for a rubric: one stub per exercise, ready to be filled in and checked.

Each stub has the names and signatures gradegrad looks for, a docstring with the math and
`raise NotImplementedError` bodies, so the file imports cleanly and, untouched, scores 0.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from gradegrad.catalog import Exercise, Rubric
from gradegrad.discovery import normalize
from gradegrad.kinds.source import EVALUATE_CHAIN, imports, stub


def _header(rubric: Rubric, rubric_arg: str, filename: str, exercises: list[Exercise]) -> str:
    listed = ", ".join(ex.id for ex in exercises)
    return (f'"""Starter file for {rubric.title} (rubric {rubric.name}).\n\n'
            "Replace every `raise NotImplementedError` with your code, then check your work with\n\n"
            f"    gradegrad check {filename} --rubric {rubric_arg}\n\n"
            f"Exercises: {listed}.\n"
            '"""\n')


def starter(rubric: Rubric, catalog: Mapping[str, Exercise], rubric_arg: str | None = None,
            filename: str = "my_answers.py") -> str:
    """The Python source of the starter file for `rubric` (`rubric_arg`: how to name it to `check`)."""
    exercises = _distinct([catalog[it.exercise] for it in rubric.items])
    code = [EVALUATE_CHAIN] if any(ex.kind == "chain" for ex in exercises) else []
    code.extend(stub(ex) for ex in exercises)
    return (_header(rubric, rubric_arg or rubric.name, filename, exercises) + "\n" + imports(exercises)
            + "\n\n" + "\n\n".join(code))


def _distinct(exercises: list[Exercise]) -> list[Exercise]:
    """Each stub under a name no earlier stub took: an exercise whose class name is taken gets its
    first free alias (seed 003's Module LeakyReLU, then the Function as LeakyReLU_Fun)."""
    used: set[str] = set()
    out = []
    for ex in exercises:
        name = next((n for n in ex.names if normalize(n) not in used), ex.class_name)
        used.add(normalize(name))
        out.append(ex if name == ex.class_name else replace(ex, class_name=name))
    return out
