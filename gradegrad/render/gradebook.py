"""Write a batch's outputs into `--out`: grades.csv, grades.json, feedback/, gradescope/.

Every file is written atomically, by this (the parent) process, after the children are gone.
"""

from __future__ import annotations

import json
from pathlib import Path

from gradegrad.batch import BatchResult
from gradegrad.render.csv_report import to_csv
from gradegrad.render.files import make_folder, write_text_atomic
from gradegrad.render.gradescope import to_gradescope_json
from gradegrad.render.markdown import to_markdown


def grades_json(result: BatchResult) -> str:
    """Every student's full report (the `check --json` schema), in a list."""
    return json.dumps([g.report.to_dict() for g in result.graded], indent=2, allow_nan=False, default=str) + "\n"


def write_gradebook(result: BatchResult, out: Path, gradescope: bool = False) -> list[Path]:
    """Write every output; returns what was written, for the summary."""
    make_folder(out)
    write_text_atomic(out / "grades.csv", to_csv(result))
    write_text_atomic(out / "grades.json", grades_json(result))
    feedback = make_folder(out / "feedback")
    for g in result.graded:
        write_text_atomic(feedback / f"{g.name}.md", to_markdown(g.report, g.name))
    written = [out / "grades.csv", out / "grades.json", feedback]
    if gradescope:
        root = make_folder(out / "gradescope")
        for g in result.graded:
            write_text_atomic(make_folder(root / g.name) / "results.json", to_gradescope_json(g.report, g.name))
        written.append(root)
    return written
