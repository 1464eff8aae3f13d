"""The kernel's account of an evaluator's memory: reset it, let the student's code run, read the peak.

For the `efficiency` check, the grader measures what forward and backward cost with numbers it
reads itself, never with the evaluator's own count:
- with a cgroup (`layers/cgroups.py`): the tree's peak charge, `memory.max_usage_in_bytes` (v1,
  reset by writing 0) or `memory.peak` (v2, reset for the grader's open file by writing to it,
  Linux 6.12+); it sees every process of the tree, including those that ended meanwhile;
- without one: each process's high-water mark of resident memory (`VmHWM` in
  /proc/<pid>/status, reset to the current resident size by writing 5 to /proc/<pid>/clear_refs),
  summed over the processes of the tree alive when it is read.
`read()` is the peak above the level at the last `reset()`. A peak only grows between resets and
only the grader resets it, so nothing the evaluator does can make a call look smaller than the
memory it touched (only larger, which costs its own points).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gradegrad.sandbox import watchdog
from gradegrad.sandbox.layers.cgroups import Group


class Unmeasurable(Exception):
    """The kernel's account cannot be read or reset here."""


@dataclass
class CgroupPeak:
    """The peak charge of the tree's cgroup (v1 or v2)."""

    group: Group
    base: int = 0
    fd: int | None = None  # v2: memory.peak, opened once: a reset holds for this open file only

    @property
    def source(self) -> str:
        return f"cgroup v{self.group.version} peak"

    def _value(self) -> int:
        if self.group.version == 1:
            return int(open(f"{self.group.memory_path()}/memory.max_usage_in_bytes").read())
        return int(os.pread(self.fd, 64, 0))

    def reset(self) -> None:
        try:
            if self.group.version == 1:
                with open(f"{self.group.memory_path()}/memory.max_usage_in_bytes", "w") as fh:
                    fh.write("0")
            else:
                if self.fd is None:
                    self.fd = os.open(f"{self.group.memory_path()}/memory.peak", os.O_RDWR | os.O_CLOEXEC)
                os.pwrite(self.fd, b"reset\n", 0)
            self.base = self._value()
        except (OSError, ValueError) as exc:
            raise Unmeasurable(f"cgroup peak ({exc})") from None

    def read(self) -> int:
        try:
            return max(0, self._value() - self.base)
        except (OSError, ValueError) as exc:
            raise Unmeasurable(f"cgroup peak ({exc})") from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class ProcessPeak:
    """The high-water marks of resident memory of the tree's processes (no cgroup)."""

    pid: int
    base: dict[int, int] = field(default_factory=dict)
    source: str = "VmHWM of its processes"

    def reset(self) -> None:
        self.base = {}
        for pid in watchdog.tree(self.pid):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
                self.base[pid] = _hwm(pid)
            except (OSError, ValueError) as exc:
                if pid == self.pid:
                    raise Unmeasurable(f"VmHWM ({exc})") from None

    def read(self) -> int:
        total = 0
        for pid in watchdog.tree(self.pid):
            try:
                total += max(0, _hwm(pid) - self.base.get(pid, 0))
            except (OSError, ValueError):
                continue  # gone meanwhile
        return total

    def close(self) -> None:
        pass


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise ValueError("no VmHWM")


def meter(pid: int, group: Group | None) -> CgroupPeak | ProcessPeak:
    """The best account of the tree of `pid` (in `group`, if it has one) this machine gives."""
    if group is not None:
        peak = CgroupPeak(group)
        try:
            peak.reset()
            return peak
        except Unmeasurable:
            peak.close()
    return ProcessPeak(pid)
