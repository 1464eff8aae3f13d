"""The class roster (`--roster roster.csv`): who the students are, and which submission is whose.

Columns (a header row; names are case-insensitive, spaces and underscores alike): `id` (required:
the student's institutional id, Canvas's "SIS User ID", Moodle's "ID number"), `name`, `email`,
`section`, and optionally `submission` (the submission's name when it is none of the others),
`canvas_id` (Canvas's own numeric user "ID") and `login` (Canvas's "SIS Login ID").

A submission (file stem or folder name) belongs to the student whose `submission`, `id`, email,
email's local part (before the @) or `login` equals its name, ignoring case. A name that fits
several students, students with several submissions, submissions that fit no one and students
without a submission are all reported, never dropped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from gradegrad.errors import ConfigError

COLUMNS = ("id", "name", "email", "section", "submission", "canvas_id", "login")
MAX_BYTES = 10 << 20  # a roster is a small file; anything larger is a mistake


@dataclass(frozen=True)
class Student:
    id: str
    name: str = ""
    email: str = ""
    section: str = ""
    submission: str = ""
    canvas_id: str = ""
    login: str = ""


@dataclass(frozen=True)
class RosterMatch:
    """Submissions matched to students, and everything that did not fit."""

    students: tuple[Student, ...]  # the whole roster, in file order
    owner: tuple[tuple[str, Student], ...]  # (submission name, student) for each matched submission
    unmatched: tuple[str, ...] = ()  # submissions that fit no student of the roster
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (submission, ids of the students it fits)
    several: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (student id, their submissions): not exported

    def student_of(self, submission: str) -> Student | None:
        return dict(self.owner).get(submission)

    def submissions_of(self, student: Student) -> tuple[str, ...]:
        return tuple(name for name, s in self.owner if s.id == student.id)

    @property
    def absent(self) -> tuple[Student, ...]:
        """Students of the roster without a submission."""
        have = {s.id for _, s in self.owner}
        return tuple(s for s in self.students if s.id not in have)


def spreadsheet_rows(text: str):
    """The rows of a CSV file as a spreadsheet saves it: a comma between cells, or a semicolon (Excel in
    locales whose decimal mark is a comma) or a tab, whichever the header line uses instead."""
    text = text.lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    delimiter = next((d for d in (";", "\t") if d in header and "," not in header), ",")
    return csv.reader(io.StringIO(text), delimiter=delimiter)


def _column(name: str) -> str:
    return name.strip().lstrip("\ufeff").lower().replace(" ", "_")


def parse_roster(text: str, origin: str = "roster.csv") -> tuple[Student, ...]:
    """Students from CSV text; a missing column, an empty or duplicate id names the file and row."""
    rows = spreadsheet_rows(text)
    header = [_column(h) for h in next(rows, [])]
    if "id" not in header:
        raise ConfigError(f"{origin}:1: the roster needs an `id` column (columns: {', '.join(COLUMNS)}); "
                          f"found: {', '.join(header) or 'nothing'}")
    where = {c: header.index(c) for c in COLUMNS if c in header}
    students: list[Student] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {c: (row[i].strip() if i < len(row) else "") for c, i in where.items()}
        if not values["id"]:
            raise ConfigError(f"{origin}:{line}: id: empty (every student needs an id)")
        key = values["id"].casefold()
        if key in seen:
            raise ConfigError(f"{origin}:{line}: id: {values['id']!r} is also on line {seen[key]}")
        seen[key] = line
        students.append(Student(**values))
    return tuple(students)


def read_spreadsheet(path: Path, what: str) -> str:
    """The text of a CSV file a TA saved from a spreadsheet (`what`: "the roster", "the adjustments
    file"), BOM removed; a missing, unreadable, oversized or non-UTF-8 file is a ConfigError."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB: is this {what}?")
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what.removeprefix('the ')} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: save {what} as CSV UTF-8") from None


def read_roster(path: Path) -> tuple[Student, ...]:
    return parse_roster(read_spreadsheet(path, "the roster"), str(path))


def match(students: Iterable[Student], submissions: Iterable[str]) -> RosterMatch:
    """Which submission is whose (the rules in the module's docstring)."""
    students = tuple(students)
    owner: list[tuple[str, Student]] = []
    unmatched: list[str] = []
    ambiguous: list[tuple[str, tuple[str, ...]]] = []
    for name in submissions:
        fits = _fits(students, name.casefold())
        if len(fits) == 1:
            owner.append((name, fits[0]))
        elif fits:
            ambiguous.append((name, tuple(s.id for s in fits)))
        else:
            unmatched.append(name)
    several: dict[str, list[str]] = {}
    for name, student in owner:
        several.setdefault(student.id, []).append(name)
    doubles = tuple((sid, tuple(names)) for sid, names in several.items() if len(names) > 1)
    return RosterMatch(students, tuple(owner), tuple(unmatched), tuple(ambiguous), doubles)


def _fits(students: tuple[Student, ...], name: str) -> list[Student]:
    """The students a submission name fits, by the most specific key that fits any of them."""
    for rank in range(5):
        fits = [s for s in students if _key(s, rank) == name]
        if fits:
            return fits
    return []


def _key(student: Student, rank: int) -> str:
    local = student.email.split("@", 1)[0] if "@" in student.email else ""
    return (student.submission, student.id, student.email, local, student.login)[rank].casefold()


def lookup(students: Iterable[Student], name: str) -> Student | None:
    """The one student a name (from adjustments.csv) designates, if exactly one."""
    fits = _fits(tuple(students), name.casefold())
    return fits[0] if len(fits) == 1 else None
