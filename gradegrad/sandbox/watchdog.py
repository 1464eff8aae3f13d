"""The grader's watch over its evaluators' memory, for what no kernel limit stops by itself.

Every `INTERVAL` seconds, for each live evaluator:
- with a cgroup: when the kernel killed any of its processes for memory (the tree reached the
  limit; cgroup v1 kills one process, v2 the whole group), the whole tree is stopped;
- without one: the memory its processes hold privately (Private_Clean + Private_Dirty of
  /proc/<pid>/smaps_rollup, summed over the evaluator and its descendants) is compared with the
  limit, and the tree is stopped above it. smaps_rollup costs milliseconds for a process that
  maps torch, so it is read only when a cheap upper bound (resident memory not backed by files,
  /proc/<pid>/statm, which also counts pages shared with the fork server) is over the limit. This is a sampling watchdog, not a kernel limit: a
  tree can pass the limit by what it allocates within one interval, and every evaluator process
  is the OOM killer's first choice meanwhile (`layers/limits.oom_first`).
The evaluator is stopped with `Child.stop_for("memory")`; the grader's next read of its reply
then fails, and the fault names the memory limit.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

INTERVAL = 0.05


class Watched(Protocol):
    pid: int
    alive: bool

    def stop_for(self, reason: str) -> None: ...


class _Entry:
    def __init__(self, child: Watched, limit: int | None, group) -> None:
        self.child, self.limit, self.group = child, limit, group
        self.kills = group.oom_kills() if group is not None else 0


_LOCK = threading.Lock()
_WATCHED: dict[int, _Entry] = {}
_THREAD: threading.Thread | None = None


def watch(child: Watched, limit: int | None, group) -> None:
    """Watch `child` (with its cgroup, or None) until `forget`."""
    global _THREAD
    if limit is None and group is None:
        return
    with _LOCK:
        _WATCHED[id(child)] = _Entry(child, limit, group)
        if _THREAD is None or not _THREAD.is_alive():
            _THREAD = threading.Thread(target=_run, name="gradegrad-watchdog", daemon=True)
            _THREAD.start()


def forget(child: Watched) -> None:
    with _LOCK:
        _WATCHED.pop(id(child), None)


def _run() -> None:
    while True:
        time.sleep(INTERVAL)
        with _LOCK:
            entries = list(_WATCHED.values())
        if not entries:
            continue
        parents = None  # one scan of /proc per round, for every tree without a cgroup
        for entry in entries:
            if not entry.child.alive:
                continue
            if entry.group is not None:
                over = entry.group.oom_kills() > entry.kills
            else:
                if parents is None and not _CHILDREN_FILES:
                    parents = children_of()
                over = over_limit(tree(entry.child.pid, parents), entry.limit)
            if over:
                entry.child.stop_for("memory")


def children_of() -> dict[int, list[int]]:
    """Children of every process, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def tree(pid: int, parents: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and its descendants: from /proc/<pid>/task/<tid>/children where the kernel has them
    (no scan of /proc), else from `parents` (`children_of()`)."""
    if not _CHILDREN_FILES:
        return descendants(pid, parents if parents is not None else children_of())
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def private_bytes(pid: int) -> int:
    """Memory only this process holds (what killing it frees), from smaps_rollup."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return total


_PAGE = os.sysconf("SC_PAGE_SIZE")


def anonymous_bytes(pid: int) -> int:
    """Resident memory not backed by files (an upper bound of `private_bytes`, cheap to read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            fields = fh.read().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def over_limit(pids: list[int], limit: int) -> bool:
    if sum(anonymous_bytes(p) for p in pids) <= limit:
        return False
    return sum(private_bytes(p) for p in pids) > limit


def tree_memory(pid: int) -> int:
    """The memory a process tree holds privately (for tests and reports)."""
    return sum(private_bytes(p) for p in tree(pid))


def _after_fork() -> None:
    global _THREAD, _LOCK
    _THREAD, _LOCK = None, threading.Lock()
    _WATCHED.clear()


os.register_at_fork(after_in_child=_after_fork)
