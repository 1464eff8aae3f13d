"""`--json FILE`: the machine-readable report (Report.to_dict)."""

from __future__ import annotations

import json
from pathlib import Path

from gradegrad.render.files import write_text_atomic
from gradegrad.report import Report


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False, default=str) + "\n"


def write_json(report: Report, path: Path) -> None:
    """Write atomically: a reader never sees half a report."""
    write_text_atomic(path, to_json(report))
