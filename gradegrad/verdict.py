"""What a check reads (`CheckContext`) and what it returns (`Verdict`), for every exercise kind.

`checks/` (kind `function`) and `kinds/` (module, vjp, chain, ...) both write checks against
these two types and register them in `gradegrad.registry`; neither package imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradegrad.catalog import Exercise
from gradegrad.diagnosis import Finding, diagnose_exception, diagnose_fault
from gradegrad.evaluation import Fault, Runner
from gradegrad.report import CheckStatus, Worst
from gradegrad.sandbox.remote import ClassInfo


@dataclass(frozen=True)
class Verdict:
    status: CheckStatus
    message: str = ""
    diagnosis: str | None = None
    worst: Worst | None = None
    traceback: str | None = None
    timed_out: bool = False

    @classmethod
    def passed(cls, message: str = "", diagnosis: str | None = None) -> "Verdict":
        """A pass; a message (and code) with it is a note that costs nothing (e.g. a harmless upcast)."""
        return cls("passed", message, diagnosis)

    @classmethod
    def failed(cls, finding: Finding, prefix: str = "") -> "Verdict":
        return cls("failed", prefix + finding.message, finding.code, finding.worst)

    @classmethod
    def fault(cls, fault: Fault, prefix: str = "") -> "Verdict":
        """The student's code raised, hung or died. What autograd rejected, or torch's own error about
        a tensor the student overwrote in place, is a failure with a diagnosis, not an error."""
        finding = diagnose_fault(fault.kind, fault.message)
        if finding is not None:
            return cls("failed", prefix + finding.message, finding.code, finding.worst, fault.traceback)
        known = diagnose_exception(fault.message) if fault.kind == "exception" else None
        if known:  # still the student's error, with the mistake named (e.g. seed 003's saved_tensors tuple)
            return cls("error", f"{prefix}{fault.message}: {known.message}", known.code, None, fault.traceback)
        return cls("error", prefix + fault.message, None, None, fault.traceback, fault.kind == "timeout")


@dataclass(frozen=True)
class CheckContext:
    exercise: Exercise
    info: ClassInfo
    runner: Runner
    device: str

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.exercise.inputs]


Check = Callable[[CheckContext], Verdict]
