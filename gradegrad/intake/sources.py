"""What intake hands to grading: one `SubmissionSource` per student, and what was skipped.

A source says what the child loads (the student's own file, or a generated module with the
`Segment`s that map its lines back to the student's files and cells), or why nothing can be
loaded (`problem`). Nothing here reads a file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["file", "notebook", "folder"]

BUNDLE_PREFIX = "#| "


class Unusable(Exception):
    """A student's file cannot be graded; the message says why, for the gradebook."""


def printable(text: str) -> str:
    """A file name fit for a comment line of generated code."""
    return "".join(c if c.isprintable() else "?" for c in text)


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class Segment:
    """Lines `first`..`first + count - 1` of a generated module came from `origin`."""

    first: int
    count: int
    origin: str  # the student's file, relative to the submissions folder: "dave/helpers.py"
    origin_first: int = 1  # the line in `origin` (or in the cell) of the segment's first line
    cell: int | None = None  # the notebook cell, counted from 1 over every cell
    prefix: int = 0  # characters before the student's text on each line (a bundle's "#| ")

    def holds(self, line: int) -> bool:
        return self.first <= line < self.first + self.count

    def origin_line(self, line: int) -> int:
        return self.origin_first + line - self.first


@dataclass(frozen=True)
class SubmissionSource:
    """One student's submission and what the child loads for it.

    The child loads the student's own file (`load`), or a module generated from the student's
    files (a notebook, a folder's modules: then `segments` maps its lines back). The generated
    text is never kept here: `intake.generated_code(source)` builds it again when it is needed, so
    that a batch never holds every student's code in memory at once.
    """

    name: str  # the student: the file's stem or the folder's name, printable
    origin: Path  # what the student handed in
    kind: Kind
    load: Path | None = None  # the student's own file, loaded as it is
    segments: tuple[Segment, ...] = ()  # for a generated module: where its lines came from
    problem: str | None = None  # why it cannot be graded; then nothing is loaded
    digest: str = ""  # sha256 of what the child loads (or of the problem)
    notes: tuple[str, ...] = ()  # e.g. "2 shell/magic lines dropped"
    module: str | None = None  # the --module option it was read with (to build its module again)

    @property
    def generated(self) -> bool:
        """The child loads a module generated from the student's files (see `generated.py`)."""
        return self.problem is None and self.load is None

    @property
    def display(self) -> str:
        return printable(self.origin.name) + ("/" if self.kind == "folder" else "")


@dataclass(frozen=True)
class Skipped:
    """An entry of the folder that is not a student's submission."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        """The entry's name, fit for a terminal and a file."""
        return printable(self.path.name)


@dataclass(frozen=True)
class Discovery:
    folder: Path
    sources: tuple[SubmissionSource, ...]  # one per student, by name
    skipped: tuple[Skipped, ...] = ()
