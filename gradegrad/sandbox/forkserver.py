"""The fork server's own process (the "zygote"): import torch once, then fork a fresh evaluator
per request of the grader.

Runs in a separate `python -I` the grader starts (`zygote.Zygote`); never in the grader. It never
initialises CUDA (a process must not fork after CUDA is initialised); evaluators do, on request.
Each evaluator is forked through a short-lived intermediate, so that it is re-parented to the
grader, a child subreaper, which can then wait for it as for a child of its own.

Its requests come only from the grader, over a Unix socket pair, with the evaluator's four pipe
ends (requests, replies, stdout, stderr) passed as file descriptors.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys

MAX_REQUEST = 1 << 16


def _become_evaluator(fds: list[int], scratch: str, env: dict[str, str], keep: int) -> None:
    """In the forked evaluator: own session, its pipes as stdio and fds 3/4, clean env, serve."""
    os.setsid()
    read_fd, write_fd, out_fd, err_fd = fds
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    # move the protocol pipes to 3 and 4, whatever numbers they had
    r, w = os.dup(read_fd), os.dup(write_fd)
    os.dup2(r, 3)
    os.dup2(w, 4)
    os.closerange(5, keep)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(env)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    from gradegrad.sandbox.child import main

    main(3, 4)


def _spawn(request: dict, fds: list[int], keep: int) -> int:
    """Fork an evaluator through a short-lived intermediate; returns the evaluator's pid."""
    pid_r, pid_w = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        try:
            os.close(pid_r)
            evaluator = os.fork()
            if evaluator == 0:
                os.close(pid_w)
                try:
                    _become_evaluator(fds, request["scratch"], request["env"], keep)
                finally:
                    os._exit(70)
            os.write(pid_w, str(evaluator).encode())
        finally:
            os._exit(0)
    os.close(pid_w)
    os.waitpid(intermediate, 0)  # after this the evaluator has been re-parented to the grader
    with os.fdopen(pid_r, "rb") as fh:
        return int(fh.read() or b"-1")


def serve(sock_fd: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    keep = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 4)
        except OSError:
            return
        if not data:
            return
        try:
            pid = _spawn(json.loads(data), fds, min(keep, 65536))
        except Exception as exc:  # report, never die: the grader falls back to a plain start
            sock.send(json.dumps({"error": repr(exc)}).encode())
        else:
            sock.send(json.dumps({"pid": pid}).encode())
        finally:
            for fd in fds:
                os.close(fd)


def warm_up() -> None:
    """Run once what every evaluator runs, so that lazy imports and first-call set-up are paid
    here, before forking (CPU only: CUDA must not be initialised in the zygote)."""
    import torch

    from gradegrad.sandbox.child import OpRecorder, encode_value
    from gradegrad.sandbox.measure import ByteCounter

    class _Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * x.exp()

    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with OpRecorder():
        out = _Probe.apply(x)
    with OpRecorder(), torch.no_grad():
        _Probe.backward(out.grad_fn, torch.ones(3, dtype=torch.float64))
    with ByteCounter():
        _Probe.apply(x)
    torch.autograd.grad(out, [x], torch.ones(3, dtype=torch.float64))
    encode_value([out], [])


def main(sock_fd: int) -> None:
    gc.disable()  # no collection over torch's objects while importing: one, below, before freezing
    from gradegrad.sandbox.environment import limit_malloc_arenas

    limit_malloc_arenas()
    import torch  # noqa: F401  (the point of the zygote: pay this once)

    import gradegrad.sandbox.child  # noqa: F401
    import gradegrad.sandbox.confine  # noqa: F401
    import gradegrad.sandbox.loopback  # noqa: F401  (a run-ahead drives the proxy in the child)

    warm_up()
    gc.collect()
    gc.freeze()  # evaluators share the zygote's pages: keep the collector from touching (copying) them
    gc.enable()
    serve(sock_fd)
