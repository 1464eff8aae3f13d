"""Gradescope's autograder results (`results.json`): one test per check, the scorecard on top.

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (score, output,
output_format, tests with name, score, max_score, status and output). Checks that do not apply
here (device on cpu) are left out; a failed flag worth no points is shown as failed, 0/0.
Who sees each test comes from the rubric (`visibility:` per check id, for the rubric or one
exercise; `stdout_visibility:`), with Gradescope's words: visible, hidden, after_due_date,
after_published. A manual adjustment is a test of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradegrad.catalog import Rubric
from gradegrad.report import Adjustment, CheckResult, ExerciseResult, Report
from gradegrad.render.files import make_folder, write_text_atomic
from gradegrad.render.markdown import to_markdown


@dataclass(frozen=True)
class Visibility:
    """Who sees which test: the rubric's `visibility` (per check, for every exercise or one)."""

    checks: tuple[tuple[str, str], ...] = ()  # check id or "default" -> level
    exercises: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # exercise id -> its own levels
    stdout: str = "hidden"

    def of(self, exercise: str, check: str) -> str:
        own = dict(dict(self.exercises).get(exercise, ()))
        rubric = dict(self.checks)
        return own.get(check) or own.get("default") or rubric.get(check) or rubric.get("default") or "visible"


def visibility_of(rubric: Rubric) -> Visibility:
    return Visibility(rubric.visibility, tuple((it.exercise, it.visibility) for it in rubric.items if it.visibility),
                      rubric.stdout_visibility)


def _output(ex: ExerciseResult, check: CheckResult) -> str:
    if check.status == "passed":  # a remark that cost nothing (a harmless upcast), or nothing
        return f"{check.message}\nDiagnosis: {check.diagnosis}" if check.diagnosis and check.message else ""
    parts = [check.message]
    if check.diagnosis:
        parts.append(f"Diagnosis: {check.diagnosis}")
    if check.worst is not None:
        w = check.worst
        parts.append(f"Largest difference at {w.input}{list(w.index)}: got {w.got:.6g}, expected {w.expected:.6g}")
    if ex.hint:
        parts.append(ex.hint)
    if check.traceback:
        parts.append(check.traceback.rstrip())
    return "\n".join(p for p in parts if p)


def _test(ex: ExerciseResult, check: CheckResult, seen: Visibility) -> dict[str, Any]:
    return {"name": f"{ex.id}: {check.id}", "score": check.points, "max_score": check.max_points,
            "status": "passed" if check.status == "passed" else "failed", "output": _output(ex, check),
            "visibility": seen.of(ex.id, check.id)}


def _adjustment_test(a: Adjustment) -> dict[str, Any]:
    where = f"{a.exercise}: " if a.exercise else ""
    return {"name": f"{where}adjusted by your teacher", "score": a.points, "max_score": 0.0,
            "status": "passed", "output": a.comment, "visibility": "visible"}


def _load_test(report: Report) -> dict[str, Any]:
    return {"name": "the submission loads", "score": 0.0, "max_score": 0.0, "status": "failed",
            "output": "\n\n".join(p for p in (report.error, report.error_traceback) if p), "visibility": "visible"}


def to_gradescope(report: Report, name: str | None = None, visibility: Visibility | None = None) -> dict[str, Any]:
    seen = visibility or Visibility()
    tests = [_load_test(report)] if report.error is not None else []
    tests += [_test(ex, c, seen) for ex in report.exercises for c in ex.checks if c.status != "skipped"]
    tests += [_adjustment_test(a) for a in report.adjustments]
    return {"score": report.score, "output": to_markdown(report, name), "output_format": "md",
            "test_output_format": "text", "visibility": "visible", "stdout_visibility": seen.stdout, "tests": tests}


def to_gradescope_json(report: Report, name: str | None = None, visibility: Visibility | None = None) -> str:
    return json.dumps(to_gradescope(report, name, visibility), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_gradescope(report: Report, path: Path, name: str | None = None, visibility: Visibility | None = None) -> None:
    """Write `results.json` where Gradescope reads it (creating its folder)."""
    make_folder(path.parent)
    write_text_atomic(path, to_gradescope_json(report, name, visibility))
