"""Make sure no process a submission started outlives its grading, where no PID namespace does it.

The grader becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that forked evaluators
come back to it (it waits for them), and so that, without a PID namespace (where an evaluator's
whole tree dies with it), a submission's orphaned or daemonised processes are re-parented to it
instead of to init. After such a child is killed, `sweep` finds every process that (a) carries
the child's token in its environment, (b) is in the child's session, or (c) was re-parented to
the grader and is not one of its live evaluators; it stops each one found (SIGSTOP: a stopped
process forks no more) and scans again until a scan finds nothing new, then kills them all, and
starts over until nothing is left or `seconds` have passed, so that a fork chain cannot outrun it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

from gradegrad.sandbox.environment import TOKEN_VAR

PR_SET_CHILD_SUBREAPER = 36
LOCK = threading.RLock()  # held while starting a child and while sweeping
LIVE: set[int] = set()  # pids of evaluator processes that are still ours
_enabled = False


def enable_subreaper() -> bool:
    global _enabled
    if not _enabled:
        try:
            _enabled = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _enabled = False
    return _enabled


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, ppid, pgrp, session, ...:
    field N of proc(5) at index N - 3); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields if len(fields) > 19 else None


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, session id, state) of every process we can see."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) is not None:
            found.append((int(entry), int(fields[1]), int(fields[3]), fields[0].decode(errors="replace")))
    return found


def _has_token(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"{TOKEN_VAR}={token}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def _strays(token: str, sid: int) -> list[tuple[int, int]]:
    me = os.getpid()
    strays = []
    for pid, ppid, session, state in _processes():
        if pid == me or pid in LIVE:
            continue
        orphan = _enabled and ppid == me
        if state == "Z":
            if orphan:
                strays.append((pid, ppid))  # a zombie re-parented to us: reap it
            continue
        if session == sid or orphan or _has_token(pid, token):
            strays.append((pid, ppid))
    return strays


def signal_all(pids: list[int], sig: int) -> None:
    """Send `sig` to each of `pids` (processes, never 0 or a group) still there."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(strays: list[tuple[int, int]]) -> None:
    for pid, ppid in strays:
        if ppid == os.getpid():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def sweep(token: str, sid: int, seconds: float = 10.0) -> int:
    """SIGKILL what is left of one child's processes; returns how many were killed."""
    if not os.path.isdir("/proc"):
        return 0
    killed = 0
    deadline = time.monotonic() + seconds
    with LOCK:
        while time.monotonic() < deadline:
            strays = _strays(token, sid)
            if not strays:
                break
            stopped: dict[int, int] = {}
            while strays and time.monotonic() < deadline:  # freeze the tree: stop until nothing new
                signal_all([pid for pid, _ in strays], signal.SIGSTOP)
                stopped.update(strays)
                strays = [(pid, ppid) for pid, ppid in _strays(token, sid) if pid not in stopped]
            signal_all(list(stopped), signal.SIGKILL)
            killed += len(stopped)
            time.sleep(0.002)
            _reap(list(stopped.items()))
    return killed
