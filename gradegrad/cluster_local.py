"""`--cluster local:N`: the LocalCluster of N worker processes on this machine, and its early start.

`local_client(distributed, N)` starts it and yields a client of it; `cluster.py` grades on it as on
any cluster. Its workers are forks of multiprocessing's fork server, which holds the grader
imported (`cluster_forkserver.py`, `cluster_preload.py`), each prepared as it starts and each
nanny given its warden by preloads (no plugin to install, no round trip before the batch).

The console script starts it as it starts (`start_early`): it forks the workers' fork server from
itself once it has imported torch (`cluster_forkserver.start(fork=True)`: one import of torch for
the command, the fork server and every worker), imports Dask and starts the cluster in a thread
while the command reads its options and submissions; `cluster.dask_grader` takes it
(`take_early`). This module imports neither torch nor the grader itself: Dask, the error hierarchy
and the standard library.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

from gradegrad.errors import UsageError

EXTRA = "gradegrad[dask]"
NANNY_POLL = 0.005  # seconds between a starting worker's nanny's looks for its "started" message (Dask: 0.05)


def dask_module() -> Any:
    """`distributed`, or the usage error that says which extra installs it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--cluster needs Dask: pip install '{EXTRA}'") from None
    return distributed


def local_workers(address: str) -> int | None:
    """N for `local:N` (`local` alone: one per core), None for a scheduler's address."""
    from gradegrad.workers import default_jobs

    kind, _, count = address.partition(":")
    if kind != "local":
        return None
    if not count:
        return default_jobs()
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"--cluster {address}: expected local:N (N worker processes, at least 1) "
                         "or a scheduler's address such as tcp://host:8786")
    return int(count)


def exception_line(exc: BaseException) -> str:
    """`Type: first line of its message` (the workers' failures are told so too)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextmanager
def local_client(distributed: Any, count: int) -> Iterator[Any]:
    """A client of a LocalCluster of `count` single-threaded worker processes, each grading one
    submission at a time (the scheduler hands a worker its next task only when it is free:
    worker-saturation 1); everything of it stopped when the context ends."""
    import dask

    from gradegrad import cluster_forkserver
    from gradegrad.cluster_worker import sweep_orphans

    try:
        cluster_forkserver.start()  # (running already when the console script started it)
    except OSError as exc:
        raise UsageError(f"--cluster local:{count}: cannot start the workers' fork server ({exception_line(exc)})") \
            from None
    try:  # Dask would set its own preload on the fork server (already running) and import it here first
        import distributed.utils

        distributed.utils._forkserver_preload_set = True
    except (ImportError, AttributeError):
        pass
    _quick_nannies(distributed)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0,
                          "distributed.worker.preload": ["gradegrad.cluster_worker"],  # `Prepare`, and
                          "distributed.nanny.preload": ["gradegrad.cluster_worker"],  # `Warden`, without a plugin
                          "distributed.worker.multiprocessing-method": "forkserver",
                          "distributed.worker.profile.enabled": False,
                          "distributed.admin.tick.interval": "1s",
                          # each server's psutil readings for the dashboard: every 10 s, not 0.5 s
                          "distributed.admin.system-monitor.interval": "10s",
                          "distributed.admin.system-monitor.disk": False}):
        try:
            cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                               silence_logs=logging.ERROR, memory_limit=0)
        except Exception as exc:  # noqa: BLE001 - a nanny or worker that could not start (it closed itself)
            cluster_forkserver.stop([])
            raise UsageError(f"--cluster local:{count}: the local cluster did not start ({exception_line(exc)})") \
                from None
        try:
            client = distributed.Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            workers = [nanny.pid for nanny in cluster.workers.values() if getattr(nanny, "pid", None)]
            cluster.close()
            cluster_forkserver.stop(workers)  # nothing of this cluster outlives the command
            sweep_orphans()  # this process is the workers' nanny: what a stopped worker left is ours


def _quick_nannies(distributed: Any) -> None:
    """A nanny learns that its worker has started by looking at a queue every 50 ms: the batch
    waits for the slowest of them. Here, where workers start in a fraction of a second, every 5 ms
    (only while a worker starts)."""
    try:
        process = distributed.nanny.WorkerProcess
    except AttributeError:
        return
    if isinstance(getattr(process, "_init_msg_interval", None), (int, float)):
        process._init_msg_interval = min(process._init_msg_interval, NANNY_POLL)


# --------------------------------------------------------------------------- the early start


_EARLY: list["_EarlyStart"] = []


def start_early(address: str) -> None:
    """The console script, for `--cluster local:N` on its command line, before it reads anything
    else: fork the workers' fork server from this process once it has imported torch
    (`cluster_forkserver.start`), then import Dask (as the fork server imports it and the grader)
    and start the cluster in a thread, its workers starting on the other cores while the command
    reads its rubric, exercises and submissions; `take_early` hands it to `cluster.dask_grader`. A
    command that ends before (a usage error) leaves it to `cluster_forkserver.stop`, which stops
    the workers' fork server and the workers. Where Dask is missing or the address is malformed,
    nothing starts (a Dask that fails as it is imported: nothing but the fork server): the command
    says why once it has read its options."""
    from importlib.util import find_spec

    from gradegrad import cluster_forkserver

    try:
        count = local_workers(address)
    except UsageError:
        return
    if find_spec("distributed") is None:
        return
    try:
        cluster_forkserver.start(fork=True)
    except OSError:  # no socket for it: `local_client` tries again, and tells the TA why
        return
    try:
        distributed = dask_module()
    except UsageError:
        return
    _EARLY.append(_EarlyStart(distributed, address, count))


def take_early(address: str) -> "_EarlyStart | None":
    """The cluster `start_early` started, if it is the one at `address` (one started for another,
    when the address comes from a settings file rather than the command line, is stopped)."""
    early = _EARLY.pop() if _EARLY else None
    if early is not None and early.address != address:
        early.close()
        early = None
    return early


class _EarlyStart:
    """`local_client` entered in a thread of its own; `taken()` waits for it."""

    def __init__(self, distributed: Any, address: str, count: int) -> None:
        self.address, self.client, self.error = address, None, None
        self.stack = ExitStack()
        self.thread = threading.Thread(target=self._enter, args=(distributed, count), name="gradegrad-cluster-start",
                                       daemon=True)
        self.thread.start()

    def _enter(self, distributed: Any, count: int) -> None:
        try:
            self.client = self.stack.enter_context(local_client(distributed, count))
        except BaseException as exc:  # noqa: BLE001 - raised where the cluster is taken
            self.error = exc

    @contextmanager
    def taken(self) -> Iterator[Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        with self.stack:
            yield self.client

    def close(self) -> None:
        self.thread.join()
        self.stack.close()
