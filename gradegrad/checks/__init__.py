"""The checks, one function each, registered by id in rubric order.

A check reads evaluations from the exercise's `Runner` and compares them with references computed
here; it returns a `Verdict`. `applies` says which checks mean something for an exercise (the
rubric's points for the others do not count). Points are assigned by `grading`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradegrad.catalog import CHECK_IDS, Exercise
from gradegrad.diagnosis import Finding, diagnose_exception, diagnose_rejection
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
    def passed(cls, message: str = "") -> "Verdict":
        return cls("passed", message)

    @classmethod
    def failed(cls, finding: Finding, prefix: str = "") -> "Verdict":
        return cls("failed", prefix + finding.message, finding.code, finding.worst)

    @classmethod
    def fault(cls, fault: Fault, prefix: str = "") -> "Verdict":
        """The student's code raised, hung or died; autograd rejecting its result is a failure."""
        if fault.kind == "rejected":
            return cls.failed(diagnose_rejection(fault.message), prefix)
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
REGISTRY: dict[str, Check] = {}


def check(check_id: str) -> Callable[[Check], Check]:
    """Register a check under an id that rubrics use."""
    assert check_id in CHECK_IDS, check_id

    def register(fn: Check) -> Check:
        REGISTRY[check_id] = fn
        return fn

    return register


def skipped_on(check_id: str, device: str) -> str | None:
    """Why a check is skipped on this device whatever the submission (it then counts 0 of 0)."""
    return "runs with --device cuda" if check_id == "device" and device == "cpu" else None


def applies(check_id: str, ex: Exercise) -> bool:
    """Whether a check means anything for an exercise (else its rubric points do not count)."""
    if ex.kind != "function":  # module, vjp, chain: the kind's own checks (gradegrad.kinds)
        from gradegrad.kinds import kind_applies

        return kind_applies(check_id, ex)
    if check_id in ("wraps_function", "training", "parameters"):  # only the module, chain and training kinds
        return False
    if check_id == "stability":
        return any(c.stability for c in ex.cases)
    if check_id == "needs_input_grad":
        return len(ex.differentiable) >= 2
    if check_id == "efficiency":
        return ex.efficiency is not None
    return True


def registered(kind: str = "function") -> dict[str, Check]:
    """Every check of an exercise kind, in the order of CHECK_IDS (importing the modules registers them)."""
    if kind != "function":
        from gradegrad.kinds import kind_checks

        return kind_checks(kind)
    from gradegrad.checks import authorship, found, gradcheck, grad_mask, hygiene, values  # noqa: F401
    from gradegrad.checks import efficiency, higher_order  # noqa: F401

    return {cid: REGISTRY[cid] for cid in CHECK_IDS if cid in REGISTRY}
