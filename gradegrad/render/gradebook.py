"""Write a batch's outputs into `--out`: grades.csv, grades.json, feedback/, gradescope/.

Every file is written atomically, by this (the parent) process, after the children are gone. A
student's report that a writer cannot render becomes a line that says so, in that student's file
only: every other file and student is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from gradegrad.batch import BatchResult, Graded
from gradegrad.hygiene import one_line
from gradegrad.render.csv_report import to_csv
from gradegrad.render.files import make_folder, write_text_atomic
from gradegrad.render.gradescope import to_gradescope_json
from gradegrad.render.markdown import to_markdown


def _failed(what: str, exc: Exception) -> str:
    return f"gradegrad could not write {what} ({type(exc).__name__}: {one_line(exc, 300)}); please report it"


def _report_json(g: Graded) -> str:
    """One student's report as JSON; a report no writer can hold becomes an error entry, alone."""
    try:
        return json.dumps(g.report.to_dict(), indent=2, allow_nan=False, default=str)
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        return json.dumps({"submission": g.report.submission, "name": g.name, "error": _failed("this report", exc)},
                          indent=2)


def grades_json(result: BatchResult) -> str:
    """Every student's full report (the `check --json` schema), in a list."""
    return "[\n" + ",\n".join(_report_json(g) for g in result.graded) + "\n]\n"


def _student_file(path: Path, render: Callable[[], str], what: str) -> None:
    """Write one student's file; if rendering it fails, the file says so and the batch goes on."""
    try:
        text = render()
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        text = _failed(what, exc) + "\n"
    write_text_atomic(path, text)


def write_gradebook(result: BatchResult, out: Path, gradescope: bool = False) -> list[Path]:
    """Write every output; returns what was written, for the summary."""
    make_folder(out)
    write_text_atomic(out / "grades.csv", to_csv(result))
    write_text_atomic(out / "grades.json", grades_json(result))
    feedback = make_folder(out / "feedback")
    for g in result.graded:
        _student_file(feedback / f"{g.name}.md", lambda g=g: to_markdown(g.report, g.name), "this feedback")
    written = [out / "grades.csv", out / "grades.json", feedback]
    if gradescope:
        root = make_folder(out / "gradescope")
        for g in result.graded:
            _student_file(make_folder(root / g.name) / "results.json",
                          lambda g=g: to_gradescope_json(g.report, g.name), "these results")
        written.append(root)
    return written
