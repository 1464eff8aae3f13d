"""The grader's scratch folders in the temporary directory, and what a killed grader left there.

A grading process makes folders for its fork server (`gradegrad-zygote-`), for each evaluator
(`gradegrad-eval-`) and for a submission it writes out (`gradegrad-submission-`,
`gradegrad-source-`; `validate`'s reference answers: `gradegrad-validate-`), and removes each
when done. A process that is killed (a Dask worker out of memory or stopped by its nanny, a
`--jobs` worker killed, a TA's `kill -9`) removes nothing.
So each folder's name says which process made it: the machine's boot, its PID namespace, its pid
and start time (`owner`); the first fork server a process starts removes the folders whose maker
is gone (`sweep`): made on this machine since it booted, in this PID namespace, by a process that
no longer runs, and owned by this user. A folder made elsewhere (another machine sharing a network
TMPDIR, a container sharing /tmp) is never touched: its maker cannot be looked up from here.
Standard library only; where there is no /proc, names carry no owner and nothing is swept.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator

from gradegrad.sandbox.reaper import stat_fields

PREFIX = "gradegrad-"
_NAMED = re.compile(r"gradegrad-[a-z]+-([0-9a-f]{8}\.\d+)\.(\d+)\.(\d+)-")
_OWNER: dict[int, str] = {}  # pid -> its owner tag (a fork computes its own)
_SWEPT: list[bool] = []  # this process (or the process it is a fork of) has swept


def _here() -> str | None:
    """`boot.namespace`: this boot of this machine (the start of the kernel's boot id) and this
    process's PID namespace; None where they cannot be read, or where /proc shows the processes
    of another PID namespace than this process's (it was not mounted again after `unshare`):
    there a pid's start time would be another process's."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip().replace("-", "")[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
        if os.readlink("/proc/self") != str(os.getpid()):
            return None
    except OSError:
        return None
    return f"{boot}.{namespace}" if re.fullmatch(r"[0-9a-f]{8}", boot) else None


def _started(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot); None when it is gone or a zombie."""
    fields = stat_fields(pid)
    return None if fields is None or fields[0] == b"Z" else int(fields[19])


def owner() -> str:
    """`boot.namespace.pid.start` of this process ('' where they cannot be read)."""
    pid = os.getpid()
    if pid not in _OWNER:
        here, started = _here(), _started(pid)
        _OWNER[pid] = f"{here}.{pid}.{started}" if here is not None and started is not None else ""
    return _OWNER[pid]


def prefix(kind: str) -> str:
    """The name a scratch folder of `kind` starts with (`tempfile`'s prefix)."""
    tag = owner()
    return f"{PREFIX}{kind}-{tag}-" if tag else f"{PREFIX}{kind}-"


def make(kind: str) -> str:
    """A new private scratch folder of `kind` (mode 0700)."""
    return tempfile.mkdtemp(prefix=prefix(kind))


@contextmanager
def folder(kind: str) -> Iterator[str]:
    """`make(kind)` for the time of a `with` block, then removed (`remove_tree`); a process killed
    meanwhile leaves it to the next sweep."""
    path = make(kind)
    try:
        yield path
    finally:
        remove_tree(path)


def stale(name: str, here: str | None) -> bool:
    """Whether the folder `name` was made `here` (`_here()`) by a process now gone."""
    found = _NAMED.match(name)
    if found is None or here is None or found[1] != here:
        return False
    return _started(int(found[2])) != int(found[3])


def sweep(folder: str | None = None) -> int:
    """Remove the scratch folders in `folder` (the temporary directory) that this user's killed
    graders left; how many. Never raises."""
    here = _here()
    if here is None:
        return 0
    removed = 0
    try:
        with os.scandir(folder or tempfile.gettempdir()) as entries:
            for entry in entries:
                if not entry.name.startswith(PREFIX) or not stale(entry.name, here):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                    remove_tree(entry.path)
                    removed += 1
    except OSError:
        pass
    return removed


def sweep_once() -> None:
    """`sweep`, once in this process and the processes forked from it after."""
    if not _SWEPT:
        _SWEPT.append(True)
        sweep()


def remove_tree(path: str) -> None:
    """Delete a scratch folder whatever an evaluator did to it (no namespaces: it was the
    evaluator's own, on the host): folders it made unreadable, files it marked immutable."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    for _ in range(2):  # the second time: what was inside folders that were chmod 000
        try:
            os.chmod(path, 0o700, follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass
        for parent, dirs, files in os.walk(path, onerror=lambda exc: None):
            for name in dirs:
                try:
                    os.chmod(os.path.join(parent, name), 0o700, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    pass
            for name in files:
                _clear_flags(os.path.join(parent, name))
    shutil.rmtree(path, ignore_errors=True)


def _clear_flags(path: str) -> None:
    """Clear a file's immutable/append-only flags (only root can have set them)."""
    import array
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        fcntl.ioctl(fd, 0x40086602, array.array("l", [0]))  # FS_IOC_SETFLAGS
    except OSError:
        pass
    finally:
        os.close(fd)
