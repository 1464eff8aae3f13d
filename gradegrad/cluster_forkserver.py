"""Where `--cluster local:N` starts its Dask workers from: multiprocessing's fork server, with the
grader preloaded (`cluster_preload.py`), so that torch is imported once for all of them.

By default a LocalCluster starts each worker as a fresh interpreter (multiprocessing's `spawn`),
which imports Dask, torch and the grader, and then starts its own gradegrad fork server, which
imports torch again: four imports of torch for two workers before the first submission. Here
multiprocessing's fork server imports them once and every worker is a fork of it; each worker
then forks its gradegrad fork server from itself at its start (`cluster_preload.py`). The console
script starts it as the command starts (`start`), so that it imports while this process reads the
batch; `cluster.py` starts it (if it is not running yet) and has Dask use it. Standard library
only: this module is imported before anything else.
"""

from __future__ import annotations

PRELOAD = "gradegrad.cluster_preload"
STOP_WAIT = 0.1  # seconds a closed LocalCluster's worker may take to exit before it is killed (it holds nothing)


def start() -> None:
    """Start multiprocessing's fork server now, preloading the grader (it imports in the background)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload([PRELOAD])
    forkserver.ensure_running()


def stop(workers: list[int], seconds: float = STOP_WAIT) -> None:
    """Once the LocalCluster is closed: its worker processes (the fork server's children, not this
    process's) get `seconds` to exit, then are killed (they hold nothing by then; what they leave
    comes to this process, a subreaper, for `cluster_worker.sweep_orphans`); then the fork server
    is killed (its own exit would run the interpreter's slow teardown of torch)."""
    import os
    import signal
    import time
    from multiprocessing import forkserver

    deadline = time.monotonic() + seconds
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    server = forkserver._forkserver
    pids = [pid for pid in workers if _alive(pid)] + [getattr(server, "_forkserver_pid", None) or 0]
    for pid in pids:
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    stopping = getattr(server, "_stop", None)  # closes its pipe and reaps it (what the standard library's tests use)
    if stopping is not None:
        try:
            stopping()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def is_local(address: str | None) -> bool:
    """Whether a `--cluster` address asks for a cluster here (`local`, `local:N`)."""
    return address is not None and (address == "local" or address.startswith("local:"))
