"""Reports of unchanged submissions, kept between runs of `gradegrad grade` (in `<out>/.cache`).

An entry is keyed by the sha256 of everything a report depends on: the code the child loads, the
rubric (its file and the exercises and points chosen), every exercise manifest, gradegrad's own
source, and the options (seed, device, limits). Change any of them and the key changes; a stale
entry is never read, only left behind.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import gradegrad
from gradegrad.catalog import Exercise, Rubric
from gradegrad.options import Options
from gradegrad.render.files import write_text_atomic
from gradegrad.report import Report

CACHE_FORMAT = 1


@lru_cache(maxsize=1)
def package_digest() -> str:
    """gradegrad's own source: a new check or a fixed bug invalidates every entry."""
    root = Path(gradegrad.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _file_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def grading_digest(rubric: Rubric, catalog: Mapping[str, Exercise], options: Options) -> str:
    """Everything but the submission: the same for a whole batch."""
    h = hashlib.sha256()
    parts = [f"format {CACHE_FORMAT}", gradegrad.__version__, package_digest(),
             repr((rubric.name, rubric.items, rubric.defaults, rubric.only_found)), repr(options)]
    for part in parts:
        h.update(part.encode() + b"\0")
    h.update(_file_bytes(rubric.path) + b"\0")
    for ex_id in sorted(catalog):
        h.update(ex_id.encode() + b"\0" + _file_bytes(catalog[ex_id].path) + b"\0")
    return h.hexdigest()


def cache_key(submission_digest: str, grading: str, student: str = "") -> str:
    """Keyed by the student too: a report names the student's own files (and a rubric with
    variants grades each student differently), so identical submissions never share one."""
    return hashlib.sha256(f"{grading}\0{submission_digest}\0{student}".encode()).hexdigest()


class ResultCache:
    """A folder of `<key>.json` reports; `read=False` (--no-cache) grades afresh but still writes."""

    def __init__(self, folder: Path | None, read: bool = True) -> None:
        self.folder, self.read = folder, read

    def get(self, key: str) -> Report | None:
        if self.folder is None or not self.read:
            return None
        try:
            return Report.from_dict(json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: grade again

    def put(self, key: str, report: Report) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.folder / f"{key}.json", report.json_line)
        except (OSError, ValueError):
            pass  # a cache that cannot be written only costs time on the next run
