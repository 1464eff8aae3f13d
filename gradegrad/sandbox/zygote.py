"""The grader's handle on the fork server: one process imports torch once, then forks a fresh
evaluator per request (the server's own code is `forkserver.py`).

Starting a child with `python -c ...` pays `import torch` (about a second here, more on a GPU
machine) every time. The zygote pays it once; each evaluator is a fork of it, so it starts in
milliseconds and is still a fresh process with nothing of any other submission. The console script's
zygote is a fork of the grader itself, taken right after it imported torch, so that the grader,
the zygote and every evaluator share torch's pages (`forget.py`: what that fork forgets first);
any other grading process (with threads, or holding more by then) starts a fresh `python -I`. The zygote never
initialises CUDA (a process must not fork after CUDA is initialised); evaluators do, on request.

Each evaluator is forked twice (zygote -> intermediate -> evaluator) and the intermediate exits,
so the evaluator is re-parented to the grader, a child subreaper: the grader can then wait for it
and read its exit status exactly as for a child it started itself.

The zygote's requests come only from the grader, over a Unix socket pair: the device, and as file
descriptors the request itself (a file only the intermediate reads: the zygote, whose memory
every later evaluator inherits, never holds a submission's path) and the evaluator's four pipe
ends (requests, replies, stdout, stderr).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from gradegrad.sandbox import reaper, scratch
from gradegrad.sandbox.environment import PACKAGE_ROOT, child_env
from gradegrad.sandbox.layers import cgroups

MAX_REQUEST = 1 << 16
STARTUP_TIMEOUT = 120.0
FORKSERVER = "gradegrad.sandbox.forkserver"
SEPARATE = "GRADEGRAD_SEPARATE_FORK_SERVER"  # set: the fork server is never a fork of the grader
ZYGOTE_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
               f"from {FORKSERVER} import main; main(int(sys.argv[2]))")


# ----------------------------------------------------------------- the grader's side


class Zygote:
    """The grader's handle on the fork server (see `zygote.py`); one per grading process.

    `fork`: the fork server is a fork of this process (which must have imported torch, run no
    thread of its own and read nothing a submission may not see: the console script, at its
    start); else a fresh interpreter that imports torch itself."""

    def __init__(self, fork: bool = False) -> None:
        self.token = os.urandom(8).hex()
        self.lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        scratch.sweep_once()  # what killed graders left in the temporary directory
        cgroups.sweep_once()  # and in the cgroup hierarchy
        self.scratch = scratch.make("zygote")
        env = child_env(self.scratch, self.token)
        if fork:
            self.popen: subprocess.Popen | Forked = Forked(theirs.fileno(), env)
        else:
            self.popen = subprocess.Popen(
                [sys.executable, "-I", "-c", ZYGOTE_BOOT, PACKAGE_ROOT, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), cwd=self.scratch, env=env, start_new_session=True)
        theirs.close()
        self.sock = ours
        self.ready = False
        self.namespaces: str | None = "the fork server is not ready"  # None: evaluators get namespaces
        self.wanted: set[str] = set()  # modules the next spawn asks the fork server to import first
        self.warmed: set[str] = set()  # asked for already

    def wait_ready(self) -> None:
        """Block until the zygote has imported torch (it does so while the grader starts up)."""
        if not self.ready:
            self.sock.settimeout(STARTUP_TIMEOUT)
            ready = json.loads(self.sock.recv(4096))  # {"ready": pid, "namespaces": None or why not}
            reason = ready.get("namespaces") if isinstance(ready, dict) else "no answer"
            self.namespaces = None if reason is None else str(reason)[:200]
            self.sock.settimeout(30)
            self.ready = True

    def spawn(self, fds: list[int], request: dict) -> dict | None:
        """Fork a fresh evaluator (`spawn.spawn`; `fds`: the request's file, then the evaluator's;
        `request`: what the zygote itself reads, the device, and here the modules `warm_later`
        asked for, once): what it set up and its pid, as
        `spawn.Born`'s fields; None when the zygote cannot (the caller starts one itself)."""
        with self.lock:
            warm = sorted(self.wanted - self.warmed)
            self.warmed.update(warm)
            if warm:
                request = {**request, "warm": warm}
            try:
                self.wait_ready()
                socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
                reply = json.loads(self.sock.recv(MAX_REQUEST) or b"{}")
            except (OSError, ValueError):
                return None
        return reply if isinstance(reply, dict) else None

    def close(self) -> None:
        """The zygote holds no state worth a clean exit: kill it, and remove its folder."""
        if self.popen.returncode is None:
            self.sock.close()
            self.popen.kill()
            self.popen.wait()
        scratch.remove_tree(self.scratch)  # as an evaluator's: whatever was done to it


