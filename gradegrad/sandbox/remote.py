"""The grader's view of a submission: load it in a child, restart it after a fault, keep its output.

`Submission` is the request API of `requests.Requests` over a live `process.Child`: it restarts
its child after a crash or a timeout (the next exercise starts fresh) and keeps everything the
submission printed. It owns the memory it shares with its evaluators (`shared.py`: the inputs it
reads back), given to each one as fd 5, and reads the kernel's account of their memory
(`meter.py`). The facts its requests return, and `remote_function` (the local proxy Function
gradcheck runs on), live in `requests.py`; they are re-exported here.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from gradegrad.report import StudentOutput
from gradegrad.sandbox import meter
from gradegrad.sandbox.process import OUTPUT_LIMIT, STARTUP_TIMEOUT, Child, Limits
from gradegrad.sandbox.protocol import MAX_EXERCISE_BYTES, Message
from gradegrad.sandbox.requests import (AheadPairs, Answer, BackwardResult, ChildFault, ClassInfo,  # noqa: F401
                                       ForwardResult, InPlace, Item, Loaded, LostAt, Measured, Requests, SecondOrder,
                                       StudentRaised, WrongDtype, WrongOutput, _class_info, gradcheck_spec,
                                       raise_for_error, remote_function)
from gradegrad.sandbox.shared import SharedMemory

LOAD_MARGIN = 10.0  # seconds past --load-timeout before the child is killed (it stops itself at the limit)
MAX_PROBLEMS = 20  # load problems kept


@dataclass
class Submission(Requests):
    """A submission loaded in a child process, restarted on demand."""

    path: Path
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    child: Child | None = None
    outputs: list[StudentOutput] = field(default_factory=list)
    protections: tuple[str, ...] = ()  # the layers of containment active before the submission's code ran
    missing_protections: tuple[str, ...] = ()  # those missing here, each with the reason
    received: int = 0  # bytes of replies since the exercise began (`begin_exercise`), capped
    load_seconds: float = 0.0  # spent (re)importing the submission after a fault; no exercise's time
    shared: SharedMemory | None = None  # inputs the grader reads back (fd 5 of every evaluator)

    def begin_exercise(self) -> None:
        """Start counting the bytes of replies anew (an exercise may receive MAX_EXERCISE_BYTES), and
        the shared memory's places (no earlier exercise's evaluator code may still hold one)."""
        self.received = 0
        if self.shared is not None:
            self.shared.reset()

    def _count(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received > MAX_EXERCISE_BYTES:
            self.stop_child()
            raise ChildFault("protocol", f"the evaluator sent more than {MAX_EXERCISE_BYTES >> 20} MiB of "
                                         "replies for one exercise")

    def load(self) -> Loaded:
        """(Re)start the child and import the submission in it."""
        self.stop_child()
        path = str(Path(self.path).resolve())
        if self.shared is None:
            self.shared = SharedMemory()
        try:
            self.child = Child(self.device, limits=self.limits, submission=path, extra_fds=(self.shared.fd,))
            confined = self.child.request({"op": "confine", "path": path, "device": self.device,
                                           "memory": self.limits.memory, "layers": list(getattr(self.child, "layers", ())),
                                           "confine": self.limits.confine and self.limits.isolation != "none",
                                           "shared": True}, timeout=STARTUP_TIMEOUT)
            self.protections = (*getattr(self.child, "layers", ()),
                                *(str(p) for p in confined.header.get("protections", []) if isinstance(p, str)))
            self.missing_protections = (*getattr(self.child, "missing", ()),
                                        *(str(p) for p in confined.header.get("missing", []) if isinstance(p, str)))
            reply = self.child.request({"op": "load", "path": path, "seconds": self.limits.load_timeout},
                                       timeout=self.limits.load_timeout + LOAD_MARGIN)
        except StudentRaised as exc:
            return Loaded(error=exc.error)
        except ChildFault as exc:
            message = (f"import/top-level code took too long: it did not finish within --load-timeout "
                       f"{self.limits.load_timeout:g} s" if exc.kind == "timeout" else
                       f"while importing the submission: {exc}")
            return Loaded(error={"kind": exc.kind, "message": message, "traceback": ""})
        classes = reply.header.get("classes")
        if not isinstance(classes, list):
            return Loaded(error={"kind": "protocol", "message": "invalid class list", "traceback": ""})
        functions = reply.header.get("functions") if isinstance(reply.header.get("functions"), list) else []
        problems = reply.header.get("problems") if isinstance(reply.header.get("problems"), list) else []
        return Loaded(classes=tuple(_class_info(c) for c in classes if isinstance(c, dict)),
                      functions=tuple(_class_info(c) for c in functions[:1000] if isinstance(c, dict)),
                      problems=tuple(p for p in problems[:MAX_PROBLEMS] if isinstance(p, dict)))

    def ensure(self) -> None:
        """Start a fresh child if the last one was killed (after a timeout or a crash).

        The import's time is counted in `load_seconds`, which an exercise's budget leaves out; an
        import that fails this time is a fault that says so."""
        if self.child is None or not self.child.alive:
            start = time.monotonic()
            try:
                loaded = self.load()
            finally:
                self.load_seconds += time.monotonic() - start
            if loaded.error:
                self.stop_child()
                why = str(loaded.error.get("message") or loaded.error.get("type") or loaded.error.get("kind"))
                raise ChildFault("crash", "importing the submission again in a fresh process (after the previous "
                                 f"one was stopped) failed: {why[:300]}")

    def _next_frame(self, timeout: float) -> Message:
        """The next frame of a reply of several, with the deadline and the kill of `Child.request`."""
        child = self.child
        if child is None or not child.alive:
            raise ChildFault("crash", "the evaluator is no longer running")
        deadline = time.monotonic() + max(timeout, 0.0)
        with child.faults(timeout):
            reply = child.channel.recv(deadline)
        self._count(reply.nbytes)
        return raise_for_error(reply)

    def abandon(self) -> None:
        """Stop the evaluator in the middle of a reply of several frames (what is left of it unread
        would answer the next request): the next request starts a fresh one."""
        if self.child is not None:
            self.child.kill()

    @contextmanager
    def gradcheck_ahead(self, class_name: str, args: Sequence[Any], options: dict[str, Any], *,
                        timeout: float, pairs: tuple[Child, list[tuple[bytes, bytes]]] | None = None,
                        on_miss: bool = False) -> Iterator[int]:
        """While open, the replies of the child's run-ahead of `gradcheck(**options)` on `args`,
        through `remote_function`'s proxy, answer the grader's own gradcheck (`Child.speculate`);
        on exit, those left unused are dropped. Yields how many came back.

        `pairs`: a run-ahead that came with an earlier reply (`evaluate`), and the evaluator that
        sent it; used only while that very evaluator still answers (its handles are its own).
        `on_miss`: those pairs answer predicted requests; the first request they lack asks the
        child for a run-ahead of its own then (handles are numbered alike in both)."""
        self.ensure()
        child = self.child
        try:
            if pairs is not None:
                count = child.take_ahead(pairs[1]) if pairs[0] is child else 0
                if on_miss and pairs[0] is child:  # gradcheck moves its inputs in place: as they are now
                    frozen = [a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
                              for a in args]
                    child.on_miss = lambda: self._speculate(child, class_name, frozen, options, timeout)
            else:
                count = self._speculate(child, class_name, args, options, timeout)
            yield count
        finally:
            child.ahead.clear()
            child.on_miss = None

    def _speculate(self, child: Child, class_name: str, args: Sequence[Any], options: dict[str, Any],
                   timeout: float) -> int:
        """Ask `child` to run `gradcheck(**options)` ahead now; how many pairs came back."""
        tensors: list[torch.Tensor] = []
        header = {"op": "speculate", "class": class_name, **gradcheck_spec(args, options, tensors)}
        count = child.speculate(header, tensors, timeout=timeout)
        self._count(sum(len(k) + sum(len(r) for r in v) for k, v in child.ahead.items()))
        return count

    def measure(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool],
                grad_output: torch.Tensor, probes: Sequence[torch.Tensor | None], *, timeout: float,
                **_: Any) -> Measured:
        """`Requests.measure` with this evaluator's memory as the kernel accounts it, and its inputs
        in shared memory (so that decoding the request allocates nothing the meter would count)."""
        self.ensure()
        return super().measure(class_name, args, requires_grad, grad_output, probes, timeout=timeout,
                               meter=meter.meter(self.child.pid, self.child.cgroup), shared=self.shared)

    def _request(self, header: dict[str, Any], tensors: list[torch.Tensor], timeout: float) -> Message:
        self.ensure()
        reply = self.child.request(header, tensors, timeout=timeout)
        self._count(reply.nbytes)
        return reply

    def stop_child(self) -> None:
        if self.child is not None:
            self.outputs.append(self.child.close())
            self.child = None

    def close(self) -> StudentOutput:
        """Stop the child and return everything the submission printed, bounded."""
        self.stop_child()
        if self.shared is not None:
            self.shared.close()
            self.shared = None
        stdout = "".join(o.stdout for o in self.outputs)[:OUTPUT_LIMIT]
        stderr = "".join(o.stderr for o in self.outputs)[:OUTPUT_LIMIT]
        return StudentOutput(stdout, stderr, any(o.truncated for o in self.outputs))

    def __enter__(self) -> "Submission":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
