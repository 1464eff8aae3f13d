"""Start and stop child evaluators: a clean environment, a scratch directory, deadlines, SIGKILL.

Knows nothing about exercises. A `Child` is one Python process that has imported torch and
serves requests over a `protocol.Channel`; its stdout and stderr are drained by threads into
bounded buffers (the student's output, shown but never parsed). Every read from the child has a
deadline, and when a child misbehaves its whole process group is killed with SIGKILL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from gradegrad.report import StudentOutput
from gradegrad.sandbox import reaper
from gradegrad.sandbox.environment import PACKAGE_ROOT, child_env
from gradegrad.sandbox.zygote import zygote_server
from gradegrad.sandbox.protocol import (Channel, ChannelClosed, ChannelTimeout, Message, ProtocolError, encode_frame,
                                       parse_frame, tensor_frame)

BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from gradegrad.sandbox.child import main; main(int(sys.argv[2]), int(sys.argv[3]))")
STARTUP_TIMEOUT = 120.0  # importing torch on a cold machine; not the student's time
OUTPUT_LIMIT = 64 << 10  # bytes of stdout and of stderr kept per submission


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0  # seconds per exercise (and for loading the submission)
    memory: int | None = 4 << 30  # bytes of address space per child (CPU only)
    submission_timeout: float = 600.0  # seconds for all the exercises of one submission
    confine: bool = True  # apply Landlock/seccomp where the kernel offers them


class ChildFault(Exception):
    """The child could not answer: it timed out, died or sent garbage."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "timeout" | "crash" | "protocol"


class StudentRaised(Exception):
    """The student's code raised; `error` is the child's description of the exception."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "")))
        self.error = error


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


def raise_for_error(reply: Message) -> Message:
    """The reply, or StudentRaised when it reports the student's exception."""
    if not reply.header.get("ok"):
        error = reply.header.get("error")
        raise StudentRaised(error if isinstance(error, dict) else {"message": "unknown error"})
    return reply


class Child:
    """One evaluator process for one submission."""

    round_trips = 0  # requests answered over any child's channel, in this process (benchmarks read it)

    def __init__(self, device: str = "cpu", use_zygote: bool = True) -> None:
        self.device = device
        self.scratch = tempfile.mkdtemp(prefix="gradegrad-")
        self.token = secrets.token_hex(8)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child_fds = [to_child_r, from_child_w, out_w, err_w]
        reaper.enable_subreaper()
        with reaper.LOCK:  # a sweep in another thread must not mistake this child for a stray
            server = zygote_server() if use_zygote else None
            pid = server.spawn(child_fds, self.scratch, child_env(self.scratch, server.token)) if server else None
            self.popen = None
            if pid is None:
                self.popen = subprocess.Popen(
                    [sys.executable, "-I", "-c", BOOT, PACKAGE_ROOT, str(to_child_r), str(from_child_w)],
                    stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=(to_child_r, from_child_w),
                    cwd=self.scratch, env=child_env(self.scratch, self.token), start_new_session=True)
                pid = self.popen.pid
            else:
                self.token = server.token
            self.pid = pid
            reaper.LIVE.add(pid)
        for fd in child_fds:
            os.close(fd)
        self.returncode: int | None = None
        self.channel = Channel(from_child_r, to_child_w)
        self.stdout = _Drain(os.fdopen(out_r, "rb"), OUTPUT_LIMIT)
        self.stderr = _Drain(os.fdopen(err_r, "rb"), OUTPUT_LIMIT)
        self.stdout.start()
        self.stderr.start()
        self.alive = True
        self.ahead: dict[bytes, deque[bytes]] = {}  # request frame -> replies the child sent ahead
        self.request({}, timeout=STARTUP_TIMEOUT, expect_ready=True)

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
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)

    def request(self, header: dict[str, Any], tensors: list[torch.Tensor] = (), *,
                timeout: float, expect_ready: bool = False) -> Message:
        """Send one request and wait for its answer; a student exception raises StudentRaised.

        A request the child already answered ahead (see `speculate`) takes that answer, with no
        round trip: the very same bytes were asked, during the same gradcheck, so the answer stands.
        """
        frame = None
        if self.ahead and not expect_ready:
            frame = encode_frame(header, list(tensors))
            if replies := self.ahead.get(frame):
                return raise_for_error(parse_frame(replies.popleft()))
        if not self.alive:
            raise ChildFault("crash", "the evaluator is no longer running")
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            if not expect_ready:
                Child.round_trips += 1
                self.channel.send_frame(frame or encode_frame(header, list(tensors)), deadline)
            reply = self.channel.recv(deadline)
        except ChannelTimeout:
            self.kill()
            raise ChildFault("timeout", f"no answer within {timeout:g} s") from None
        except ChannelClosed:
            raise ChildFault("crash", self.death()) from None
        except (ProtocolError, OSError) as exc:
            self.kill()
            raise ChildFault("protocol", f"the evaluator sent an invalid reply ({exc})") from None
        return raise_for_error(reply)

    def speculate(self, header: dict[str, Any], tensors: list[torch.Tensor], *, timeout: float) -> int:
        """Ask the child to run ahead the requests the grader is about to make (see the child's
        `op_speculate`) and keep its (request, reply) pairs; how many came back."""
        reply = self.request(header, tensors, timeout=timeout)
        count = reply.header.get("pairs")
        if type(count) is not int or count < 0 or 2 * count != len(reply.tensors):
            self.kill()
            raise ChildFault("protocol", "the evaluator sent an invalid reply (run-ahead pairs)")
        self.ahead.clear()  # one run-ahead at a time (`Submission.gradcheck_ahead` also drops it after use)
        for request, answer in zip(reply.tensors[0::2], reply.tensors[1::2]):
            self.ahead.setdefault(tensor_frame(request), deque()).append(tensor_frame(answer))
        return count

    def death(self) -> str:
        """Why the child is gone, in a student's terms."""
        code = self.wait(timeout=5)
        self.kill()
        if code is None:
            return "the submission closed the grader's channel"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the process running the submission was killed by {name}{hint}"
        return f"the submission ended the process running it (exit code {code})"

    def kill(self) -> None:
        """SIGKILL the child's process group, reap it, then sweep whatever it started."""
        if not self.alive:
            return
        self.alive = False
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.wait(timeout=10)
        with reaper.LOCK:
            reaper.LIVE.discard(self.pid)
        reaper.sweep(self.token, self.pid)

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
        shutil.rmtree(self.scratch, ignore_errors=True)
        truncated = self.stdout.total > OUTPUT_LIMIT or self.stderr.total > OUTPUT_LIMIT
        return StudentOutput(self.stdout.text(), self.stderr.text(), truncated)