class Forked:
    """The fork server as a fork of this process, with the part of `subprocess.Popen` that
    `Zygote` uses (pid, poll, kill, wait)."""

    def __init__(self, sock_fd: int, env: dict[str, str]) -> None:
        self.returncode: int | None = None
        pid = os.fork()
        if pid == 0:
            try:  # by name, as ZYGOTE_BOOT does: only the fork imports the fork server's side, never the grader
                importlib.import_module(FORKSERVER).forked(sock_fd, env, PACKAGE_ROOT)
            finally:
                os._exit(0)
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:  # noqa: ARG002  (killed first: it ends)
        if self.returncode is None:
            self._reap(0)
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere (a sweep): gone all the same
            self.returncode = -signal.SIGKILL
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)


_ZYGOTE: Zygote | None = None
_ZYGOTE_FAILED = False


def shutdown() -> None:
    """Stop the fork server now (it is also stopped at exit)."""
    if _ZYGOTE is not None:
        _ZYGOTE.close()


def warm_later(modules: set[str]) -> None:
    """Have the fork server import `modules` (those of its allowlist, `forkserver.WARMABLE`) before
    it forks the next evaluator, so that every evaluator after it has them: what an evaluator of
    this rubric imports on first use (`registry.warm_for`), paid once instead of by each one.
    The current evaluator imports its own; nothing is asked of a fork server not started."""
    if _ZYGOTE is not None:
        with _ZYGOTE.lock:
            _ZYGOTE.wanted.update(modules)


def prestart(fork: bool = False) -> None:
    """Start the zygote now: a fresh interpreter, whose `import torch` overlaps with this
    process's own; or, with `fork` (the console script, once it has imported torch and before it
    reads anything but its command line and environment), a fork of this process, which shares
    torch's pages with it instead of importing its own. A process with threads of its own by
    then gets a fresh interpreter all the same (a fork would copy whatever locks they held), and
    so does one whose environment sets GRADEGRAD_SEPARATE_FORK_SERVER=1 (SECURITY.md: what a
    fork shares with the grader)."""
    fork = fork and not os.environ.get(SEPARATE) and "torch" in sys.modules and threading.active_count() == 1
    with _START_LOCK:
        _zygote(False, fork)


def zygote_server(wait: bool = True) -> Zygote | None:
    """The shared fork server, started on first use (a fresh interpreter); None where it cannot
    work here.

    It needs Linux, fork, and the grader to be a child subreaper (so that forked evaluators are
    re-parented to it). Set GRADEGRAD_NO_ZYGOTE=1 to start every child with a fresh interpreter.
    """
    with _START_LOCK:
        return _zygote(wait)


_START_LOCK = threading.Lock()


def namespaces_unavailable() -> str | None:
    """None when evaluators get their own namespaces here, else why not (for --isolation strict)."""
    if os.environ.get("GRADEGRAD_NO_ZYGOTE"):
        return "GRADEGRAD_NO_ZYGOTE is set: evaluators start without the fork server"
    if not reaper.enable_subreaper():
        return "this system has no child subreapers (Linux only)"
    from gradegrad.sandbox.layers.namespaces import probe

    return probe()


def protect_grader() -> None:
    """Before any evaluator: the grader is not dumpable (its /proc files, environ included, are
    root's, so an evaluator of the same user cannot read them), and the OOM killer spares it
    first where it may say so (root)."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    except (OSError, AttributeError):
        pass
    from gradegrad.sandbox.layers.limits import protect_grader as spare

    spare()


def _zygote(wait: bool, fork: bool = False) -> Zygote | None:
    global _ZYGOTE, _ZYGOTE_FAILED
    if _ZYGOTE is not None and _ZYGOTE.popen.poll() is None:
        if wait:
            _ZYGOTE.wait_ready()
        return _ZYGOTE
    if _ZYGOTE_FAILED or os.environ.get("GRADEGRAD_NO_ZYGOTE") or not reaper.enable_subreaper():
        return None
    protect_grader()
    try:
        with reaper.LOCK:
            _ZYGOTE = Zygote(fork)
            reaper.LIVE.add(_ZYGOTE.popen.pid)
        atexit.register(_ZYGOTE.close)
        if wait:
            _ZYGOTE.wait_ready()
    except (OSError, ValueError, socket.timeout):
        _ZYGOTE_FAILED = True
        return None
    return _ZYGOTE
