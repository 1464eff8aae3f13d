"""The immutable result model every writer reads.

Frozen dataclasses with `to_dict`/`from_dict`; they hold no display code. The JSON written by
`gradegrad check --json` is `Report.to_dict()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CheckStatus = Literal["passed", "failed", "error", "skipped"]
ExerciseStatus = Literal["passed", "failed", "error", "timeout", "missing"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Worst:
    """The element of a gradient (or output) that is furthest from the reference."""

    input: str
    index: tuple[int, ...]
    got: float
    expected: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Worst":
        return cls(d["input"], tuple(d["index"]), d["got"], d["expected"])


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckResult":
        worst = Worst.from_dict(d["worst"]) if d.get("worst") else None
        return cls(d["id"], d["status"], d["points"], d["max_points"], d.get("message", ""),
                   d.get("diagnosis"), worst, d.get("traceback"))


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
        return cls(d["id"], d.get("class_name"), d["status"], d["score"], d["max_score"], checks,
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
    missing_protections: tuple[str, ...] = ()  # layers missing on this machine, each with the reason

    @property
    def passed(self) -> bool:
        """True when every graded exercise passed (and at least one was graded)."""
        return self.error is None and bool(self.exercises) and all(e.status == "passed" for e in self.exercises)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return cls(
            submission=d["submission"], device=d["device"], seed=d["seed"], rubric=d["rubric"],
            score=d["score"], max_score=d["max_score"],
            exercises=tuple(ExerciseResult.from_dict(e) for e in d["exercises"]),
            output=StudentOutput(**d.get("output", {})), notes=tuple(d.get("notes", ())),
            error=d.get("error"), error_traceback=d.get("error_traceback"),
            protections=tuple(d.get("protections", ())),
            gradegrad_version=d.get("gradegrad_version", ""),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            missing_protections=tuple(d.get("missing_protections", ())),
        )
