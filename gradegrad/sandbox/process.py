"""Start and stop child evaluators: the grader's side of one evaluator's life.

Knows nothing about exercises. A `Child` is one Python process that has imported torch and
serves requests over a `protocol.Channel`, born in its own namespaces, cgroup and user where the
kernel allows (`spawn.py`, in the fork server); its stdout and stderr are drained by threads into
bounded buffers (the student's output, shown but never parsed). Every read from the child has a
deadline; when a child misbehaves it is killed with SIGKILL, and with it its whole tree: its PID
namespace ends with it (without one: its process group, its cgroup, and the reaper's sweep).
The watchdog (`watchdog.py`) stops a tree over its memory limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import torch

from gradegrad.report import StudentOutput
from gradegrad.sandbox import reaper, scratch, watchdog
from gradegrad.sandbox.environment import PACKAGE_ROOT, child_env
from gradegrad.sandbox.layers.cgroups import Group
from gradegrad.sandbox.requests import ChildFault, StudentRaised, raise_for_error  # noqa: F401
from gradegrad.sandbox.zygote import zygote_server
from gradegrad.sandbox.protocol import (Channel, ChannelClosed, ChannelTimeout, Message, ProtocolError, encode_frame,
                                       parse_frame, tensor_frame)

BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from gradegrad.sandbox.spawn import plain; plain(sys.argv[2:])")
ISOLATION = ("auto", "strict", "none")
STARTUP_TIMEOUT = 120.0  # importing torch on a cold machine; not the student's time
OUTPUT_LIMIT = 64 << 10  # bytes of stdout and of stderr kept per submission


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0  # seconds per exercise (and for loading the submission)
    memory: int | None = 4 << 30  # bytes for the evaluator's whole process tree (and per process, CPU
    #                               only, of address space beyond what it maps once torch is loaded)
    submission_timeout: float = 600.0  # seconds for all the exercises of one submission
    confine: bool = True  # apply Landlock/seccomp where the kernel offers them (False: as isolation none)
    isolation: str = "auto"  # auto: every layer the kernel allows; strict: namespaces or nothing; none
    scratch: int = 256 << 20  # bytes of the evaluator's private scratch folder (and of any one file)
    processes: int = 512  # processes and threads of one evaluator's tree
    load_timeout: float = 60.0  # seconds for the submission's top-level code (import, notebook cells)


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping the first `limit` bytes, so a flood never blocks the child."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit = stream, limit
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            self.total += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def _spawn(server, request: dict, fds: list[int]) -> dict | None:
    """Ask the fork server for an evaluator. The request (the submission's path among it) travels
    in a file only the fork server's fork reads: the fork server itself never holds it, so no later
    evaluator, a fork of the fork server, finds an earlier student's name in its memory."""
    fd = os.memfd_create("gradegrad-spawn", os.MFD_CLOEXEC)  # (the fork server needs Linux anyway)
    try:
        os.write(fd, json.dumps(request).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        return server.spawn([fd, *fds], {"device": request["device"]})
    finally:
        os.close(fd)


class Child:
    """One evaluator process for one submission."""

    round_trips = 0  # requests answered over any child's channel, in this process (benchmarks read it)

    def __init__(self, device: str = "cpu", use_zygote: bool = True, limits: Limits | None = None,
                 submission: str = "", extra_fds: tuple[int, ...] = ()) -> None:
        """Start an evaluator for `submission` (shown read-only in its file system) under `limits`.

        `extra_fds` are passed on: the evaluator has them as fds 5, 6, ... (e.g. a memfd)."""
        self.device = device
        self.limits = limits = limits or Limits()
        self.scratch = scratch.make("eval")
        self.token = secrets.token_hex(8)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child_fds = [to_child_r, from_child_w, out_w, err_w]
        isolation = limits.isolation if limits.confine else "none"
        request = {"scratch": self.scratch, "submission": submission, "device": device, "isolation": isolation,
                   "extra_fds": list(extra_fds),
                   "memory": limits.memory, "scratch_bytes": limits.scratch, "nproc": limits.processes,
                   "cpu_seconds": limits.submission_timeout, "grader": os.getpid()}
        reaper.enable_subreaper()
        self.cgroup: Group | None = None
        self.namespaces = False
        self.layers: tuple[str, ...] = ()  # set up as the evaluator was born (spawn.py), then by itself
        self.missing: tuple[str, ...] = ()
        self.fault: str | None = None  # why the grader stopped it ("memory"), if it did
        with reaper.LOCK:  # a sweep in another thread must not mistake this child for a stray
            server = zygote_server() if use_zygote else None
            if server is None and isolation == "strict":
                raise ChildFault("crash", "--isolation strict: no fork server, so no namespaces for the evaluator")
            born = None
            if server is not None:
                born = _spawn(server, {**request, "env": child_env(self.scratch, self.token)}, child_fds + list(extra_fds))
            self.popen = None
            pid = born.get("pid") if born else None
            if not isinstance(pid, int) or pid <= 0:
                if born and isolation == "strict":
                    reason = "; ".join(str(m) for m in born.get("missing") or ()) or "namespaces unavailable"
                    raise ChildFault("crash", f"--isolation strict: {reason}")
                self.popen = subprocess.Popen(
                    [sys.executable, "-I", "-c", BOOT, PACKAGE_ROOT, str(to_child_r), str(from_child_w),
                     json.dumps(request)],
                    stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                    pass_fds=(to_child_r, from_child_w, *extra_fds),
                    cwd=self.scratch, env=child_env(self.scratch, self.token), start_new_session=True)
                pid = self.popen.pid
            else:
                self.cgroup = Group.from_json(born.get("cgroup"))
                self.namespaces = born.get("namespaces") is True
                self.layers = tuple(str(x) for x in born.get("layers") or ())
                self.missing = tuple(str(x) for x in born.get("missing") or ())
            self.pid = pid
            reaper.LIVE.add(pid)
        try:
            self.pidfd = os.pidfd_open(pid)  # signals reach this very process, never a reused pid
        except OSError:
            self.pidfd = None
        for fd in child_fds:
            os.close(fd)
        self.returncode: int | None = None
        self.channel = Channel(from_child_r, to_child_w, nonblocking=True)
        self.stdout = _Drain(os.fdopen(out_r, "rb"), OUTPUT_LIMIT)
        self.stderr = _Drain(os.fdopen(err_r, "rb"), OUTPUT_LIMIT)
        self.stdout.start()
        self.stderr.start()
        self.alive = True
        self.ahead: dict[bytes, deque[bytes]] = {}  # request frame -> replies the child sent ahead
        self.on_miss: Callable[[], Any] | None = None  # once, for the first request `ahead` lacks
        watchdog.watch(self, limits.memory if isolation != "none" else None, self.cgroup)
        try:
            ready = self.request({}, timeout=STARTUP_TIMEOUT, expect_ready=True)
        except ChildFault as exc:  # before any submission code ran: say what the evaluator said
            self.close()
            said = [line for line in self.stderr.text().splitlines() if line.startswith("gradegrad:")]
            raise ChildFault(exc.kind, said[-1][:500] if said else str(exc)) from None
        self.layers += tuple(str(x) for x in ready.header.get("layers") or () if isinstance(x, str))
        self.missing += tuple(str(x) for x in ready.header.get("missing") or () if isinstance(x, str))

    def stop_for(self, reason: str) -> None:
        """SIGKILL the evaluator now, from any thread (the watchdog's), remembering why; the
        thread waiting for its reply sees it die and reports `reason`."""
        self.fault = reason
        tree = [] if self.namespaces else watchdog.tree(self.pid)
        self._signal()
        if self.cgroup is not None:
            self.cgroup.kill()
        if not self.namespaces:  # no PID namespace to end with it: its process group and descendants
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in tree[1:]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def _signal(self) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif self.returncode is None:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def wait(self, timeout: float) -> int | None:
        """The child's exit code (negative: killed by that signal), or None if still running."""
        if self.returncode is not None:
            return self.returncode
        if self.popen is not None:
            try:
                self.returncode = self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
            return self.returncode
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone, its status unknown
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self.pidfd is not None:  # readable once the process has exited: no polling
                exited = select.poll()  # (not select(): a grader with many files open has fds beyond 1024)
                exited.register(self.pidfd, select.POLLIN)
                exited.poll(min(remaining, 0.05) * 1000)
            else:
                time.sleep(0.001)

    def request(self, header: dict[str, Any], tensors: list[torch.Tensor] = (), *,
                timeout: float, expect_ready: bool = False) -> Message:
        """Send one request and wait for its answer; a student exception raises StudentRaised.

        A request the child already answered ahead (see `speculate`) takes that answer, with no
        round trip: the very same bytes were asked, during the same gradcheck, so the answer stands.
        """
        frame = None
        if (self.ahead or self.on_miss is not None) and not expect_ready:
            frame = encode_frame(header, list(tensors))
            replies = self.ahead.get(frame)
            if not replies and self.on_miss is not None:  # predicted replies lack it: the student's own run-ahead
                on_miss, self.on_miss = self.on_miss, None
                on_miss()
                replies = self.ahead.get(frame)
            if replies:
                return raise_for_error(parse_frame(replies.popleft()))
        if not self.alive:
            raise ChildFault("crash", "the evaluator is no longer running")
        deadline = time.monotonic() + max(timeout, 0.0)
        with self.faults(timeout):
            if not expect_ready:
                Child.round_trips += 1
                self.channel.send_frame(frame or encode_frame(header, list(tensors)), deadline)
            reply = self.channel.recv(deadline)
        return raise_for_error(reply)

    @contextlib.contextmanager
    def faults(self, timeout: float):
        """What talking to the child over its channel can meet, as the `ChildFault` it means: no
        answer within `timeout` (the child is killed), the child gone, a malformed frame (killed)."""
        try:
            yield
        except ChannelTimeout:
            self.kill()
            raise ChildFault("timeout", f"no answer within {timeout:g} s") from None
        except ChannelClosed:
            raise ChildFault("crash", self.death()) from None
        except (ProtocolError, OSError) as exc:
            self.kill()
            raise ChildFault("protocol", f"the evaluator sent an invalid reply ({exc})") from None

    def speculate(self, header: dict[str, Any], tensors: list[torch.Tensor], *, timeout: float) -> int:
        """Ask the child to run ahead the requests the grader is about to make (see the child's
        `op_speculate`) and keep its (request, reply) pairs; how many came back."""
        reply = self.request(header, tensors, timeout=timeout)
        count = reply.header.get("pairs")
        if type(count) is not int or count < 0 or 2 * count != len(reply.tensors):
            self.kill()
            raise ChildFault("protocol", "the evaluator sent an invalid reply (run-ahead pairs)")
        return self.take_ahead([(tensor_frame(request), tensor_frame(answer))
                                for request, answer in zip(reply.tensors[0::2], reply.tensors[1::2])])

    def take_ahead(self, pairs: list[tuple[bytes, bytes]]) -> int:
        """Answer the requests of `pairs` (request frame, reply frame), sent ahead by this very
        evaluator, with their replies from now on, each once (one run-ahead at a time:
        `Submission.gradcheck_ahead` drops what is left after use); how many there are."""
        self.ahead.clear()
        for request, answer in pairs:
            self.ahead.setdefault(request, deque()).append(answer)
        return len(pairs)

    def death(self) -> str:
        """Why the child is gone, in a student's terms."""
        code = self.wait(timeout=5)
        if self.cgroup is not None and self.cgroup.oom_kills() > 0:
            self.fault = "memory"
        self.kill()
        if self.fault == "memory":
            limit = self.limits.memory or 0
            return (f"memory limit: the submission's processes together used more than {limit / (1 << 30):g} GiB "
                    "and were stopped")
        if code is None:
            return "the submission closed the grader's channel"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the process running the submission was killed by {name}{hint}"
        return f"the submission ended the process running it (exit code {code})"

    def kill(self) -> None:
        """SIGKILL the child and reap it; its PID namespace ends with it (without one, its process
        group, its cgroup and then the sweep take whatever it started)."""
        if not self.alive:
            return
        self.alive = False
        watchdog.forget(self)
        self._signal()
        if not self.namespaces:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.wait(timeout=10)
        with reaper.LOCK:
            reaper.LIVE.discard(self.pid)
        if self.cgroup is not None:
            self.cgroup.kill()
        if not self.namespaces:
            reaper.sweep(self.token, self.pid)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def close(self) -> StudentOutput:
        """Stop the child, reap everything it started, and return what it printed."""
        if self.alive:
            try:
                self.channel.send({"op": "exit"}, deadline=time.monotonic() + 1)
                self.wait(timeout=2)
            except (ChannelTimeout, ChannelClosed, OSError):
                pass
        self.kill()
        self.alive = False
        for fd in (self.channel.read_fd, self.channel.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stdout.join(timeout=2)
        self.stderr.join(timeout=2)
        scratch.remove_tree(self.scratch)
        truncated = self.stdout.total > OUTPUT_LIMIT or self.stderr.total > OUTPUT_LIMIT
        return StudentOutput(self.stdout.text(), self.stderr.text(), truncated)
