"""Write a batch's outputs into `--out`: grades.csv, grades.json, feedback/, report.html, and
with a roster canvas.csv and moodle.csv, with --gradescope gradescope/.

Every file is written atomically, by this (the parent) process, after the children are gone. A
student's report that a writer cannot render becomes a line that says so, in that student's file
only: every other file and student is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from gradegrad.batch import Graded
from gradegrad.course import Gradebook
from gradegrad.hygiene import one_line
from gradegrad.render.csv_report import ROSTER_COLUMNS, to_csv
from gradegrad.render.files import file_name, make_folder, write_text_atomic
from gradegrad.render.gradescope import Visibility, to_gradescope_json
from gradegrad.render.html_report import gradebook_page
from gradegrad.render.lms import to_canvas, to_moodle
from gradegrad.render.markdown import to_markdown
from gradegrad.stats import summarize


def _failed(what: str, exc: Exception) -> str:
    return f"gradegrad could not write {what} ({type(exc).__name__}: {one_line(exc, 300)}); please report it"


def _report_json(g: Graded) -> str:
    """One student's report as JSON on one line (`Report.json_line`, as the cache has it; indenting
    would run json's Python encoder, some 5 ms a report); a report no writer can hold becomes an
    error entry, alone."""
    try:
        return g.report.json_line
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        return json.dumps({"submission": g.report.submission, "name": g.name, "error": _failed("this report", exc)})


def grades_json(book: Gradebook) -> str:
    """Every student's full report (the `check --json` schema), in a list, one student a line."""
    return "[\n" + ",\n".join(_report_json(g) for g in book.batch.graded) + "\n]\n"


def _student_file(path: Path, render: Callable[[], str], what: str) -> None:
    """Write one student's file; if rendering it fails, the file says so and the batch goes on."""
    try:
        text = render()
    except Exception as exc:  # noqa: BLE001 - one student's report never costs the gradebook
        text = _failed(what, exc) + "\n"
    write_text_atomic(path, text)


def _batch_file(path: Path, render: Callable[[], str], what: str, bom: bool = False) -> None:
    """Write one file of the whole batch; if rendering it fails, the file says so and the other files
    are still written."""
    try:
        text = render()
    except Exception as exc:  # noqa: BLE001 - one writer's failure never costs the other files
        text = _failed(what, exc) + "\n"
    write_text_atomic(path, text, bom=bom)


def roster_notes(book: Gradebook) -> list[str]:
    """What did not fit between the roster and the submissions, in words (the summary shows them too)."""
    notes = []
    r = book.roster
    if r is not None:
        if r.unmatched:
            notes.append(f"not on the roster (graded, not exported): {', '.join(r.unmatched)}")
        for name, ids in r.ambiguous:
            notes.append(f"{name} fits several students of the roster ({', '.join(ids)}): not exported")
        for sid, names in r.several:
            notes.append(f"student {sid} has several submissions ({', '.join(names)}): not exported")
        if r.absent:
            notes.append(f"no submission from: {', '.join(s.id for s in r.absent)}")
    notes += [f"adjustment for {who} not applied: {why}" for who, why in book.not_applied]
    return notes


def folder_notes(book: Gradebook) -> list[str]:
    """What of the folder was not graded, and who handed in the same code: the terminal's summary says
    it, and a TA who reads only the page must see it too (a duplicate may be a student's real work)."""
    result = book.batch
    notes = [f"not graded: {s.name}: {s.reason}" for s in result.skipped]
    notes += [f"identical submissions: {', '.join(names)}" for names in result.identical]
    return notes


def html_report(book: Gradebook) -> str:
    result = book.batch
    people, columns = {}, ()
    if book.roster is not None:
        columns = ROSTER_COLUMNS
        for g in result.graded:
            s = book.roster.student_of(g.name)
            people[g.name] = (s.id, s.name, s.email, s.section) if s else ("", "", "", "")
    meta = (f"rubric {result.rubric} · folder {result.folder} · {len(result.exercises)} exercise(s) · "
            f"{len(result.graded)} submission(s)")
    return gradebook_page(f"gradegrad gradebook: {book.assignment}", meta, result.graded, summarize(result),
                          book.maximum, people, columns, roster_notes(book) + folder_notes(book))


def write_gradebook(book: Gradebook, out: Path, gradescope: bool = False,
                    visibility: Visibility | None = None) -> list[Path]:
    """Write every output; returns what was written, for the summary."""
    result = book.batch
    make_folder(out)
    _batch_file(out / "grades.csv", lambda: to_csv(result, book.roster, book.maximum), "grades.csv", bom=True)
    _batch_file(out / "grades.json", lambda: grades_json(book), "grades.json")
    _batch_file(out / "report.html", lambda: html_report(book), "report.html")
    feedback = make_folder(out / "feedback")
    for g in result.graded:
        _student_file(feedback / file_name(g.name, ".md"), lambda g=g: to_markdown(g.report, g.name), "this feedback")
    written = [out / "grades.csv", out / "grades.json", out / "report.html", feedback]
    if book.roster is not None:
        _batch_file(out / "canvas.csv", lambda: to_canvas(book), "canvas.csv", bom=True)
        _batch_file(out / "moodle.csv", lambda: to_moodle(book), "moodle.csv", bom=True)
        written += [out / "canvas.csv", out / "moodle.csv"]
    if gradescope:
        root = make_folder(out / "gradescope")
        for g in result.graded:
            _student_file(make_folder(root / file_name(g.name)) / "results.json",
                          lambda g=g: to_gradescope_json(g.report, g.name, visibility), "these results")
        written.append(root)
    return written
