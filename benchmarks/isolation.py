"""What isolation costs on this machine, apart from the checks themselves (printed as JSON):

- `process_ms`: one fresh evaluator with nothing to grade (fork from the zygote, confine, import
  the submission, exit), in CPU milliseconds of the grader, the child and the zygote together,
  and its wall time;
- `round_trip_us`: one forward-and-backward request to a child and its reply (the `Dot` of
  complete.py, its inputs in shared memory and read back), in CPU microseconds of both
  processes, against the same call in-process.

    python benchmarks/isolation.py
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from gradegrad.sandbox import zygote
from gradegrad.sandbox.process import Limits
from gradegrad.sandbox.remote import Item, Submission

ROOT = Path(__file__).resolve().parent.parent
COMPLETE = ROOT / "submissions_example" / "complete.py"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a live process (and of the children it reaped)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15 if children else 13]) / TICK


def _own() -> float:
    us, them = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return us.ru_utime + us.ru_stime + them.ru_utime + them.ru_stime


def process_cost(n: int = 30) -> tuple[float, float]:
    """(CPU ms, wall ms) of one evaluator that only loads the submission."""
    server = zygote.zygote_server()

    def one() -> None:
        sub = Submission(COMPLETE, "cpu", Limits())
        sub.load()
        sub.close()

    one()
    z0, c0, t0 = _cpu(server.popen.pid, children=True), _own(), time.perf_counter()
    for _ in range(n):
        one()
    wall = time.perf_counter() - t0
    return (_cpu(server.popen.pid, children=True) - z0 + _own() - c0) / n * 1e3, wall / n * 1e3


def _call(sub: Submission, x: list[torch.Tensor], g: torch.Tensor) -> None:
    """One evaluation (forward, then backward) in one request, as the Runner makes it."""
    item = Item(x, [True, True], g)
    for _ in sub.evaluate("Dot", [item], timeout=lambda phase: 10, shared=sub.shared):
        pass
    [sub.shared.read(ref) for ref in item.arg_refs]  # the read-back


def round_trip_cost(n: int = 2000) -> tuple[float, float]:
    """(CPU µs of a forward+backward request through a child, CPU µs of the same call in-process)."""
    x = [torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    g = torch.randn((), dtype=torch.float64)
    sub = Submission(COMPLETE, "cpu", Limits())
    sub.load()
    for _ in range(100):
        _call(sub, x, g)
    start, child0 = _own(), _cpu(sub.child.pid)
    for _ in range(n):
        _call(sub, x, g)
    isolated = (_own() - start + _cpu(sub.child.pid) - child0) / n * 1e6
    sub.close()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from inprocess import InProcessChild

    from gradegrad.sandbox import remote

    remote.Child = InProcessChild  # type: ignore[misc]
    torch.set_num_threads(1)
    local = Submission(COMPLETE, "cpu", Limits())
    local.load()
    for _ in range(100):
        _call(local, x, g)
    start = time.process_time()
    for _ in range(n):
        _call(local, x, g)
    return isolated, (time.process_time() - start) / n * 1e6


if __name__ == "__main__":
    cpu, wall = process_cost()
    isolated, local = round_trip_cost()
    print(json.dumps({"process_ms": round(cpu, 1), "process_wall_ms": round(wall, 1),
                      "round_trip_us": round(isolated), "in_process_us": round(local)}))
    zygote.shutdown()
