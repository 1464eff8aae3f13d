"""What a fork of the grader forgets before it becomes the fork server (stdlib only).

The console script forks the fork server from itself right after importing torch, so that the
grader, the fork server and every evaluator share torch's pages instead of each process holding
its own copy. At that moment the grader has read nothing but its command line and its
environment. Both are still in its memory, and an evaluator (a fork of the fork server) could read
its own memory: the environment is where a CI job keeps its tokens. So, before the fork server
does anything else:

- `environment`: every environment string is overwritten with zeros, the kernel's copy (what
  /proc/<pid>/environ reads) and Python's (`os.environ`'s bytes), then the fork server's own
  environment (`environment.child_env`) is set;
- `command_line`: the kernel's copy of the command line becomes the fork server's name, and
  `sys.argv` with it;
- `descriptors`: stdin, stdout and stderr become /dev/null, one descriptor is kept (the socket to
  the grader, as fd 3) and every other is closed;
- `import_path`: `sys.path` becomes what `python -I` would have (no script folder or working
  directory, no PYTHONPATH, no user site-packages), with gradegrad's own folder first.

Strings Python decoded from the environment and already freed may survive in freed memory; the
grader reads no variable before this fork but the few torch and gradegrad look up by name.
"""

from __future__ import annotations

import ctypes
import os
import sys

NAME = b"gradegrad-forkserver"
ARG_START, ARG_END, ENV_START, ENV_END = 45, 46, 47, 48  # proc(5)'s fields 48 to 51, counted from field 3


def _stat_fields() -> list[int]:
    """This process's /proc/self/stat after the command name: field 3 is at index 0 (none
    without a /proc: the kernel's copies are then left as they are, and all else is done)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return []
    return [int(x) if x.lstrip(b"-").isdigit() else 0 for x in data[data.rfind(b")") + 2:].split()]


def _zero(start: int, end: int) -> None:
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)


def _zero_bytes(value: bytes) -> None:
    """Overwrite a bytes object's contents in place (it must have no other use left). Objects of
    length 0 or 1 are interpreter-wide singletons and are left alone."""
    if len(value) > 1:
        address = id(value) + bytes.__basicsize__ - 1
        if ctypes.string_at(address, len(value)) == value:
            ctypes.memset(address, 0, len(value))


def environment(env: dict[str, str]) -> None:
    """Forget the inherited environment (the kernel's copy and Python's); then set `env`."""
    fields = _stat_fields()
    data = os.environ._data  # type: ignore[attr-defined]  # bytes on POSIX
    inherited = list(data.items())
    for key, _ in inherited:  # unsetenv each: the C library no longer points at the strings below
        try:
            os.unsetenv(key)
        except (OSError, ValueError):  # a name the C library refuses (an entry starting with "=")
            pass
    data.clear()
    for key, value in inherited:
        for item in (key, value):
            if isinstance(item, bytes):
                _zero_bytes(item)
    del inherited
    if len(fields) > ENV_END:
        _zero(fields[ENV_START], fields[ENV_END])
    os.environ.update(env)


def command_line() -> None:
    """Replace the kernel's copy of the command line by the fork server's name (what `ps` shows)."""
    fields = _stat_fields()
    if len(fields) > ARG_END:
        start, end = fields[ARG_START], fields[ARG_END]
        if 0 < start < end:
            _zero(start, end)
            name = NAME[:end - start - 1]
            ctypes.memmove(start, name, len(name))
    sys.argv[:] = [NAME.decode()]
    sys.orig_argv[:] = [NAME.decode()]


def descriptors(keep: int) -> None:
    """stdin, stdout, stderr from /dev/null; `keep` becomes fd 3; everything else is closed."""
    devnull = os.open(os.devnull, os.O_RDWR)
    if keep != 3:
        os.dup2(keep, 3)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(4, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def import_path(package_root: str, pythonpath: str) -> None:
    """`sys.path` as a fresh `python -I` (plus gradegrad's folder) would have it."""
    import site

    drop = {os.path.abspath(p) for p in pythonpath.split(os.pathsep) if p}
    try:  # the working directory, wherever it sits in the path (a multiprocessing child's path is its
        drop.add(os.path.abspath(os.getcwd()))  # parent's, its working directory too)
    except OSError:
        pass
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    path = sys.path if getattr(sys.flags, "safe_path", False) else sys.path[1:]  # sys.path[0]: the script's folder or cwd
    kept = [p for p in path if p and os.path.abspath(p) not in drop and p != user and p != package_root]
    dropped = set(sys.path) - set(kept)
    sys.path[:] = [package_root, *kept]
    for entry in dropped:
        sys.path_importer_cache.pop(entry, None)  # the finders of the dropped folders, with their listings
