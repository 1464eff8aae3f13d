"""The baselines of benchmarks/throughput.py: gradegrad's own checks, with no isolation at all.

`InProcessChild` answers the child's requests by calling the evaluator's handlers directly in
this process (no fork, no pipe, no serialisation, no sandbox): what grading costs when the
submission is imported into the grader, as a naive autograder does. Same checks, same inputs.

    python benchmarks/inprocess.py FILE...     # grade each file in this one process
"""

from __future__ import annotations

import sys
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


class InProcessChild:
    """Stands in for `sandbox.process.Child`: the evaluator runs in this very process."""

    def __init__(self, device: str = "cpu", **ignored: Any) -> None:
        self.evaluator = Evaluator(channel=None)
        self.alive = True

    def request(self, header: dict[str, Any], tensors: list[torch.Tensor] = (), *, timeout: float,
                expect_ready: bool = False) -> Message:
        if header.get("op") == "confine":
            header = {**header, "confine": False}
        reply, out = self.evaluator.handle(Message(header, list(tensors)))
        if not reply.get("ok"):
            raise StudentRaised(reply.get("error", {}))
        return Message(reply, out)

    def speculate(self, header: dict[str, Any], tensors: list[torch.Tensor], *, timeout: float) -> int:
        return 0  # no run-ahead: every call is already a plain function call here

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
