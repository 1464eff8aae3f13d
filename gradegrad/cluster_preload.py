"""What multiprocessing's fork server preloads for `--cluster local:N` (`cluster_forkserver.py`):
torch, Dask and the grader, warmed up once; and what each Dask worker forked from it does first,
at its bootstrap, while it is still a single thread: become a child subreaper and fork its own
gradegrad fork server from itself, as the console script does (`sandbox/forget.py`: what that
fork forgets), before Dask starts the worker's threads. At that moment the worker holds its start
arguments (the local scheduler's address, Dask's configuration) and nothing of the batch.
Imported only in that fork server: multiprocessing's fresh interpreter, or the fork of the console
script (`cluster_forkserver.start(fork=True)`), which has torch imported already."""

from __future__ import annotations

import gc
import multiprocessing.util
import signal

gc.disable()  # importing torch would run several full collections over its own objects (a third of a second)

import distributed  # noqa: F401

import gradegrad.batch  # noqa: F401  (torch, the checks, the references)
import gradegrad.cluster_worker  # noqa: F401
from gradegrad import cluster_forkserver
from gradegrad.entry import warm_up
from gradegrad.sandbox import hugepages


def _warm_dask() -> None:
    """What every Dask worker would otherwise do for itself as it starts: read its packages'
    versions from their metadata for the scheduler (`distributed.versions`, cached), and import
    numpy's random module to re-seed it (`dask.multiprocessing.default_initializer`)."""
    import numpy.random  # noqa: F401
    from distributed.versions import get_versions

    get_versions()


warm_up()
_warm_dask()
gc.freeze()  # what is imported lives as long as each worker: its collections skip it, and leave its pages shared
gc.enable()
if not cluster_forkserver.forked:  # (a fork of the command shares its huge pages: collapsing would copy them)
    hugepages.collapse()  # each worker, and each worker's fork server, is forked from this memory (`sandbox/hugepages.py`)


class _AtStart:
    """The object the after-fork registry holds (weakly): this module keeps it."""


_AT_START = _AtStart()


def _fork_server(_: object) -> None:
    from gradegrad.sandbox import reaper, zygote

    reaper.enable_subreaper()  # evaluators come back to this worker, as to `grade` on one machine
    zygote.prestart(fork=True)


multiprocessing.util.register_after_fork(_AT_START, _fork_server)
# Ctrl-C is the command's: it stops the whole cluster (`cluster_forkserver.stop`). A worker that took
# it would print its event loop's KeyboardInterrupt on the TA's terminal, and its nanny restart it.
# The fork server's loop gives its forks the handler in force when the preload has been imported.
signal.signal(signal.SIGINT, signal.SIG_IGN)
