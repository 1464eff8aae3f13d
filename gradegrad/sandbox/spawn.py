"""How one evaluator is born, in the fork server (or, as a fallback, in a fresh interpreter).

    fork server ── fork ──> intermediate: its cgroup (the tree's limits), then its namespaces
                                │ fork
                                └──> evaluator: PID 1 of its PID namespace; the intermediate exits,
                                     so the evaluator is re-parented to the grader (a subreaper)

The evaluator then, before it answers any request (and so before any submission code runs):
takes its own session, stdin from /dev/null, its pipes as stdout/stderr and fds 3/4 (extra fds
the grader passed follow from fd 5 on); makes itself the OOM killer's first choice; builds its
file system (`layers/filesystem.py`); gives up root and every capability
(`layers/credentials.py`); sets the tree's rlimits (`layers/limits.py`); dies with the grader
from then on (PDEATHSIG: a change of credentials clears it, so it comes last); and takes a clean
environment. The remaining layers (RLIMIT_AS, Landlock, seccomp) follow at the `confine`
request, after the device is set up (`confine.py`).

Every layer is named in what the evaluator reports (`Born.layers`, the ready message), and every
missing one with the reason (`Born.missing`). `isolation` is "auto" (what the kernel allows),
"strict" (namespaces or no evaluator at all) or "none" (a separate process with a clean
environment and nothing else, for debugging).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from gradegrad.sandbox.layers import cgroups, credentials, filesystem, limits, namespaces
from gradegrad.sandbox.layers.kernel import PR_SET_DUMPABLE, PR_SET_PDEATHSIG, prctl


@dataclass
class Born:
    """What the intermediate set up, and the evaluator's pid (sent to the grader as JSON)."""

    pid: int = -1
    layers: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    cgroup: dict | None = None
    namespaces: bool = False


def _stdio(fds: list[int], keep: int) -> None:
    """Own session; stdin /dev/null, stdout/stderr the grader's pipes, protocol on 3/4, extras 5+."""
    os.setsid()
    read_fd, write_fd, out_fd, err_fd, *extra = fds
    devnull = os.open(os.devnull, os.O_RDONLY)
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in (read_fd, write_fd, *extra)]  # above every target
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for target, fd in enumerate(moved, start=3):
        os.dup2(fd, target)
    os.closerange(3 + len(moved), keep)


