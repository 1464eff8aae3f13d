"""Ask the child to run one exercise's Function on seeded inputs, and keep what came back.

A `Runner` belongs to one exercise of one submission: it owns the exercise's time budget,
memoises evaluations (several checks read the same one), and turns every way the student's code
can fail (exception, timeout, crash, exit) into a `Fault`, data that the checks report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, TypeVar

import torch

from gradegrad.cases import DTYPES, make_grad_output, make_inputs
from gradegrad.catalog import Case, Exercise
from gradegrad.reference import memo, reference_output
from gradegrad.sandbox.process import ChildFault, StudentRaised
from gradegrad.sandbox.remote import Submission, WrongOutput, remote_function

T = TypeVar("T")


@dataclass(frozen=True)
class Fault:
    """Why the student's code produced no result."""

    kind: str  # exception | exit | memory | rejected (by autograd) | timeout | crash | protocol
    message: str
    traceback: str | None = None

    @property
    def status(self) -> str:
        return "timeout" if self.kind == "timeout" else "error"


@dataclass
class Evaluation:
    """One forward (and backward) of the student's Function on one case."""

    case: Case
    dtype: str
    args: list[Any]
    mask: list[bool]  # which arguments required grad
    grad_output: torch.Tensor | None = None
    output: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    grads: list[Any] | None = None
    grad_devices: list[str | None] = field(default_factory=list)
    echo_forward: list[Any] | None = None
    echo_backward: list[Any] | None = None
    versions: list[int | None] = field(default_factory=list)  # in-place writes during forward
    forward_ops: tuple[str, ...] = ()
    backward_ops: tuple[str, ...] = ()
    used_autograd: str = ""  # "forward" or "backward" when the student's code ran autograd's engine
    fault: Fault | None = None
    phase: str = ""  # where the fault happened: forward or backward


def fault_from(exc: Exception, phase: str, timeout: float) -> Fault:
    if isinstance(exc, StudentRaised):
        err = exc.error
        kind = err.get("kind") if err.get("kind") in ("exception", "exit", "memory", "rejected") else "exception"
        where = f" in {phase}" if phase else ""
        if kind == "memory":
            text = f"memory limit: the submission ran out of memory{where}"
        elif kind == "rejected":
            return Fault(kind, str(err.get("message", "")))
        elif kind == "exit":
            text = f"the submission called sys.exit(){where}"
        else:
            text = f"{err.get('type', 'Exception')}{where}: {err.get('message', '')}".rstrip(": ")
        return Fault(kind, text, str(err.get("traceback") or "") or None)
    if isinstance(exc, ChildFault):
        if exc.kind == "timeout":
            return Fault("timeout", f"time limit: {phase or 'the exercise'} did not finish within the "
                         f"exercise's {timeout:g} s")
        return Fault(exc.kind, f"{exc}" + (f" (during {phase})" if phase else ""))
    if isinstance(exc, WrongOutput):
        return Fault("exception", str(exc))
    raise exc


class Runner:
    def __init__(self, sub: Submission, ex: Exercise, class_name: str, seed: int, timeout: float) -> None:
        self.sub, self.ex, self.class_name, self.seed = sub, ex, class_name, seed
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.dead: Fault | None = None  # after a timeout or crash, nothing more runs
        self.cache: dict[tuple, Evaluation] = {}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def inputs(self, case: Case, dtype: str = "float64") -> list[Any]:
        return make_inputs(self.ex, case, self.seed, dtype)

    def evaluate(self, case: Case, dtype: str = "float64", mask: tuple[bool, ...] | None = None,
                 mode: str = "raw") -> Evaluation:
        """Forward then backward (with a random grad_output) on `case`; memoised."""
        mask = mask if mask is not None else tuple(s.differentiable for s in case.inputs)
        key = (case.name, dtype, mask, mode)
        if key not in self.cache:
            self.cache[key] = self._evaluate(case, dtype, mask, mode)
        return self.cache[key]

    def _evaluate(self, case: Case, dtype: str, mask: tuple[bool, ...], mode: str) -> Evaluation:
        ev = Evaluation(case, dtype, self.inputs(case, dtype), list(mask))
        if self.dead:
            ev.fault = self.dead
            return ev
        like = memo(("like", self.ex, case.name, dtype, self.seed),  # the true output's shape and dtype
                    lambda: reference_output(self.ex, ev.args).detach().to(DTYPES[dtype]))
        ev.grad_output = make_grad_output(like, self.seed, self.ex.id, case.name, dtype)
        try:
            ev.phase = "forward or backward"
            # the inputs come back (for `inputs_unchanged`) only for the evaluation that check reads
            echo = case is self.ex.cases[0] and dtype == "float64" and mode == "raw"
            res, back, error = self.sub.call(self.class_name, ev.args, mask, ev.grad_output,
                                             timeout=self.remaining(), mode=mode, echo=echo)
        except (StudentRaised, ChildFault) as exc:
            ev.phase = "forward" if isinstance(exc, StudentRaised) else ev.phase
            ev.fault = self._record(fault_from(exc, ev.phase, self.timeout))
            return ev
        ev.output, ev.meta, ev.echo_forward, ev.versions = res.output, res.meta, res.echo, res.versions
        ev.forward_ops, ev.used_autograd = res.ops, "forward" if res.autograd else ""
        ev.phase = "backward"
        if error is not None:
            ev.fault = self._record(fault_from(StudentRaised(error), ev.phase, self.timeout))
        elif back is not None:
            ev.grads, ev.grad_devices, ev.echo_backward = back.grads, back.devices, back.echo
            ev.backward_ops = back.ops
            if back.autograd and mode == "raw":
                ev.used_autograd = ev.used_autograd or "backward"
            ev.phase = ""
        else:
            ev.grad_output = None  # forward gave nothing to differentiate; the checks explain why
            ev.phase = ""
        return ev

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """An exercise kind's own evaluation (gradegrad.kinds), computed once for all its checks."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def guarded(self, fn: Callable[[], T], phase: str) -> T | Fault:
        """Run `fn` (which talks to the child); a failure of the student's code becomes a Fault."""
        if self.dead:
            return self.dead
        try:
            return fn()
        except (StudentRaised, ChildFault, WrongOutput) as exc:
            return self._record(fault_from(exc, phase, self.timeout))

    def gradcheck_ahead(self, args: tuple[Any, ...], options: dict[str, Any]) -> ContextManager[int]:
        """The child runs gradcheck(**options) on `args` ahead (`Submission.gradcheck_ahead`)."""
        return self.sub.gradcheck_ahead(self.class_name, args, options, timeout=self.remaining())

    def function(self) -> Callable[..., torch.Tensor]:
        """The student's Function as a local callable (for gradcheck)."""
        return remote_function(self.sub, self.class_name, self.deadline)

    def _record(self, fault: Fault) -> Fault:
        """Remember a fault that ended the child: the exercise's remaining checks are not run."""
        if fault.kind in ("timeout", "crash", "protocol"):
            self.dead = Fault(fault.kind, f"not run: {fault.message}", fault.traceback)
        return fault
