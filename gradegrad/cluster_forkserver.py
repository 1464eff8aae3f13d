"""Where `--cluster local:N` starts its Dask workers from: multiprocessing's fork server, with the
grader preloaded (`cluster_preload.py`), so that torch is imported once for all of them.

By default a LocalCluster starts each worker as a fresh interpreter (multiprocessing's `spawn`),
which imports Dask, torch and the grader, and then starts its own gradegrad fork server, which
imports torch again: four imports of torch for two workers before the first submission. Here
every worker is a fork of multiprocessing's fork server, which holds them imported; each worker
then forks its gradegrad fork server from itself at its start (`cluster_preload.py`).

The console script makes that fork server a fork of itself (`start(fork=True)`) at the moment
`--jobs` forks its grading workers: once it has imported torch (warmed up, its memory collapsed
into huge pages), while it has read nothing but its command line and environment and runs no
thread of its own, so that the command, the fork server and every worker share one import of
torch. The fork server then imports the rest of the preload (the grader, Dask) while the command
imports Dask and starts the cluster: the workers' first tasks start some 0.2 s sooner than when
the command imported all of it before the fork (it needs the grader only later, to read the
batch). Elsewhere (a process that may run threads, a Python whose fork server this module does
not know) it is multiprocessing's own: a fresh interpreter that imports the preload in the
background. `cluster_local.py` starts it (if it is not running yet) and has Dask use it.
Standard library only (and gradegrad's own process helpers, which are) until `start(fork=True)`
imports torch.
"""

from __future__ import annotations

import signal
import time

# at the top, not in `stop`: it runs on the way out of a command that Ctrl-C interrupted, where an
# import could meet a module the interrupt left half-imported
from gradegrad.sandbox.reaper import signal_all, stat_fields
from gradegrad.sandbox.watchdog import tree

PRELOAD = "gradegrad.cluster_preload"
forked = False  # True in the fork server `start(fork=True)` forked (it shares the command's huge pages)
STOP_WAIT = 0.1  # seconds a closed LocalCluster's worker may take to exit before it is killed (it holds nothing)
SOCKET_PATH = 107  # bytes a Unix socket's path may have (Linux's sun_path, less its terminating NUL)
SOCKET_IN_TEMP = len("/pymp-12345678/listener-12345678")  # where multiprocessing puts its fork server's socket


def start(fork: bool = False) -> None:
    """Start multiprocessing's fork server now, preloading the grader: with `fork`, a fork of this
    process once it has imported torch, which imports the preload itself (see the module's
    docstring); otherwise, or where that cannot be done, a fresh interpreter that imports it in the
    background."""
    import multiprocessing
    from multiprocessing import forkserver

    _quiet_resource_tracker()
    _socket_fits()
    multiprocessing.get_context("forkserver").set_forkserver_preload([PRELOAD])
    if fork and _start_forked():
        return
    forkserver.ensure_running()


def _socket_fits() -> None:
    """Have multiprocessing make its folder, which holds the fork server's socket, where that
    socket's path fits: under a long TMPDIR (a batch system's job folder) the path would be longer
    than a Unix socket's may be (`AF_UNIX path too long`); the system's /tmp (or /var/tmp) then,
    as newer Pythons do themselves. The folder is private (0700) wherever it is."""
    import os
    import shutil
    import tempfile
    from multiprocessing import process, util

    config = process.current_process()._config
    if config.get("tempdir") is not None or len(os.fsencode(tempfile.gettempdir())) + SOCKET_IN_TEMP <= SOCKET_PATH:
        return
    for system in ("/tmp", "/var/tmp"):
        if os.path.isdir(system) and os.access(system, os.W_OK | os.X_OK):
            folder = tempfile.mkdtemp(prefix="pymp-", dir=system)
            util.Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=-100)
            config["tempdir"] = folder
            return


def remove_socket_folder() -> None:
    """Remove multiprocessing's folder (the fork server's socket) as this process leaves with
    `os._exit`, which skips the exit handler that would."""
    import shutil
    from multiprocessing import process

    folder = process.current_process()._config.get("tempdir")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _quiet_resource_tracker() -> None:
    """A command stopped (Ctrl-C) while its LocalCluster's nannies start leaves their semaphores to
    multiprocessing's resource tracker, which unlinks them and then warns on the TA's terminal,
    after `gradegrad: interrupted`, that it found some. The tracker is a fresh interpreter started
    with this process's warning options (started later, at the first semaphore): it still unlinks
    them, without that warning."""
    import sys

    option = "ignore:resource_tracker:UserWarning"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