def _host_ppid() -> int:
    """The parent's pid as the host sees it (read before the evaluator has its own /proc)."""
    with open("/proc/self/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _wait_for_grader(grader: int, intermediate: int) -> None:
    """Until this process is the grader's child (the intermediate has closed its pipe, but may
    not have finished exiting); exit if the grader is gone already."""
    deadline = time.monotonic() + 5
    while _host_ppid() == intermediate and time.monotonic() < deadline:
        time.sleep(0.0002)
    if grader and _host_ppid() != grader:
        os._exit(0)


def _die_with_grader() -> None:
    """SIGKILL this process when the grader dies. Set after the last change of credentials (which
    clears it); if the grader died before, its end of the request pipe (fd 3) is closed."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, what="pdeathsig")
    poll = select.poll()
    poll.register(3, select.POLLIN)
    if any(event & (select.POLLHUP | select.POLLERR) for _, event in poll.poll(0)):
        os._exit(0)


def become_evaluator(request: dict, fds: list[int], keep: int, born: Born, host_pid: int, intermediate: int,
                     plan: filesystem.Plan | None) -> None:
    """In the new evaluator: every layer that needs no request, then serve the grader."""
    _stdio(fds, keep)
    prctl(PR_SET_DUMPABLE, 1, what="dumpable")  # the fork server is not; the grader reads our /proc files
    layers: list[str] = []  # the intermediate's own (born.layers) reach the grader with the pid
    _wait_for_grader(int(request.get("grader") or 0), intermediate)
    isolation = request.get("isolation", "auto")
    root = _host_uid() == 0
    scratch = request["scratch"]
    if isolation != "none":
        layers += limits.oom_first()
    uid = credentials.evaluator_uid(host_pid) if root and isolation != "none" else None
    if born.namespaces and plan is not None:
        inside = uid if uid is not None else 0
        layers += filesystem.build(scratch, plan, request.get("submission") or "", int(request["scratch_bytes"]),
                                   inside, inside, request.get("memory"))
        scratch = filesystem.SCRATCH
    else:
        if uid is not None:
            os.chown(scratch, uid, uid)
        os.chdir(scratch)
    source = _read_submission(request) if uid is not None and not born.namespaces else None
    if isolation != "none":
        layers += credentials.drop(uid, uid if uid is not None else _host_uid())
        # dropping credentials made the process not dumpable again: its /proc files would be root's,
        # and a grader that is not root could not reset its VmHWM (meter.py) or read its smaps
        prctl(PR_SET_DUMPABLE, 1, what="dumpable")
        layers += limits.apply(int(request.get("nproc") or limits.NPROC), int(request["scratch_bytes"]),
                               request.get("cpu_seconds"))
        layers.append("no-terminal")
    _die_with_grader()
    env = dict(request["env"])
    env.update(HOME=scratch, TMPDIR=scratch)
    serve(env, layers, [], source)


def _read_request(fd: int) -> dict:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def _read_submission(request: dict) -> bytes | None:
    """The submission's bytes, read while still root (its file may be readable by root only)."""
    try:
        with open(request.get("submission") or "", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _host_uid() -> int:
    """This process's uid outside any user namespace (from uid_map: 'inside outside count')."""
    try:
        for line in open("/proc/self/uid_map"):
            inside, outside, count = (int(x) for x in line.split())
            if inside <= os.getuid() < inside + count:
                return outside + os.getuid() - inside
    except (OSError, ValueError):
        pass
    return os.getuid()


def serve(env: dict[str, str], layers: list[str], missing: list[str], source: bytes | None = None) -> None:
    os.environ.clear()
    os.environ.update(env)
    import tempfile

    tempfile.tempdir = None  # the fork server's own may be cached: the evaluator's is its TMPDIR (its scratch)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    from gradegrad.sandbox.child import main

    main(3, 4, layers, missing, source)


def spawn(fds: list[int], keep: int, probe: str | None, plans: dict[str, filesystem.Plan]) -> Born:
    """Fork an evaluator through a short-lived intermediate (see the module's picture).

    `fds`: the request's file (read only by the intermediate: the fork server never holds a
    request, the submission's path among it), then the evaluator's. `probe` is None when namespaces
    work here (else why not); `plans` the file system layouts per device. Returns what the
    intermediate set up, with the evaluator's pid."""
    result_r, result_w = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        try:
            os.close(result_r)
            _intermediate(_read_request(fds[0]), fds[1:], keep, probe, plans, result_w)
        finally:
            os._exit(0)
    os.close(result_w)
    os.waitpid(intermediate, 0)  # after this the evaluator has been re-parented to the grader
    with os.fdopen(result_r, "rb") as fh:
        data = fh.read()
    try:
        return Born(**json.loads(data))
    except (ValueError, TypeError):
        return Born()


def _intermediate(request: dict, fds: list[int], keep: int, probe: str | None,
                  plans: dict[str, filesystem.Plan], result_w: int) -> None:
    born = Born()
    isolation = request.get("isolation", "auto")
    group = None
    if isolation != "none":
        try:
            group = cgroups.create(request.get("memory"), int(request.get("nproc") or limits.NPROC))
            group.enter()
            born.cgroup = group.to_json()
            born.layers += ["cgroup-memory", "cgroup-pids"] if request.get("memory") else ["cgroup-pids"]
        except OSError as exc:
            born.missing.append(f"cgroup ({exc.strerror or exc})")
        if probe is None:
            try:
                born.layers += namespaces.enter()
                born.namespaces = True
            except OSError as exc:
                born.missing.append(f"namespaces ({exc.strerror or exc})")
        else:
            born.missing.append(f"namespaces ({probe})")
    if isolation == "strict" and not born.namespaces:
        os.write(result_w, json.dumps(born.__dict__).encode())
        if group is not None:
            group.remove(wait=0)
        return
    sync_r, sync_w = os.pipe()
    intermediate = os.getpid()
    evaluator = os.fork()
    if evaluator == 0:
        os.close(result_w)
        os.close(sync_w)
        try:
            with os.fdopen(sync_r, "rb") as fh:
                host_pid = int(fh.read() or b"0")  # the intermediate has exited once this returns
            become_evaluator(request, fds, keep, born, host_pid, intermediate, plans.get(request.get("device", "cpu")))
        except BaseException as exc:  # noqa: BLE001 - the grader sees the message and the exit code
            try:
                os.write(2, f"gradegrad: the evaluator could not start: {exc!r}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(70)
    os.close(sync_r)
    os.write(sync_w, str(evaluator).encode())
    born.pid = evaluator
    os.write(result_w, json.dumps(born.__dict__).encode())


def plain(argv: list[str]) -> None:
    """The fallback without a fork server: this fresh interpreter is the evaluator (no namespaces).

    argv: read fd, write fd, the JSON request."""
    request = json.loads(argv[2])
    fds = [int(argv[0]), int(argv[1]), *(int(fd) for fd in request.get("extra_fds") or ())]
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]  # protocol on 3/4, extras from 5 on
    for target, fd in enumerate(moved, start=3):
        os.dup2(fd, target)
    for fd in moved:
        os.close(fd)
    isolation = request.get("isolation", "auto")
    layers, missing = [], ["namespaces (no fork server)", "cgroup (no fork server)"]
    from gradegrad.sandbox.child import main  # and torch: before giving up root, who may be all that can read them

    uid = credentials.evaluator_uid(os.getpid()) if os.geteuid() == 0 and isolation != "none" else None
    if uid is not None:  # and what torch imports lazily on a first gradient, as the fork server does
        from gradegrad.sandbox.forkserver import warm_up  # (its uid may not read them either)

        warm_up()
    source = _read_submission(request) if uid is not None else None
    if isolation != "none":
        layers += limits.oom_first()
        if uid is not None:
            os.chown(request["scratch"], uid, uid)
        layers += credentials.drop(uid, uid if uid is not None else os.getuid())
        prctl(PR_SET_DUMPABLE, 1, what="dumpable")  # the grader resets its VmHWM (meter.py)
        layers += limits.apply(int(request.get("nproc") or limits.NPROC), int(request["scratch_bytes"]),
                               request.get("cpu_seconds"))
        layers.append("no-terminal")
    main(3, 4, layers, missing, source)
