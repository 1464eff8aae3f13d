"""Gradescope's autograder results (`results.json`): one test per check, the scorecard on top.

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (score, output,
output_format, tests with name, score, max_score, status and output). Checks that do not apply
here (device on cpu) are left out; a failed flag worth no points is shown as failed, 0/0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gradegrad.report import CheckResult, ExerciseResult, Report
from gradegrad.render.files import make_folder, write_text_atomic
from gradegrad.render.markdown import to_markdown


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


def _test(ex: ExerciseResult, check: CheckResult) -> dict[str, Any]:
    return {"name": f"{ex.id}: {check.id}", "score": check.points, "max_score": check.max_points,
            "status": "passed" if check.status == "passed" else "failed", "output": _output(ex, check),
            "visibility": "visible"}


def _load_test(report: Report) -> dict[str, Any]:
    return {"name": "the submission loads", "score": 0.0, "max_score": 0.0, "status": "failed",
            "output": "\n\n".join(p for p in (report.error, report.error_traceback) if p), "visibility": "visible"}


def to_gradescope(report: Report, name: str | None = None) -> dict[str, Any]:
    tests = [_load_test(report)] if report.error is not None else []
    tests += [_test(ex, c) for ex in report.exercises for c in ex.checks if c.status != "skipped"]
    return {"score": report.score, "output": to_markdown(report, name), "output_format": "md",
            "test_output_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def to_gradescope_json(report: Report, name: str | None = None) -> str:
    return json.dumps(to_gradescope(report, name), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_gradescope(report: Report, path: Path, name: str | None = None) -> None:
    """Write `results.json` where Gradescope reads it (creating its folder)."""
    make_folder(path.parent)
    write_text_atomic(path, to_gradescope_json(report, name))
