"""`grades.csv`: one row per student, ready for a spreadsheet or an LMS gradebook import."""

from __future__ import annotations

import csv
import io

from gradegrad.batch import BatchResult, Graded

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


def cell(text: str) -> str:
    """Text a spreadsheet shows as text, never runs (a file named `=HYPERLINK(…).py`)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _points(x: float) -> str:
    return f"{x:g}"


def _detail(g: Graded) -> str:
    problems = g.report.load_problems
    text = g.report.error or (f"{problems[0].where}: {problems[0].message}" if problems else "")
    more = f" (and {len(problems) - 1} more)" if not g.report.error and len(problems) > 1 else ""
    return text.split("\n")[0][:300] + more


def header(result: BatchResult) -> list[str]:
    return ["name", "total", "max", *result.exercises, "status", "detail"]


def row(g: Graded, exercises: tuple[str, ...]) -> list[str]:
    scores = {e.id: _points(e.score) for e in g.report.exercises}
    return [cell(g.name), _points(g.report.score), _points(g.report.max_score),
            *(scores.get(ex, "0") for ex in exercises), g.status, cell(_detail(g))]


def _row_or_error(g: Graded, exercises: tuple[str, ...]) -> list[str]:
    """The student's row; if it cannot be written, a row that says so (the others are written)."""
    try:
        return row(g, exercises)
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        return [cell(g.name), "", "", *("" for _ in exercises), "error",
                f"gradegrad could not write this row ({type(exc).__name__}); please report it"]


def to_csv(result: BatchResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(result))
    for g in result.graded:
        writer.writerow(_row_or_error(g, result.exercises))
    return buffer.getvalue()
