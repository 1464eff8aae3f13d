"""What runs on a Dask cluster for `gradegrad grade --cluster` (the TA's side is `cluster.py`).

A task, `grade_chunk`, gets a few submissions and the batch's grading context as plain data
(`portable.py`: the files' bytes or the generated modules, the rubric, every exercise, the
options), rebuilds them and grades each (`grade_packed`) with `batch.grade_timed`, exactly as
`grade` does on one machine: in this worker process, which starts its own fork server (zygote)
and is the child subreaper of its own evaluators. Each report goes back as `Report.to_dict()`,
with the scratch copy's paths replaced by the paths the TA's machine knows. A worker whose
gradegrad or torch is not the TA's grades nothing: the student gets an error row, not a
different verdict.

Two plugins, installed by `cluster.py` on every worker and nanny, present and future, of a cluster
started elsewhere (a local one's workers and nannies have them from their start: `dask_setup`):
- `Prepare` (worker): imports the grader and starts the fork server before the first task.
- `Warden` (nanny): a Dask worker is a process its nanny started and restarts when it dies. The
  nanny becomes a child subreaper, so when a worker dies (killed, out of memory) what it left
  running, its fork server and evaluators, is re-parented to the nanny instead of to init, and
  the warden kills it (`sweep_orphans`): no evaluator outlives its worker. A worker started
  without a nanny (`dask worker --no-nanny`) has no warden.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import json
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

from distributed import Nanny
from distributed.diagnostics.plugin import NannyPlugin, WorkerPlugin

import gradegrad
from gradegrad.sandbox import reaper, scratch  # stdlib only: this module loads without torch (see `Prepare`)

SWEEP_EVERY = 1.0  # seconds between two looks for a dead worker's processes
CLOSING_GRACE = 30.0  # how long a closing nanny's worker may take to go before the warden stops
CONTEXTS_KEPT = 4  # batches whose rubric and exercises a worker keeps parsed
PREPARE_TIMEOUT = 300.0  # seconds `ready` waits for a worker's preparation (torch, fork server)


def identity() -> dict[str, str]:
    """What must match between the TA's machine and a worker for their gradebooks to agree."""
    return dict(_identity())


@lru_cache(maxsize=1)
def _identity() -> tuple[tuple[str, str], ...]:
    from gradegrad.cache import package_digest

    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "none"
    return (("gradegrad", gradegrad.__version__), ("source", package_digest()[:16]), ("torch", torch))


def describe(ident: dict[str, str]) -> str:
    return f"gradegrad {ident.get('gradegrad')} (source {ident.get('source')}), torch {ident.get('torch')}"


# --------------------------------------------------------------------------- the tasks


_PARSED: OrderedDict[str, tuple] = OrderedDict()
_PARSED_LOCK = threading.Lock()


def _parsed(data: dict) -> tuple:
    """(rubric, catalog, options) of a task's context, rebuilt once per batch in this process. The
    context travels as JSON text (`context`): one string, which Dask does not walk for futures as
    it would every value of some 60 kB of nested dicts, for each task."""
    from gradegrad.portable import from_context

    with _PARSED_LOCK:
        if data["token"] not in _PARSED:
            _PARSED[data["token"]] = from_context(json.loads(data["context"]))
            while len(_PARSED) > CONTEXTS_KEPT:
                _PARSED.popitem(last=False)
        return _PARSED[data["token"]]


def grade_chunk(payloads: list[dict], data: dict) -> list[dict]:
    """The task: grade a few packed submissions one after the other (`grade_packed` each), one
    result per submission, in order. One submission's failure here is its own result."""
    results = []
    for payload in payloads:
        try:
            results.append(grade_packed(payload, data))
        except Exception as exc:  # noqa: BLE001 - a bug of this worker's: that student's error row only
            from gradegrad.cluster_local import exception_line

            results.append({"report": None, "problem": f"on the Dask worker ({exception_line(exc)})"})
    return results


def grade_packed(payload: dict, data: dict) -> dict:
    """Grade one packed submission as `grade` does locally: {"report", "keep", "seconds"}, the
    report as JSON text (one string, which Dask neither walks to size it nor pickles node by node),
    or {"report": None, "problem"} when this worker cannot give the TA's machine's verdict."""
    from gradegrad.batch import grade_timed
    from gradegrad.portable import replace_in_json, unpack_submission

    if data["identity"] != identity():
        return {"report": None, "problem": f"the Dask worker runs {describe(identity())}, the TA's machine "
                                           f"{describe(data['identity'])}: install the same on every worker"}
    rubric, catalog, options = _parsed(data)
    if options.limits.isolation == "strict" and (why := _no_namespaces()):
        return {"report": None, "problem": f"--isolation strict: the Dask worker cannot give evaluators their own "
                                           f"namespaces ({why})"}
    with scratch.folder("submission") as folder:
        source, code, paths = unpack_submission(payload, Path(folder))
        report, keep, seconds = grade_timed(source, rubric, catalog, options, code)
    text = replace_in_json(report.json_line, *paths) if paths else report.json_line
    return {"report": text, "keep": keep, "seconds": seconds}


@lru_cache(maxsize=1)
def _no_namespaces() -> str | None:
    """Why evaluators get no namespaces on this worker (None: they do). `--isolation strict` is
    checked on the TA's machine when its options are parsed; a worker checks it for itself, so that
    a worker without them grades nothing rather than caching its students' evaluators as crashes."""
    from gradegrad.sandbox.zygote import namespaces_unavailable

    return namespaces_unavailable()


