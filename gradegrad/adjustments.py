"""Manual adjustments (`--adjustments adjustments.csv`): a TA's points on top of the grader's.

Columns: `student` (a submission's name, or with a roster a student's id, email or email's local
part), `exercise` (an exercise id of the rubric, or empty for the whole submission), `points`
(added; negative for a deduction) and `comment` (shown to the student). They are applied after
grading, to every output; the cache keeps the grader's own reports, so they survive a regrade.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping

from gradegrad.errors import ConfigError
from gradegrad.report import Adjustment, Report
from gradegrad.roster import RosterMatch, lookup, read_spreadsheet, spreadsheet_rows

COLUMNS = ("student", "exercise", "points", "comment")


@dataclass(frozen=True)
class AdjustmentRow:
    """One line of the file, before it is matched to a submission."""

    line: int
    student: str
    adjustment: Adjustment


@dataclass(frozen=True)
class Applied:
    """Adjustments by submission name, and those for students of the roster without a submission."""

    by_submission: Mapping[str, tuple[Adjustment, ...]]
    not_applied: tuple[tuple[str, str], ...] = ()  # (student, why)


def _points(origin: str, line: int, text: str) -> float:
    if "," in text and "." not in text:
        text = text.replace(",", ".", 1)  # a decimal comma (1,5), as a spreadsheet in many locales writes it
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{origin}:{line}: points: expected a number such as 2 or -1.5, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{origin}:{line}: points: expected a finite number, got {text!r}")
    return value


def parse_adjustments(text: str, exercises: Iterable[str], origin: str = "adjustments.csv") -> tuple[AdjustmentRow, ...]:
    """The rows of the file; an unknown column, exercise or a bad number names the file and line."""
    known = tuple(exercises)
    rows = spreadsheet_rows(text)
    header = [h.strip().lower() for h in next(rows, [])]
    missing = [c for c in ("student", "points") if c not in header]
    if missing:
        raise ConfigError(f"{origin}:1: missing column {missing[0]!r} (columns: {', '.join(COLUMNS)})")
    where = {c: header.index(c) for c in COLUMNS if c in header}
    out = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cell = {c: (row[i].strip() if i < len(row) else "") for c, i in where.items()}
        if not cell["student"]:
            raise ConfigError(f"{origin}:{line}: student: empty")
        exercise = cell.get("exercise") or None
        if exercise is not None and exercise not in known:
            close = difflib.get_close_matches(exercise, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{origin}:{line}: exercise: {exercise!r} is not graded by this rubric "
                              f"({hint}its exercises: {', '.join(known)}; empty for the whole submission)")
        adjustment = Adjustment(exercise, _points(origin, line, cell["points"]), cell.get("comment", ""))
        out.append(AdjustmentRow(line, cell["student"], adjustment))
    return tuple(out)


def read_adjustments(path: Path, exercises: Iterable[str]) -> tuple[AdjustmentRow, ...]:
    return parse_adjustments(read_spreadsheet(path, "the adjustments file"), exercises, str(path))


def assign(rows: Iterable[AdjustmentRow], submissions: Iterable[str], roster: RosterMatch | None,
           origin: str = "adjustments.csv") -> Applied:
    """Match each row to a submission: by its name, else (with a roster) through the student."""
    names = {n.casefold(): n for n in submissions}
    by: dict[str, list[Adjustment]] = {}
    not_applied: list[tuple[str, str]] = []
    for row in rows:
        name = names.get(row.student.casefold())
        if name is None and roster is not None:
            student = lookup(roster.students, row.student)
            if student is not None:
                mine = roster.submissions_of(student)
                if len(mine) != 1:
                    why = "no submission" if not mine else f"several submissions ({', '.join(mine)})"
                    not_applied.append((row.student, why))
                    continue
                name = mine[0]
        if name is None:
            close = difflib.get_close_matches(row.student, list(names.values()), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{origin}:{row.line}: student: {row.student!r} is neither a submission nor a "
                              f"student of the roster{hint}")
        by.setdefault(name, []).append(row.adjustment)
    return Applied({k: tuple(v) for k, v in by.items()}, tuple(not_applied))


def apply(report: Report, adjustments: tuple[Adjustment, ...]) -> Report:
    """The report with the adjustments added to its exercises' scores and its total."""
    if not adjustments:
        return report
    extra: dict[str, float] = {}
    for a in adjustments:
        if a.exercise is not None:
            extra[a.exercise] = extra.get(a.exercise, 0.0) + a.points
    exercises = tuple(replace(e, score=e.score + extra[e.id]) if e.id in extra else e for e in report.exercises)
    return replace(report, exercises=exercises, score=report.score + sum(a.points for a in adjustments),
                   adjustments=report.adjustments + adjustments)
