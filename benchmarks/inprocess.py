"""The baselines of benchmarks/throughput.py: gradegrad's own checks, with no isolation at all.

`InProcessChild` answers the child's requests by calling the evaluator's handlers directly in
this process (no fork, no pipe, no serialisation, no sandbox): what grading costs when the
submission is imported into the grader, as a naive autograder does. Same checks, same inputs.

    python benchmarks/inprocess.py FILE...     # grade each file in this one process
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import sys
from collections import deque
from pathlib import Path
from typing import Any

import torch

from gradegrad.catalog import load_catalog, resolve_rubric
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.report import StudentOutput
from gradegrad.sandbox import remote
from gradegrad.sandbox.child import Evaluator
from gradegrad.sandbox.process import StudentRaised
from gradegrad.sandbox.protocol import Message
from gradegrad.sandbox.shared import SharedView


class _Frames:
    """Both ends of the channel here: what the evaluator sends is queued for the grader (`recv`);
    what the evaluator reads inside a request (the `continue` of a measurement) is answered at once."""

    def __init__(self) -> None:
        self.queue: deque[Message] = deque()

    def send(self, header: dict[str, Any], tensors: list[torch.Tensor] = (), deadline: float | None = None) -> None:
        self.queue.append(Message(header, list(tensors)))

    def recv(self, deadline: float | None = None) -> Message:
        return self.queue.popleft()


class _Evaluators(_Frames):
    def __init__(self, frames: _Frames) -> None:
        self.queue = frames.queue

    def recv(self, deadline: float | None = None) -> Message:
        return Message({"op": "continue"})


class InProcessChild:
    """Stands in for `sandbox.process.Child`: the evaluator runs in this very process."""

    def __init__(self, device: str = "cpu", extra_fds: tuple[int, ...] = (), **ignored: Any) -> None:
        self.channel = _Frames()
        self.evaluator = Evaluator(channel=_Evaluators(self.channel))
        self.extra_fds = extra_fds
        self.alive = True
        self.pid, self.cgroup, self.ahead, self.on_miss = os.getpid(), None, {}, None

    def request(self, header: dict[str, Any], tensors: list[torch.Tensor] = (), *, timeout: float,
                expect_ready: bool = False) -> Message:
        if header.get("op") == "continue":  # the rest of a measurement, already computed
            return self.channel.recv()
        if header.get("op") == "confine":
            header = {**header, "confine": False, "shared": False}
            if self.extra_fds:
                self.evaluator.shared = SharedView(self.extra_fds[0])
        ahead = header.get("ahead") if header.get("op") == "evaluate" else None
        if ahead is not None:  # no run-ahead: every call is already a plain function call here
            header = {**header, "ahead": None}
        reply, out = self.evaluator.handle(Message(header, list(tensors)))
        self.channel.queue.append(Message(reply, out))
        if ahead is not None:
            at = next((i for i, m in enumerate(self.channel.queue) if m.header.get("done") or
                       (m.header.get("item", -1) >= header["ahead_at"])), len(self.channel.queue))
            self.channel.queue.insert(at, Message({"ok": True, "phase": "ahead", "ahead": {}}))
        first = self.channel.queue.popleft()
        if not first.header.get("ok"):
            self.channel.queue.clear()
            raise StudentRaised(first.header.get("error", {}))
        return first

    @contextmanager
    def faults(self, timeout: float):
        yield  # nothing travels: no timeout, no lost channel, no malformed frame

    def speculate(self, header: dict[str, Any], tensors: list[torch.Tensor], *, timeout: float) -> int:
        return 0  # no run-ahead: every call is already a plain function call here

    def take_ahead(self, pairs: list) -> int:
        return 0

    def kill(self) -> None:
        self.channel.queue.clear()

    def close(self) -> StudentOutput:
        return StudentOutput()


def grade_in_process(paths: list[Path], rubric: str = "all") -> list[float]:
    remote.Child = InProcessChild  # type: ignore[misc]  (a benchmark, not the product)
    catalog = load_catalog()
    chosen = resolve_rubric(rubric, catalog)
    return [grade(p, chosen, catalog, Options()).score for p in paths]


if __name__ == "__main__":
    for path, score in zip(sys.argv[1:], grade_in_process([Path(a) for a in sys.argv[1:]])):
        print(f"{path}: {score:g}")