# --------------------------------------------------------------------------- the worker's plugin


class Prepare(WorkerPlugin):
    """Import the grader and start the fork server while the worker waits for its first task."""

    name = "gradegrad-prepare"
    idempotent = True

    def setup(self, worker) -> None:  # noqa: ANN001 - distributed's Worker
        prepare()

    def teardown(self, worker) -> None:  # noqa: ANN001
        close_grader()


def dask_setup(server) -> None:  # noqa: ANN001 - distributed's Worker or Nanny
    """A preload: `dask worker --preload gradegrad.cluster_worker` prepares each worker as it
    starts, before any client has installed `Prepare`; `--preload-nanny gradegrad.cluster_worker`
    gives each nanny its warden as it starts, before any client has installed `Warden`.
    `--cluster local:N` starts its workers and nannies with both, and installs no plugin."""
    if isinstance(server, Nanny):
        _WARDEN.watch(server)
    else:
        prepare()


def dask_teardown(server) -> None:  # noqa: ANN001
    if isinstance(server, Nanny):
        _WARDEN.release(server)
    else:
        close_grader()


def close_grader() -> None:
    """As the worker closes: stop its fork server and remove its folder (a worker process ends
    without running its exit handlers; one killed instead leaves the folder to `scratch.sweep`)."""
    zygote = sys.modules.get("gradegrad.sandbox.zygote")
    if zygote is not None:
        zygote.shutdown()


_PREPARING = threading.Lock()
_PREPARED = threading.Event()


def prepare() -> None:
    """Start this process's preparation, once."""
    if _PREPARING.acquire(blocking=False):
        threading.Thread(target=_prepare, name="gradegrad-prepare", daemon=True).start()


def _prepare() -> None:
    from gradegrad.sandbox.environment import limit_malloc_arenas
    from gradegrad.sandbox.zygote import prestart, zygote_server

    try:
        limit_malloc_arenas()
        reaper.enable_subreaper()  # evaluators come back to this worker, as to `grade` on one machine
        prestart()  # the fork server imports torch in its own process while this one does, below
        import gradegrad.batch  # noqa: F401  (torch, the checks, the references)

        gc.freeze()  # what is imported lives as long as the worker: later collections skip it
        zygote_server(wait=True)
    except Exception:  # noqa: BLE001 - only a head start (e.g. the worker closing meanwhile): tasks redo it
        pass
    finally:
        _PREPARED.set()


async def ready() -> dict[str, str]:
    """This worker's `identity`, once it is prepared: `cluster.py` starts the batch when every
    worker is, so that no submission is graded while the others still import torch."""
    await asyncio.to_thread(_PREPARED.wait, PREPARE_TIMEOUT)
    return identity()


# --------------------------------------------------------------------------- the nanny's plugin


class Warden(NannyPlugin):
    """Kill what a dead worker left running (see the module's docstring)."""

    name = "gradegrad-warden"
    idempotent = True

    def setup(self, nanny) -> None:  # noqa: ANN001 - distributed's Nanny
        _WARDEN.watch(nanny)

    def teardown(self, nanny) -> None:  # noqa: ANN001
        _WARDEN.release(nanny)


class _Warden:
    """One thread per process (a process may hold several nannies: a LocalCluster's all live in
    the process that started it), sweeping while a nanny is open and until its worker is gone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list = []  # nannies with the plugin
        self.closing: list = []  # (nanny, deadline): torn down, their worker maybe not yet stopped
        self.thread: threading.Thread | None = None

    def watch(self, nanny) -> None:  # noqa: ANN001
        reaper.enable_subreaper()
        with self.lock:
            if not any(n is nanny for n in self.open):  # (a preload and a plugin both)
                self.open.append(nanny)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="gradegrad-warden", daemon=True)
                self.thread.start()

    def release(self, nanny) -> None:  # noqa: ANN001
        with self.lock:
            self.open = [n for n in self.open if n is not nanny]
            self.closing.append((nanny, time.monotonic() + CLOSING_GRACE))

    def _run(self) -> None:
        while True:
            time.sleep(SWEEP_EVERY)
            sweep_orphans()
            with self.lock:
                now = time.monotonic()
                self.closing = [(n, end) for n, end in self.closing if n.process is not None and now < end]
                if not self.open and not self.closing:
                    self.thread = None
                    break
        time.sleep(0.1)
        sweep_orphans()  # what the last workers left as they stopped


_WARDEN = _Warden()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent, session) of a process, None if it is gone."""
    fields = reaper.stat_fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[3]))


def _orphans() -> list[int]:
    """Our children in another session than ours that we did not start: what was re-parented to
    us, the subreaper, from a dead worker (its fork server, evaluators and their processes)."""
    me, session = os.getpid(), os.getsid(0)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in reaper.LIVE:
            stat = _stat(int(entry))
            if stat is not None and stat[0] == me and stat[1] != session:
                found.append(int(entry))
    return found


def sweep_orphans(rounds: int = 50) -> int:
    """SIGKILL (and reap) the orphans until none is left; how many were killed."""
    if not os.path.isdir("/proc"):
        return 0
    killed: set[int] = set()
    with reaper.LOCK:  # a local evaluator being started is not an orphan (reaper.LIVE)
        for _ in range(rounds):
            strays = _orphans()
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)
            for pid in strays:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
    return len(killed)