def _start_forked() -> bool:
    """Import torch here (`_shared`), then fork the fork server from this process and record it
    where multiprocessing looks for its fork server (as `ForkServer.ensure_running` would record the
    fresh one it spawns); False, having started nothing, where that is not safe or not known."""
    import inspect
    import os
    import socket
    import threading
    from multiprocessing import connection, forkserver, util

    server = forkserver._forkserver
    known = all(hasattr(server, name) for name in ("_lock", "_forkserver_pid", "_forkserver_address",
                                                    "_forkserver_alive_fd")) \
        and not hasattr(server, "_forkserver_authkey") \
        and list(inspect.signature(forkserver.main).parameters)[:3] == ["listener_fd", "alive_r", "preload"]
    if not known or threading.active_count() != 1 or not hasattr(os, "fork"):
        return False  # (a fork of a process with threads could copy the locks they hold)
    try:
        _shared()
    except Exception:  # noqa: BLE001 - a broken install: multiprocessing's own, which says why where the TA sees it
        return False
    with server._lock:
        if server._forkserver_pid is not None:
            return True
        with socket.socket(socket.AF_UNIX) as listener:
            address = connection.arbitrary_address("AF_UNIX")
            try:
                listener.bind(address)
            except OSError:  # multiprocessing's own start says why, where `cluster.py` tells the TA
                return False
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(alive_r)
                os.close(alive_w)
                if not util.is_abstract_socket_namespace(address):
                    os.unlink(address)
                return False
            if pid == 0:
                os.close(alive_w)
                _serve(listener.fileno(), alive_r)
            os.close(alive_r)
        server._forkserver_address, server._forkserver_alive_fd, server._forkserver_pid = address, alive_w, pid
    return True


def _shared() -> None:
    """What the command and its fork server share: torch, imported and warmed up as for `--jobs`,
    and the memory holding it collapsed into huge pages before the fork (`sandbox/hugepages.py`)."""
    from gradegrad.entry import warm_up
    from gradegrad.sandbox import hugepages

    warm_up()
    hugepages.collapse()


def _serve(listener_fd: int, alive_r: int) -> None:
    """The forked fork server: keep only the descriptors multiprocessing would pass a fresh one
    (and the standard streams), take Ctrl-C as Python does by default while it imports the preload
    (the console script's handler is for the command; ignored where the command ignores it), and
    serve until every client has gone, once it has imported the preload (which multiprocessing's
    loop does first; from then on it ignores Ctrl-C, and so do its forks: `cluster_preload.py`).
    Never returns, and never runs this process's exit handlers."""
    import os
    from multiprocessing import forkserver

    try:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # (a command started in the background)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        # not multiprocessing.util.close_all_fds_except: on Python 3.11 its empty ranges between kept
        # descriptors (os.closerange(0, 0)) close every descriptor, these included
        keep = {0, 1, 2, listener_fd, alive_r}
        for fd in map(int, os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ()):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        global forked
        forked = True
        forkserver.main(listener_fd, alive_r, [PRELOAD])
    except BaseException:  # noqa: BLE001 - SystemExit once the clients are gone; nothing to report to
        pass
    finally:
        os._exit(0)


def stop(workers: list[int], seconds: float = STOP_WAIT) -> None:
    """Once the LocalCluster is closed: its worker processes (the fork server's children, not this
    process's) get `seconds` to exit, then are killed (they hold nothing by then; what they leave
    comes to this process, a subreaper, for `cluster_worker.sweep_orphans`); then the fork server
    is killed (its own exit would run the interpreter's slow teardown of torch), with whatever it
    still has (workers being started: a command that ended before it took the cluster it started,
    `cluster.start_early`)."""
    from multiprocessing import forkserver

    deadline = time.monotonic() + seconds
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.01)
    server = forkserver._forkserver
    forks = getattr(server, "_forkserver_pid", None) or 0
    if forks > 0:  # stopped first, so that it forks nothing more: what it has are workers being started
        signal_all([forks], signal.SIGSTOP)
        workers = [*workers, *tree(forks)[1:], forks]
    signal_all([pid for pid in workers if pid > 0 and _alive(pid)], signal.SIGKILL)
    stopping = getattr(server, "_stop", None)  # closes its pipe and reaps it (what the standard library's tests use)
    if stopping is not None:
        try:
            stopping()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, waiting for its parent to reap it, does not)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != b"Z"


def is_local(address: str | None) -> bool:
    """Whether a `--cluster` address asks for a cluster here (`local`, `local:N`)."""
    return address is not None and (address == "local" or address.startswith("local:"))
