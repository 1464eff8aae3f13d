"""The immutable result model every writer reads.

Frozen dataclasses with `to_dict`/`from_dict`; they hold no display code. The JSON written by
`gradegrad check --json` is `Report.to_dict()`; `Report.json_line` is the same on one line, made
once for the cache, grades.json and a grading process's reply. A number that is not finite (the
worst element of an output that overflowed) is written as the string "nan", "inf" or "-inf", so
that every writer produces standard JSON, and is read back as that float by `from_dict`.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field, fields
from typing import Any, Literal

CheckStatus = Literal["passed", "failed", "error", "skipped"]
ExerciseStatus = Literal["passed", "failed", "error", "timeout", "missing",
                         "unavailable"]  # unavailable: an optional package is missing (kinds.extras), 0 of 0

SCHEMA_VERSION = 1
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_PACKED = "_json_line"  # where a report keeps its `json_line`, deflated


def json_text(data: Any) -> str:
    """Plain data (`to_dict`'s) as one line of JSON: json's C encoder, a value JSON cannot hold as
    its `str`; ValueError for a number that is not finite (`plain` wrote those as strings)."""
    return json.dumps(data, allow_nan=False, default=str)


def json_safe(value: Any) -> Any:
    """`value` (dicts, lists, tuples, scalars) with each non-finite float as "nan", "inf" or "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A report (or any of its parts) as JSON's data, as `json_safe(dataclasses.asdict(value))`
    gives it, in one pass: `asdict` deep-copies every leaf, and a batch writes each report a few
    times (the gradebook, the cache, a grading process's line)."""
    kind = type(value)
    if kind in _LEAVES:  # most of a report: its exact types first, the general case below
        return value
    names = _FIELDS.get(kind)
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else json_safe(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def number(value: Any) -> float:
    """A number of a report read back: a float, or one of the strings `json_safe` writes."""
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"not a number: {str(value)[:40]!r}")


@dataclass(frozen=True)
class Worst:
    """The element of a gradient (or output) that is furthest from the reference."""

    input: str
    index: tuple[int, ...]
    got: float
    expected: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Worst":
        return cls(d["input"], tuple(d["index"]), number(d["got"]), number(d["expected"]))


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: CheckStatus
    points: float
    max_points: float
    message: str = ""
    diagnosis: str | None = None  # a code such as "sign_error", see gradegrad.diagnosis
    worst: Worst | None = None
    traceback: str | None = None  # the student's own frames, when their code raised
    # Wall-clock time the check took in the grader (JUnit's `time`): the one field that differs
    # between two runs of the same grading, so equality ignores it.
    seconds: float = field(default=0.0, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckResult":
        worst = Worst.from_dict(d["worst"]) if d.get("worst") else None
        return cls(d["id"], d["status"], number(d["points"]), number(d["max_points"]), d.get("message", ""),
                   d.get("diagnosis"), worst, d.get("traceback"), float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class ExerciseResult:
    id: str
    class_name: str | None
    status: ExerciseStatus
    score: float
    max_score: float
    checks: tuple[CheckResult, ...]
    teaches: str = ""
    hint: str = ""  # e.g. "did you mean Sigmoid? (found Sigmod)"

    @property
    def first_problem(self) -> CheckResult | None:
        """The first check that did not pass, which the scorecard explains."""
        return next((c for c in self.checks if c.status in ("failed", "error")), None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExerciseResult":
        checks = tuple(CheckResult.from_dict(c) for c in d["checks"])
        return cls(d["id"], d.get("class_name"), d["status"], number(d["score"]), number(d["max_score"]), checks,
                   d.get("teaches", ""), d.get("hint", ""))


@dataclass(frozen=True)
class StudentOutput:
    """What the submission printed, captured and truncated; shown, never parsed."""

    stdout: str = ""
    stderr: str = ""
    truncated: bool = False

    @property
    def empty(self) -> bool:
        return not (self.stdout.strip() or self.stderr.strip())


@dataclass(frozen=True)
class Adjustment:
    """A TA's manual change to a score (adjustments.csv), applied after grading, never cached."""

    exercise: str | None  # None: the whole submission
    points: float  # added to the score (negative: a deduction)
    comment: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Adjustment":
        return cls(d.get("exercise"), float(d["points"]), d.get("comment", ""))


@dataclass(frozen=True)
class LoadProblem:
    """Top-level code of the submission that raised or ran too long while what it had defined is
    graded: a notebook cell, a module of a student's folder, a file's code after its classes."""

    file: str  # the student's file
    line: int | None = None  # where the cell or the code that raised starts (in the cell, for a notebook)
    cell: int | None = None  # the notebook cell, counted from 1 over every cell
    kind: str = "exception"  # exception | exit | memory | timeout
    message: str = ""  # e.g. "NameError: name 'model' is not defined"
    traceback: str | None = None  # the student's frames

    @property
    def where(self) -> str:
        """`lab.ipynb, cell 9` or `lab.py, line 40`."""
        return self.file + (f", cell {self.cell}" if self.cell else f", line {self.line}" if self.line else "")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LoadProblem":
        return cls(d["file"], d.get("line"), d.get("cell"), d.get("kind", "exception"), d.get("message", ""),
                   d.get("traceback"))


@dataclass(frozen=True)
class Report:
    submission: str
    device: str
    seed: int
    rubric: str
    score: float
    max_score: float
    exercises: tuple[ExerciseResult, ...]
    output: StudentOutput = field(default_factory=StudentOutput)
    notes: tuple[str, ...] = ()  # grader remarks, e.g. "graded the 3 exercises found"
    error: str | None = None  # the submission could not be loaded at all
    error_traceback: str | None = None  # the student's frames, when importing it raised
    protections: tuple[str, ...] = ()  # layers of containment active around the student's code
    gradegrad_version: str = ""
    schema_version: int = SCHEMA_VERSION
    not_graded: tuple[str, ...] = ()  # without a rubric: the catalog's exercises whose class was not found
    adjustments: tuple[Adjustment, ...] = ()  # included in `score` (and in the exercise's score)
    load_problems: tuple[LoadProblem, ...] = ()  # code that raised while what it defined was graded
    missing_protections: tuple[str, ...] = ()  # layers missing on this machine, each with the reason

    @property
    def passed(self) -> bool:
        """True when every graded exercise passed (and at least one was graded); an `unavailable`
        exercise (its optional packages are missing here) was not graded."""
        graded = [e for e in self.exercises if e.status != "unavailable"]
        return self.error is None and bool(graded) and all(e.status == "passed" for e in graded)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: non-finite numbers as strings (see the module's docstring)."""
        return plain(self)

    @property
    def json_line(self) -> str:
        """`to_dict` as one line of JSON (json's C encoder; a value JSON cannot hold as its `str`),
        made once: a batch writes each report to the cache and to grades.json, and a grading process
        sends it. Kept deflated (a tenth of its 50 kB, a tenth of the 3 ms it takes to make again):
        a batch holds every report until its gradebook is written. Raises ValueError or TypeError for
        a report JSON cannot hold."""
        packed = self.__dict__.get(_PACKED)
        if packed is not None:
            return zlib.decompress(packed).decode("utf-8")
        text = json_text(self.to_dict())
        self.__dict__[_PACKED] = zlib.compress(text.encode("utf-8"), 1)  # (not a field: the dataclass stays frozen)
        return text

    @classmethod
    def from_json_line(cls, text: str) -> "Report":
        """A report read back from the `json_line` of the same report in another grading process
        (`from_dict`, which gives `to_dict`'s data back unchanged): that text is its `json_line`."""
        report = cls.from_dict(json.loads(text))
        report.__dict__[_PACKED] = zlib.compress(text.encode("utf-8"), 1)
        return report

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return cls(
            submission=d["submission"], device=d["device"], seed=d["seed"], rubric=d["rubric"],
            score=number(d["score"]), max_score=number(d["max_score"]),
            exercises=tuple(ExerciseResult.from_dict(e) for e in d["exercises"]),
            output=StudentOutput(**d.get("output", {})), notes=tuple(d.get("notes", ())),
            error=d.get("error"), error_traceback=d.get("error_traceback"),
            protections=tuple(d.get("protections", ())),
            gradegrad_version=d.get("gradegrad_version", ""),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            not_graded=tuple(d.get("not_graded", ())),
            adjustments=tuple(Adjustment.from_dict(a) for a in d.get("adjustments", ())),
            load_problems=tuple(LoadProblem.from_dict(p) for p in d.get("load_problems", ())),
            missing_protections=tuple(d.get("missing_protections", ())),
        )


# each result class's fields, in order, for `plain`; and the types it returns as they are
_LEAVES = frozenset({str, int, bool, type(None)})
_FIELDS = {cls: tuple(f.name for f in fields(cls))
           for cls in (Worst, CheckResult, ExerciseResult, StudentOutput, Adjustment, LoadProblem, Report)}
