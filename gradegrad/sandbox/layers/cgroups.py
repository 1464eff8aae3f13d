"""Limits on the evaluator's whole process tree: a cgroup of its own, where the grader can make one.

- cgroup v2 (one unified hierarchy): `memory.max` (and no swap), `memory.oom.group` (an OOM kill
  takes the whole tree), `pids.max`; needs the memory and pids controllers available under the
  grader's own cgroup (root in a VM or a host, or a cgroup delegated with them enabled).
- cgroup v1 (the memory and pids hierarchies, as on hybrid systems): `memory.limit_in_bytes`
  (and memsw where swap is accounted), `pids.max`; needs write access to them (root).
The cgroup is made under the grader's own cgroup by the fork server's intermediate process, which
moves itself into it before it forks the evaluator, so that every process of the tree is born
there. The grader reads its OOM-kill count (`oom_kills`) and peak (`meter.py` resets and reads
it around the calls the `efficiency` check measures), and removes it after the evaluator is
reaped. Where no cgroup can be made, the reason is reported and the grader's watchdog sums the
tree's memory itself (`watchdog.py`).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
PREFIX = "gradegrad-"  # every cgroup gradegrad makes: gradegrad-<pid of its maker>-<random>
STALE = 60.0  # seconds an empty cgroup of gradegrad's stays untouched before `sweep` takes it for a leftover


@dataclass(frozen=True)
class Group:
    """One evaluator's cgroup: its folders (v1: one per controller; v2: one)."""

    version: int
    paths: tuple[str, ...]

    def enter(self, pid: int = 0) -> None:
        for path in self.paths:
            _write(f"{path}/cgroup.procs", str(pid or os.getpid()))

    def oom_kills(self) -> int:
        """How many processes of the tree the kernel killed for memory so far."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for path in self.paths:
            try:
                for line in open(f"{path}/{name}"):
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
            except (OSError, ValueError):
                continue
        return 0

    def memory_path(self) -> str:
        """The folder of the memory controller (v1: the memory hierarchy's; v2: the one folder)."""
        if self.version == 2:
            return self.paths[0]
        return next((p for p in self.paths if p.startswith(f"{ROOT}/memory/")), self.paths[0])

    def peak(self) -> int | None:
        """The tree's peak memory in bytes, as the kernel accounted it."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        for path in self.paths:
            try:
                return int(open(f"{path}/{name}").read())
            except (OSError, ValueError):
                continue
        return None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            try:
                found.update(int(p) for p in open(f"{path}/cgroup.procs").read().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL every process of the tree (v2: at once; v1: each one listed)."""
        if self.version == 2:
            try:
                _write(f"{self.paths[0]}/cgroup.kill", "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def remove(self, wait: float = 2.0) -> None:
        """Remove the folders (after the tree is gone; a few retries while the kernel lets go)."""
        deadline = time.monotonic() + wait
        for path in self.paths:
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    self.kill()
                    time.sleep(0.01)

    def to_json(self) -> dict:
        return {"version": self.version, "paths": list(self.paths)}

    @classmethod
    def from_json(cls, data: object) -> "Group | None":
        if not isinstance(data, dict) or data.get("version") not in (1, 2):
            return None
        paths = data.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith(ROOT + "/") for p in paths):
            return None
        return cls(data["version"], tuple(paths))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _own() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under "" its v2 cgroup."""
    found = {}
    try:
        for line in open("/proc/self/cgroup"):
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                found[name] = path
    except (OSError, ValueError):
        pass
    return found


_SWEPT: list[bool] = []


def sweep_once() -> None:
    """`sweep`, once in this process and the processes forked from it after."""
    if not _SWEPT:
        _SWEPT.append(True)
        sweep()


def sweep(age: float = STALE, prefix: str = PREFIX) -> int:
    """Remove what killed graders left (a grader removes its evaluators' cgroups once it has reaped
    them): cgroups named by gradegrad (`prefix`: those one process made) beside this process's own,
    that hold no process and have not changed for `age` seconds (a fresh empty one may be an
    intermediate's about to enter it). How many."""
    removed, now = 0, time.time()
    for parent in _parents(_own()):
        try:
            names = [name for name in os.listdir(parent) if name.startswith(prefix)]
        except OSError:
            continue
        for name in names:
            path = f"{parent}/{name}"
            try:
                if now - os.stat(path).st_mtime < age or open(f"{path}/cgroup.procs").read().strip():
                    continue
                os.rmdir(path)
                removed += 1
            except OSError:
                continue
    return removed


def _name() -> str:
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"


def _parents(own: dict[str, str]) -> list[str]:
    """The folders this process's evaluators' cgroups are made in (`_own()`): v2, its own cgroup's;
    v1, its memory and its pids cgroups' (in that order)."""
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        return [f"{ROOT}{own.get('', '/')}".rstrip("/")]
    return [f"{ROOT}/{c}{own[c]}".rstrip("/") for c in ("memory", "pids") if c in own]


def create(memory: int | None, pids: int) -> Group:
    """A new cgroup for one evaluator's tree, under this process's own; OSError says why not."""
    own = _own()
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        return _create_v2(_parents(own)[0], memory, pids)
    if os.path.isdir(f"{ROOT}/memory") and os.path.isdir(f"{ROOT}/pids") and "memory" in own and "pids" in own:
        return _create_v1(_parents(own), memory, pids)
    raise OSError(95, "no cgroup memory and pids controllers here")


def _create_v1(parents: list[str], memory: int | None, pids: int) -> Group:
    name, made = _name(), []
    try:
        for parent in parents:  # (memory's, then pids')
            path = f"{parent}/{name}"
            os.mkdir(path)
            made.append(path)
        memory_path, pids_path = made
        if memory:
            _write(f"{memory_path}/memory.limit_in_bytes", str(memory))
            if os.path.exists(f"{memory_path}/memory.memsw.limit_in_bytes"):
                _write(f"{memory_path}/memory.memsw.limit_in_bytes", str(memory))
        _write(f"{pids_path}/pids.max", str(pids))
    except OSError:
        for path in made:
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise
    return Group(1, tuple(made))


def _create_v2(parent: str, memory: int | None, pids: int) -> Group:
    available = open(f"{parent}/cgroup.subtree_control").read().split()
    if not {"memory", "pids"} <= set(available):
        _write(f"{parent}/cgroup.subtree_control", "+memory +pids")  # EBUSY unless the root cgroup
    path = f"{parent}/{_name()}"
    os.mkdir(path)
    try:
        if memory:
            _write(f"{path}/memory.max", str(memory))
            if os.path.exists(f"{path}/memory.swap.max"):
                _write(f"{path}/memory.swap.max", "0")
            _write(f"{path}/memory.oom.group", "1")
        _write(f"{path}/pids.max", str(pids))
    except OSError:
        os.rmdir(path)
        raise
    return Group(2, (path,))
