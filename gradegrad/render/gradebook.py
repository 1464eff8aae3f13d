"""Write a batch's outputs into `--out`: grades.csv, grades.json, feedback/, report.html, and
with a roster canvas.csv and moodle.csv, with --gradescope gradescope/.

Every file is written atomically, by this (the parent) process, after the children are gone.
"""

from __future__ import annotations

import json
from pathlib import Path

from gradegrad.course import Gradebook
from gradegrad.render.csv_report import ROSTER_COLUMNS, to_csv
from gradegrad.render.files import make_folder, write_text_atomic
from gradegrad.render.gradescope import Visibility, to_gradescope_json
from gradegrad.render.html_report import gradebook_page
from gradegrad.render.lms import to_canvas, to_moodle
from gradegrad.render.markdown import to_markdown
from gradegrad.stats import summarize


def grades_json(book: Gradebook) -> str:
    """Every student's full report (the `check --json` schema), in a list."""
    return json.dumps([g.report.to_dict() for g in book.batch.graded], indent=2, allow_nan=False, default=str) + "\n"


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
                          book.maximum, people, columns, roster_notes(book))


def write_gradebook(book: Gradebook, out: Path, gradescope: bool = False,
                    visibility: Visibility | None = None) -> list[Path]:
    """Write every output; returns what was written, for the summary."""
    result = book.batch
    make_folder(out)
    write_text_atomic(out / "grades.csv", to_csv(result, book.roster, book.maximum), bom=True)
    write_text_atomic(out / "grades.json", grades_json(book))
    write_text_atomic(out / "report.html", html_report(book))
    feedback = make_folder(out / "feedback")
    for g in result.graded:
        write_text_atomic(feedback / f"{g.name}.md", to_markdown(g.report, g.name))
    written = [out / "grades.csv", out / "grades.json", out / "report.html", feedback]
    if book.roster is not None:
        write_text_atomic(out / "canvas.csv", to_canvas(book), bom=True)
        write_text_atomic(out / "moodle.csv", to_moodle(book), bom=True)
        written += [out / "canvas.csv", out / "moodle.csv"]
    if gradescope:
        root = make_folder(out / "gradescope")
        for g in result.graded:
            write_text_atomic(make_folder(root / g.name) / "results.json",
                              to_gradescope_json(g.report, g.name, visibility))
        written.append(root)
    return written
