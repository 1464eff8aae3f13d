"""`grades.csv`: one row per student, ready for a spreadsheet (written UTF-8 with a BOM for Excel).

Columns: `name` (the submission), with `--roster` the student's `id`, `student`, `email` and
`section`, then `total`, `max`, one column per exercise, with adjustments an `adjustments` column
(their sum, already in `total`), `status` and `detail`. With a roster, students without a
submission get a row with status `absent`, and submissions that fit no student keep their row
with the student's columns empty.
"""

from __future__ import annotations

import csv
import io

from gradegrad.batch import BatchResult, Graded
from gradegrad.render.text import one_line
from gradegrad.roster import RosterMatch, Student

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas
ROSTER_COLUMNS = ("id", "student", "email", "section")


def cell(text: str) -> str:
    """Text a spreadsheet shows as text, never runs (a file named `=HYPERLINK(…).py`)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _points(x: float) -> str:
    return f"{x:g}"


def _detail(g: Graded) -> str:
    problems = g.report.load_problems
    text = g.report.error or (f"{problems[0].where}: {problems[0].message}" if problems else "")
    more = f" (and {len(problems) - 1} more)" if not g.report.error and len(problems) > 1 else ""
    return one_line(text.split("\n")[0], 300) + more


def _adjusted(result: BatchResult) -> bool:
    return any(g.report.adjustments for g in result.graded)


def header(result: BatchResult, roster: RosterMatch | None = None) -> list[str]:
    return ["name", *(ROSTER_COLUMNS if roster else ()), "total", "max", *result.exercises,
            *(["adjustments"] if _adjusted(result) else []), "status", "detail"]


def _person(student: Student | None) -> list[str]:
    if student is None:
        return ["", "", "", ""]
    return [student.id, cell(student.name), student.email, cell(student.section)]


def row(g: Graded, exercises: tuple[str, ...], roster: RosterMatch | None = None, adjusted: bool = False) -> list[str]:
    scores = {e.id: _points(e.score) for e in g.report.exercises}
    person = _person(roster.student_of(g.name)) if roster else []
    extra = [_points(sum(a.points for a in g.report.adjustments))] if adjusted else []
    return [cell(g.name), *person, _points(g.report.score), _points(g.report.max_score),
            *(scores.get(ex, "0") for ex in exercises), *extra, g.status, cell(_detail(g))]


def absent_row(student: Student, result: BatchResult, maximum: float) -> list[str]:
    return ["", *_person(student), "", _points(maximum), *("" for _ in result.exercises),
            *([""] if _adjusted(result) else []), "absent", "no submission"]


def _row_or_error(g: Graded, exercises: tuple[str, ...], roster: RosterMatch | None, adjusted: bool) -> list[str]:
    """The student's row; if it cannot be written, a row that says so (the others are written)."""
    try:
        return row(g, exercises, roster, adjusted)
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        return [cell(g.name), *(["", "", "", ""] if roster else []), "", "", *("" for _ in exercises),
                *([""] if adjusted else []), "error",
                f"gradegrad could not write this row ({type(exc).__name__}); please report it"]


def to_csv(result: BatchResult, roster: RosterMatch | None = None, maximum: float | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(result, roster))
    adjusted = _adjusted(result)
    for g in result.graded:
        writer.writerow(_row_or_error(g, result.exercises, roster, adjusted))
    for student in roster.absent if roster else ():
        writer.writerow(absent_row(student, result, maximum or 0.0))
    return buffer.getvalue()
