"""The fork server's own process (the "zygote"): import torch once, then fork a fresh evaluator
per request of the grader.

Runs in a separate process, never in the grader: a fork of the grader taken right after it
imported torch (`forked`: the console script), or a fresh `python -I` (`main`: a grader that is
not the console script, or has threads by then). It never
initialises CUDA (a process must not fork after CUDA is initialised); evaluators do, on request.
Each evaluator is forked through a short-lived intermediate, so that it is re-parented to the
grader, a child subreaper, which can then wait for it as for a child of its own.

Its requests come only from the grader, over a Unix socket pair, with the evaluator's four pipe
ends (requests, replies, stdout, stderr) passed as file descriptors.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys

from gradegrad.sandbox import forget

MAX_REQUEST = 1 << 16
FORKED_FD = 3  # the socket to the grader, in a fork server forked from the grader
WARMABLE = frozenset({"torch._dynamo"})  # what the grader may ask it to import for later evaluators (`_warm`)


def serve(sock_fd: int, probe: str | None) -> None:
    """Answer spawn requests; `probe` is None when evaluators can have namespaces, else why not."""
    from gradegrad.sandbox.layers import filesystem
    from gradegrad.sandbox.spawn import spawn

    sock = socket.socket(fileno=sock_fd)
    keep = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096
    package_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    plans = {"cpu": filesystem.plan(os.path.join(package_dir, "gradegrad"))}
    sock.send(json.dumps({"ready": os.getpid(), "namespaces": probe}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 16)
        except OSError:
            return
        if not data:
            return
        try:
            request = json.loads(data)  # all it reads of the request (the rest is spawn.py's)
            _warm(request.get("warm"))
            device = request.get("device", "cpu")
            if device not in plans:
                plans[device] = filesystem.plan(os.path.join(package_dir, "gradegrad"), device)
            born = spawn(fds, min(keep, 65536), probe, plans)
        except Exception as exc:  # report, never die: the grader falls back to a plain start
            sock.send(json.dumps({"error": repr(exc)}).encode())
        else:
            sock.send(json.dumps(born.__dict__).encode())
        finally:
            for fd in fds:
                os.close(fd)


def _warm(names: object) -> None:
    """Import what the grader asks before the next evaluator (`zygote.warm_later`), from a fixed
    list; frozen for the collector like the rest, so that evaluators share its pages."""
    if not isinstance(names, list):
        return
    fresh = [n for n in names if n in WARMABLE and n not in sys.modules]
    if not fresh:
        return
    gc.disable()  # no collection while importing (it would write to the pages shared with the grader)
    for name in fresh:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an evaluator that needs it imports it (and reports why not)
            pass
    gc.freeze()
    gc.enable()


def warm_up() -> None:
    """Run once what every evaluator runs, so that lazy imports and first-call set-up are paid
    here, before forking (CPU only: CUDA must not be initialised in the zygote). torch's
    symbolic-shapes module is left to its stand-in (`lazy_shapes.py`), installed already in a fork
    of the console script."""
    import torch

    from gradegrad import lazy_shapes

    lazy_shapes.install()

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
    """A fresh `python -I` (`zygote.Zygote` without `fork`): import torch here, then serve."""
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no evaluator of our user may ptrace or
    #                                         open /proc/<us>/mem (each evaluator sets itself dumpable again)
    gc.disable()  # no collection over torch's objects while importing: one, below, before freezing
    from gradegrad.sandbox.environment import limit_malloc_arenas

    limit_malloc_arenas()
    probe = _probe_and_compile()  # while this process is small (its probe is a cheap fork)
    import torch  # noqa: F401  (the point of the zygote: pay this once)

    _prepare_and_serve(sock_fd, probe)


def forked(sock_fd: int, env: dict[str, str], package_root: str) -> None:
    """A fork of the grader, taken right after it imported torch (`zygote.Zygote` with `fork`):
    forget what the grader held (`forget.py`), then serve. The grader is not dumpable, so neither
    is this process; it never returns."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the console script's own is not ours
    pythonpath = os.environ.get("PYTHONPATH", "")
    forget.descriptors(sock_fd)
    forget.environment(env)
    forget.command_line()
    forget.import_path(package_root, pythonpath)
    os.setsid()
    os.chdir(env["HOME"])
    sys.dont_write_bytecode = True  # what PYTHONDONTWRITEBYTECODE does for a fresh interpreter
    gc.disable()
    import torch

    torch.set_num_threads(1)  # what OMP_NUM_THREADS=1 does for a fresh interpreter (the grader had its own)
    _prepare_and_serve(FORKED_FD, _probe_and_compile(), collect=False)  # a collection would write to (copy) every
    #                                                       object's page that this fork still shares with the grader


def _probe_and_compile() -> str | None:
    """Once per fork server: whether evaluators can have namespaces here (None, else why not),
    and the seccomp filter compiled (libseccomp or the builtin compiler), not per evaluator."""
    from gradegrad.sandbox.layers import namespaces, seccomp

    probe = namespaces.probe()
    seccomp.compiled(True)
    seccomp.compiled(False)
    return probe


def _prepare_and_serve(sock_fd: int, probe: str | None, collect: bool = True) -> None:
    import gradegrad.sandbox.child  # noqa: F401
    import gradegrad.sandbox.confine  # noqa: F401
    import gradegrad.sandbox.loopback  # noqa: F401  (a run-ahead drives the proxy in the child)
    import gradegrad.sandbox.spawn  # noqa: F401

    warm_up()
    if collect:
        gc.collect()
    gc.freeze()  # evaluators share the zygote's pages: keep the collector from touching (copying) them
    gc.enable()
    serve(sock_fd, probe)
