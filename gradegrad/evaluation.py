"""Ask the child to run one exercise's Function on seeded inputs, and keep what came back.

A `Runner` belongs to one exercise of one submission: it owns the exercise's time budget,
memoises evaluations (several checks read the same one), and turns every way the student's code
can fail (exception, timeout, crash, exit) into a `Fault`, data that the checks report.

The budget is the student's code's time: importing the submission again in a fresh process (after
a timeout or a crash) is left out of it. Forward and backward travel in one round trip, but
forward's result comes back first; when backward hangs, a share of the budget (`FORWARD_RESERVE`)
is kept to run forward alone on the cases left, so the forward points survive a hanging backward.
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
from gradegrad.sandbox.remote import InPlace, PartialCall, Submission, WrongDtype, WrongOutput, remote_function

T = TypeVar("T")
FORWARD_RESERVE = 0.25  # of the exercise's budget (at least 2 s, at most half), not given to a backward,
# so that forward alone can still run on the cases left if backward hangs


@dataclass(frozen=True)
class Fault:
    """Why the student's code produced no result."""

    kind: str  # exception | exit | memory | rejected (by autograd) | wrong_dtype | timeout | crash | protocol
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
    echo_forward: list[Any] | None = None  # the arguments as forward left them (the child's word)
    echo_backward: list[Any] | None = None  # ... and as backward left them
    versions: list[int | None] = field(default_factory=list)  # in-place writes during forward
    # what backward left behind, as the child reports it: evidence that can fail `inputs_unchanged`,
    # never a pass (the transport of these facts may change; the checks read only these fields)
    grad_output_after: Any = None  # the upstream gradient backward received, after backward
    output_after: Any = None  # forward's output, after backward
    in_place: InPlace | None = None  # version counters before and after backward
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
    if isinstance(exc, WrongDtype):
        return Fault("wrong_dtype", str(exc))
    if isinstance(exc, WrongOutput):
        return Fault("exception", str(exc))
    raise exc


class Runner:
    def __init__(self, sub: Submission, ex: Exercise, class_name: str, seed: int, timeout: float) -> None:
        self.sub, self.ex, self.class_name, self.seed = sub, ex, class_name, seed
        self.timeout = timeout
        self.started = time.monotonic()
        self.loads_before = sub.load_seconds
        self.dead: Fault | None = None  # after a timeout or crash, nothing more runs
        self.backward_dead: Fault | None = None  # after backward hung: forward alone still runs
        self.cache: dict[tuple, Evaluation] = {}

    @property
    def deadline(self) -> float:
        """When the exercise's time is up: its budget, plus the time spent importing the submission
        again in a fresh process (which is not the exercise's)."""
        return self.started + self.timeout + (self.sub.load_seconds - self.loads_before)

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
        if self.backward_dead:
            return self._forward_alone(ev)
        try:
            ev.phase = "forward"  # until forward's reply arrives (backward's faults come as PartialCall)
            res, back, error = self.sub.call(self.class_name, ev.args, mask, ev.grad_output, timeout=self.remaining(),
                                             backward_timeout=self._backward_budget(), mode=mode, echo=True)
        except PartialCall as exc:  # forward answered, backward did not
            self._forward(ev, exc.forward)
            ev.phase = "backward"
            ev.fault = self._backward_lost(fault_from(exc, "backward", self.timeout))
            return ev
        except (StudentRaised, ChildFault) as exc:
            ev.fault = self._record(fault_from(exc, ev.phase, self.timeout))
            return ev
        self._forward(ev, res)
        ev.phase = "backward"
        if error is not None:
            ev.fault = self._record(fault_from(StudentRaised(error), ev.phase, self.timeout))
        elif back is not None:
            ev.grads, ev.grad_devices, ev.echo_backward = back.grads, back.devices, back.echo
            ev.grad_output_after, ev.output_after, ev.in_place = back.grad_output_after, back.output_after, back.in_place
            ev.backward_ops = back.ops
            if back.autograd and mode == "raw":
                ev.used_autograd = ev.used_autograd or "backward"
            ev.phase = ""
        else:
            ev.grad_output = None  # forward gave nothing to differentiate; the checks explain why
            ev.phase = ""
        return ev

    @staticmethod
    def _forward(ev: Evaluation, res) -> None:
        ev.output, ev.meta, ev.echo_forward, ev.versions = res.output, res.meta, res.echo, res.versions
        ev.forward_ops, ev.used_autograd = res.ops, "forward" if res.autograd else ""

    def _backward_budget(self) -> float:
        """What backward may take: the time left, less a reserve for forward alone if it hangs."""
        left = self.remaining()
        reserve = max(FORWARD_RESERVE * self.timeout, min(2.0, self.timeout / 2))
        return left - reserve if left - reserve >= 1.0 else left

    def _backward_lost(self, fault: Fault) -> Fault:
        """Backward timed out or died: the rest of the exercise runs forward alone, in a fresh process."""
        if fault.kind not in ("timeout", "crash", "protocol"):
            return fault
        if fault.kind == "timeout":
            fault = Fault("timeout", f"time limit: backward did not finish within the {self.timeout:g} s of the "
                          "exercise (forward was graded on what it returned)")
        self.backward_dead = Fault(fault.kind, f"not run: {fault.message}", fault.traceback)
        return fault

    def _forward_alone(self, ev: Evaluation) -> Evaluation:
        """After backward hung: forward only (its checks still count), backward's fault for the rest."""
        try:
            res = self.sub.forward(self.class_name, ev.args, ev.mask, timeout=self.remaining(), keep=False, echo=True)
        except (StudentRaised, ChildFault) as exc:
            ev.phase = "forward"
            ev.fault = self._record(fault_from(exc, "forward", self.timeout))
            return ev
        self._forward(ev, res)
        ev.phase, ev.fault = "backward", self.backward_dead
        return ev

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """An exercise kind's own evaluation (gradegrad.kinds), computed once for all its checks."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def guarded(self, fn: Callable[[], T], phase: str) -> T | Fault:
        """Run `fn` (which talks to the child); a failure of the student's code becomes a Fault."""
        if self.dead or self.backward_dead:
            return self.dead or self.backward_dead
        try:
            return fn()
        except (StudentRaised, ChildFault, WrongOutput) as exc:
            return self._record(fault_from(exc, phase, self.timeout))

    def gradcheck_ahead(self, args: tuple[Any, ...], options: dict[str, Any]) -> ContextManager[int]:
        """The child runs gradcheck(**options) on `args` ahead (`Submission.gradcheck_ahead`)."""
        return self.sub.gradcheck_ahead(self.class_name, args, options, timeout=self.remaining())

    def function(self) -> Callable[..., torch.Tensor]:
        """The student's Function as a local callable (for gradcheck)."""
        return remote_function(self.sub, self.class_name, lambda: self.deadline)

    def _record(self, fault: Fault) -> Fault:
        """Remember a fault that ended the child: the exercise's remaining checks are not run."""
        if fault.kind in ("timeout", "crash", "protocol"):
            self.dead = Fault(fault.kind, f"not run: {fault.message}", fault.traceback)
        return fault
