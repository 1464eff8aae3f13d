"""Ask the child to run one exercise's Function on seeded inputs, and keep what came back.

A `Runner` belongs to one exercise of one submission: it owns the exercise's time budget,
memoises evaluations (several checks read the same one), and turns every way the student's code
can fail (exception, timeout, crash, exit) into a `Fault`, data that the checks report.

Fewer round trips: each check declares the evaluations it will read (`Read`, and gradcheck its
run-ahead, `Ahead`; see `registry.py`), and the first time a check asks for one, the Runner asks
the child for all of them in one request (`Requests.evaluate`), in the order the checks will read
them. What it returns is kept aside and handed to a check when the check asks, with the same
consequences a live evaluation would have had then (a timeout ends the exercise, a backward that
hangs leaves forward alone for the rest); what the request did not bring back is evaluated live.

Inputs and upstream gradients travel in shared memory (`sandbox/shared.py`); after each request
the grader reads them back itself (`Evaluation.inputs_after`, `grad_output_after`), so that an
input the student's code overwrote is a fact the grader saw, not one the child reports.

The budget is the student's code's time: importing the submission again in a fresh process (after
a timeout or a crash) is left out of it. Forward's result comes back before backward runs; when
backward hangs, a share of the budget (`FORWARD_RESERVE`) is kept to run forward alone on the
cases left, so the forward points survive a hanging backward.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Sequence, TypeVar

import torch

from gradegrad.cases import DTYPES, make_grad_output, make_inputs
from gradegrad.catalog import Case, Exercise
from gradegrad.prediction import predicted_requests
from gradegrad.reference import memo, reference_output
from gradegrad.sandbox.process import ChildFault, StudentRaised
from gradegrad.sandbox.remote import (AheadPairs, InPlace, Item, LostAt, Submission, WrongDtype, WrongOutput,
                                      remote_function)

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


@dataclass(frozen=True)
class Read:
    """An evaluation a check will read: forward (and backward) on a case, in a dtype, with the
    arguments of `mask` requiring grad (None: the differentiable ones), backward `raw` (the
    student's backward called directly) or through autograd's `engine`."""

    case: str
    dtype: str = "float64"
    mask: tuple[bool, ...] | None = None
    mode: str = "raw"


@dataclass(frozen=True)
class Ahead:
    """gradcheck on a case's float64 inputs, run ahead in the child with these options (fast_mode
    first, then the full one where fast_mode fails in a way only the full one settles)."""

    case: str
    options: tuple[tuple[str, Any], ...]


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
    grads_container: str = "tuple"  # "list": backward returned a list, which autograd refuses
    grad_devices: list[str | None] = field(default_factory=list)
    # read back by the grader from the memory it shared with the child, after the request: facts
    inputs_after: list[Any] | None = None  # the arguments as the call left them (None per argument not shared)
    grad_output_after: Any = None  # the upstream gradient backward received, as backward left it
    read_back: bool = False  # every tensor the call was given was shared, and read back
    versions: list[int | None] = field(default_factory=list)  # in-place writes during forward (the child's word)
    # what backward left behind, as the child reports it: evidence that can fail `inputs_unchanged`,
    # never a pass
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


Key = tuple  # (case name, dtype, mask, mode)


class Runner:
    def __init__(self, sub: Submission, ex: Exercise, class_name: str, seed: int, timeout: float,
                 reads: Sequence[Read | Ahead] = ()) -> None:
        self.sub, self.ex, self.class_name, self.seed = sub, ex, class_name, seed
        self.timeout = timeout
        self.started = time.monotonic()
        self.loads_before = sub.load_seconds
        self.dead: Fault | None = None  # after a timeout or crash, nothing more runs
        self.backward_dead: Fault | None = None  # after backward hung: forward alone still runs
        self.cache: dict[tuple, Evaluation] = {}
        self.reads = tuple(reads)  # what the exercise's checks will read, in their order
        self.prefetched = not self.reads
        # evaluations brought back ahead of the checks: key -> (evaluation, what a live one would
        # have recorded when it came back: "dead" for a fault that ends the exercise, "backward"
        # for a backward lost to a timeout or crash, "" nothing)
        self.fetched: dict[Key, tuple[Evaluation, str]] = {}
        # gradcheck's replies sent ahead: (the evaluator, pairs per mode, whether they answer requests the
        # grader predicted rather than the student's own gradcheck run in the child)
        self.ahead: tuple[Any, dict[str, list[tuple[bytes, bytes]]], bool] | None = None

    @property
    def deadline(self) -> float:
        """When the exercise's time is up: its budget, plus the time spent importing the submission
        again in a fresh process (which is not the exercise's)."""
        return self.started + self.timeout + (self.sub.load_seconds - self.loads_before)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def inputs(self, case: Case, dtype: str = "float64") -> list[Any]:
        """The case's seeded arguments: drawn once per batch, a fresh copy for each caller."""
        drawn = memo(("inputs", self.ex, case, dtype, self.seed), lambda: make_inputs(self.ex, case, self.seed, dtype))
        return [a.clone() if isinstance(a, torch.Tensor) else a for a in drawn]

    def evaluate(self, case: Case, dtype: str = "float64", mask: tuple[bool, ...] | None = None,
                 mode: str = "raw") -> Evaluation:
        """Forward then backward (with a random grad_output) on `case`; memoised."""
        mask = mask if mask is not None else tuple(s.differentiable for s in case.inputs)
        key = (case.name, dtype, mask, mode)
        if key not in self.cache:
            self._prefetch()
            fetched = self.fetched.pop(key, None)
            if fetched is not None and not (self.dead or self.backward_dead):
                self.cache[key] = self._take(*fetched)
            else:  # not brought back, or brought back after what a live evaluation would now not run
                self.cache[key] = self._evaluate(case, dtype, mask, mode)
        return self.cache[key]

    def _take(self, ev: Evaluation, record: str) -> Evaluation:
        """An evaluation brought back earlier, with what it means for the rest of the exercise now."""
        if record == "dead":
            ev.fault = self._record(ev.fault)
        elif record == "backward":
            ev.fault = self._backward_lost(ev.fault)
        return ev

    def _prefetch(self) -> None:
        """Ask for every evaluation the checks declared (and gradcheck's run-ahead) in one request."""
        if self.prefetched:
            return
        self.prefetched = True
        if self.dead or self.backward_dead:
            return
        cases = {c.name: c for c in self.ex.cases}
        batch: list[tuple[Key, Evaluation, str]] = []
        ahead, ahead_at = None, 0
        for read in self.reads:
            case = cases.get(read.case)
            if case is None:
                continue
            if isinstance(read, Ahead):
                if ahead is None:
                    args = tuple(a.requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
                                 for s, a in zip(case.inputs, self.inputs(case, "float64")))
                    predicted = predicted_requests(self.ex, self.class_name, case.name, self.seed, args,
                                                   dict(read.options))
                    ahead, ahead_at = (args, dict(read.options), predicted), len(batch)
                continue
            mask = read.mask if read.mask is not None else tuple(s.differentiable for s in case.inputs)
            key = (case.name, read.dtype, mask, read.mode)
            if key not in self.cache and all(key != k for k, _, _ in batch):
                batch.append((key, self._new(case, read.dtype, mask), read.mode))
        if batch or ahead is not None:
            self._run(batch, ahead, ahead_at)

    def _new(self, case: Case, dtype: str, mask: tuple[bool, ...]) -> Evaluation:
        """An evaluation's inputs and random upstream gradient (shaped like the true output)."""
        ev = Evaluation(case, dtype, self.inputs(case, dtype), list(mask))
        like = memo(("like", self.ex, case.name, dtype, self.seed),  # the true output's shape and dtype
                    lambda: reference_output(self.ex, ev.args).detach().to(DTYPES[dtype]))
        ev.grad_output = make_grad_output(like, self.seed, self.ex.id, case.name, dtype)
        return ev

    def _evaluate(self, case: Case, dtype: str, mask: tuple[bool, ...], mode: str) -> Evaluation:
        if self.dead:
            ev = Evaluation(case, dtype, self.inputs(case, dtype), list(mask))
            ev.fault = self.dead
            return ev
        ev = self._new(case, dtype, mask)
        if self.backward_dead:
            return self._forward_alone(ev)
        key = (case.name, dtype, mask, mode)
        self._run([(key, ev, mode)])
        if key not in self.fetched:  # the evaluator answered nothing that can be taken for it
            ev.phase, ev.fault = "forward", Fault("protocol", "the evaluator sent an invalid reply")
            self.fetched[key] = (ev, "dead")
        return self._take(*self.fetched.pop(key))

    def _run(self, batch: list[tuple[Key, Evaluation, str]], ahead: tuple | None = None,
             ahead_at: int = 0) -> None:
        """Evaluate `batch` (and gradcheck's run-ahead) in one request; each evaluation, finished or
        lost, goes to `fetched`; what the evaluator never reached stays out of it."""
        items = [Item(ev.args, list(ev.mask), ev.grad_output, mode) for _, ev, mode in batch]
        stream = self.sub.evaluate(self.class_name, items, timeout=self._frame_timeout, shared=self.sub.shared,
                                   ahead=ahead, ahead_at=ahead_at)
        answered: set[int] = set()
        finished = False
        try:
            for answer in stream:
                if isinstance(answer, AheadPairs):
                    self.ahead = (self.sub.child, answer.pairs, ahead is not None and ahead[2] is not None)
                    continue
                key, ev, _ = batch[answer.item]
                answered.add(answer.item)
                if self._answer(ev, items[answer.item], answer):
                    self.fetched[key] = (ev, "")
            finished = True
        except LostAt as exc:
            if exc.item < len(batch) and exc.phase in ("forward", "backward"):
                key, ev, _ = batch[exc.item]
                ev.phase = exc.phase
                ev.fault = fault_from(exc, exc.phase, self.timeout)
                self.fetched[key] = (ev, "dead" if exc.phase == "forward" else "backward")
        except StudentRaised as exc:  # the whole request refused (not one item): the first one's fault
            if batch and 0 not in answered:
                key, ev, _ = batch[0]
                ev.phase, ev.fault = "forward", fault_from(exc, "forward", self.timeout)
                self.fetched[key] = (ev, "dead")
        finally:
            if not finished:
                self.sub.abandon()  # frames of this reply may still come: they must not answer another request
            for i in answered:
                self._read_back(batch[i][1], items[i])

    def _answer(self, ev: Evaluation, item: Item, answer) -> bool:
        """Take one frame's answer into `ev`; whether `ev` is complete."""
        if answer.phase == "forward":
            if answer.error is not None:
                ev.phase = "forward"
                ev.fault = fault_from(StudentRaised(answer.error), "forward", self.timeout)
                return True
            self._forward(ev, answer.result)
            if answer.result.handle is None or not item.backward:
                ev.grad_output = None if item.backward else ev.grad_output  # nothing to differentiate
                ev.phase = ""
                return True
            ev.phase = "backward"
            return False
        if answer.error is not None:
            ev.fault = fault_from(StudentRaised(answer.error), "backward", self.timeout)
        elif answer.result is not None:
            back = answer.result
            ev.grads, ev.grad_devices, ev.grads_container = back.grads, back.devices, back.container
            ev.output_after, ev.in_place = back.output_after, back.in_place
            ev.backward_ops = back.ops
            if back.autograd and item.mode == "raw":
                ev.used_autograd = ev.used_autograd or "backward"
            ev.phase = ""
        return True

    def _read_back(self, ev: Evaluation, item: Item) -> None:
        """The inputs (and upstream gradient) as the call left them, read here from shared memory."""
        shared = self.sub.shared
        if shared is None:
            return
        ev.inputs_after = [shared.read(ref) if ref is not None else None for ref in item.arg_refs]
        tensors_shared = all(ref is not None for a, ref in zip(ev.args, item.arg_refs) if isinstance(a, torch.Tensor))
        backward_ran = ev.grads is not None or (ev.phase == "backward" and ev.fault is not None)
        if item.grad_output_ref is not None and backward_ran:
            ev.grad_output_after = shared.read(item.grad_output_ref)
        ev.read_back = tensors_shared and (item.grad_output_ref is not None or not backward_ran)

    def _frame_timeout(self, phase: str) -> float:
        """The time a frame of an evaluation request may take, as it is awaited."""
        return self._backward_budget() if phase == "backward" else self.remaining()

    @staticmethod
    def _forward(ev: Evaluation, res) -> None:
        ev.output, ev.meta, ev.versions = res.output, res.meta, res.versions
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
        item = Item(ev.args, list(ev.mask), None, backward=False)
        self._run_alone(ev, item)
        if ev.fault is not None:
            ev.fault = self._record(ev.fault)
            return ev
        ev.phase, ev.fault = "backward", self.backward_dead
        return ev

    def _run_alone(self, ev: Evaluation, item: Item) -> None:
        """One item, no backward: forward's answer or its fault into `ev`, read back after."""
        answered = False
        try:
            for answer in self.sub.evaluate(self.class_name, [item], timeout=self._frame_timeout,
                                            shared=self.sub.shared):
                answered = True
                self._answer(ev, item, answer)
        except (LostAt, StudentRaised) as exc:
            ev.phase = "forward"
            if not answered:
                ev.fault = fault_from(exc, "forward", self.timeout)
            self.sub.abandon()
        finally:
            if answered:
                self._read_back(ev, item)

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

    def gradcheck_ahead(self, args: tuple[Any, ...], options: dict[str, Any],
                        speculate: bool = True) -> ContextManager[Any]:
        """gradcheck's replies computed ahead in the child: those that came with the exercise's
        evaluations (the run-ahead of `Ahead`: with predicted requests, a request they miss asks
        for the student's own run-ahead then), else, with `speculate`, a run-ahead asked for now
        (`Submission.gradcheck_ahead`), else none."""
        mode = "fast" if options.get("fast_mode") else "full"
        if self.ahead is not None:
            child, pairs, predicted = self.ahead
            return self.sub.gradcheck_ahead(self.class_name, args, options, timeout=self.remaining(),
                                            pairs=(child, pairs.get(mode, [])), on_miss=predicted)
        if speculate:
            return self.sub.gradcheck_ahead(self.class_name, args, options, timeout=self.remaining())
        return nullcontext()

    def function(self) -> Callable[..., torch.Tensor]:
        """The student's Function as a local callable (for gradcheck)."""
        return remote_function(self.sub, self.class_name, lambda: self.deadline)

    def _record(self, fault: Fault) -> Fault:
        """Remember a fault that ended the child: the exercise's remaining checks are not run."""
        if fault.kind in ("timeout", "crash", "protocol"):
            self.dead = Fault(fault.kind, f"not run: {fault.message}", fault.traceback)
        return fault
