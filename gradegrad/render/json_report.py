"""`--json FILE`: the machine-readable report (Report.to_dict)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from gradegrad.errors import UsageError
from gradegrad.report import Report


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False, default=str) + "\n"


def write_json(report: Report, path: Path) -> None:
    """Write atomically: a reader never sees half a report."""
    text = to_json(report)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
