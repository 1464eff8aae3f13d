"""Gradebook imports for Canvas and Moodle, from the roster (`grade --roster`): one row per student.

Canvas (Grades > Import, a CSV like its own export): `Student`, `ID` (Canvas's user id: the
roster's `canvas_id`), `SIS User ID` (the roster's `id`), `SIS Login ID` (`login`), `Section`, then
one column for the assignment, headed "Name (assignment id)" as in Canvas's export to update that
assignment (a header Canvas does not know creates a new assignment). A second row
`Points Possible` gives the maximum, as in Canvas's export. Canvas matches students by ID, SIS User
ID or SIS Login ID.

Moodle (Grades > Import > CSV file): `ID number` (the roster's `id`), `Email address`, `Full name`,
the grade item's column (the assignment's name) and `Feedback`; on import, map "ID number" (or
"Email address") to the user field of the same name, the grade column to the grade item and
`Feedback` to its feedback.

Identifiers are written as the roster has them (they must match the LMS's); names and feedback
that a spreadsheet would run as a formula are prefixed with ' (`csv_report.cell`). Files are
UTF-8 with a byte order mark. A student with no submission, or with several, gets an empty grade (the LMS then leaves the
grade as it is: enter 0 or excuse them there); the summary lists them.
"""

from __future__ import annotations

import csv
import io

from gradegrad.course import Gradebook
from gradegrad.render.csv_report import cell, safe_row
from gradegrad.render.text import one_line
from gradegrad.report import Report
from gradegrad.roster import Student

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = ("ID number", "Email address", "Full name")
FEEDBACK_CHARS = 2000


def _points(x: float) -> str:
    return f"{x:g}"


def exported_report(book: Gradebook, student: Student) -> Report | None:
    """The report whose score goes to the LMS for this student: their one submission's, else none."""
    if book.roster is None:
        return None
    mine = book.roster.submissions_of(student)
    if len(mine) != 1:
        return None
    return next(g.report for g in book.batch.graded if g.name == mine[0])


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(safe_row(r) for r in rows)
    return buffer.getvalue()


def to_canvas(book: Gradebook) -> str:
    rows = [[*CANVAS_COLUMNS, book.assignment],
            ["    Points Possible", "", "", "", "", _points(book.maximum)]]
    for s in book.roster.students if book.roster else ():
        report = exported_report(book, s)
        rows.append([cell(s.name or s.id), s.canvas_id, s.id, s.login, cell(s.section),
                     "" if report is None else _points(report.score)])
    return _csv(rows)


def feedback(report: Report) -> str:
    """A few lines for the LMS's feedback field: the total, each exercise not passed, adjustments."""
    parts = [f"gradegrad: {_points(report.score)}/{_points(report.max_score)}"]
    if report.error:
        parts.append(one_line(report.error))
    for ex in report.exercises:
        problem = ex.first_problem
        if ex.status != "passed" and problem is not None:
            code = f" [{problem.diagnosis}]" if problem.diagnosis else ""
            parts.append(f"{ex.id} {_points(ex.score)}/{_points(ex.max_score)}: {problem.id}: "
                         f"{one_line(problem.message, 200)}{code}")
    for a in report.adjustments:
        parts.append(f"adjusted {'+' if a.points >= 0 else ''}{_points(a.points)}"
                     f"{' on ' + a.exercise if a.exercise else ''}: {one_line(a.comment, 200)}")
    text = "; ".join(parts)
    return text if len(text) <= FEEDBACK_CHARS else text[:FEEDBACK_CHARS - 1] + "…"


def to_moodle(book: Gradebook) -> str:
    rows = [[*MOODLE_COLUMNS, book.assignment, "Feedback"]]
    for s in book.roster.students if book.roster else ():
        report = exported_report(book, s)
        rows.append([s.id, s.email, cell(s.name), "" if report is None else _points(report.score),
                     "" if report is None else cell(feedback(report))])
    return _csv(rows)
