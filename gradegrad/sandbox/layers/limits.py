"""Limits of the evaluator's process tree that need no cgroup: rlimits and the OOM killer's order.

- RLIMIT_NPROC bounds the tree's processes: it counts per user, and the evaluator's user is its
  own (a uid of its own for a root grader; inside a user namespace the count is kept per
  namespace). It does nothing for root, which is why the evaluator is never root.
- RLIMIT_FSIZE bounds one file; RLIMIT_CPU one process's CPU time; RLIMIT_CORE: no core dumps.
- RLIMIT_AS bounds one process's address space (CPU only: CUDA reserves far more than it uses);
  set at the `confine` request, after the device is set up, to what is mapped then plus the
  memory limit.
- oom_score_adj 1000: when memory runs out anyway, the kernel kills an evaluator's process first;
  the grader lowers its own where it may (root).
The tree as a whole is bounded by a cgroup where one can be made (`cgroups.py`), else by the
grader's watchdog (`watchdog.py`).
"""

from __future__ import annotations

import os
import resource

NPROC = 512  # processes and threads of one evaluator's tree
GRADER_OOM_SCORE_ADJ = -500


def apply(nproc: int = NPROC, file_bytes: int | None = None, cpu_seconds: float | None = None) -> list[str]:
    """Set the tree's rlimits in this process (inherited by everything it starts); layer names."""
    active = []
    for name, limit, value in (("rlimit-nproc", resource.RLIMIT_NPROC, nproc),
                               ("rlimit-fsize", resource.RLIMIT_FSIZE, file_bytes),
                               ("rlimit-cpu", resource.RLIMIT_CPU, int(cpu_seconds) + 1 if cpu_seconds else None),
                               ("", resource.RLIMIT_CORE, 0)):
        if value is None:
            continue
        try:
            hard = value + 5 if limit == resource.RLIMIT_CPU else value  # SIGXCPU, then SIGKILL
            resource.setrlimit(limit, (value, hard))
        except (ValueError, OSError):
            continue
        if name:
            active.append(name)
    return active


def limit_address_space(memory: int | None) -> list[str]:
    """RLIMIT_AS: what this process maps now, plus `memory`."""
    if not memory:
        return []
    mapped = 0
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    limit = mapped + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return ["rlimit-as"]


def oom_first() -> list[str]:
    """This process (and what it starts) is the OOM killer's first choice."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
        return ["oom-first"]
    except OSError:
        return []


def protect_grader() -> bool:
    """Make the OOM killer spare the grader before an evaluator (root only; False elsewhere)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(GRADER_OOM_SCORE_ADJ))
        return True
    except OSError:
        return False
