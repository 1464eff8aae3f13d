"""Landlock, an extra layer where the kernel has it: which files the evaluator may read and write.

Applied by the evaluator to itself at the `confine` request. With a mount namespace it repeats,
in the kernel's other words, what the evaluator's root already shows; without one it is the
only file system confinement:
- `landlock-fs`: read only Python, its packages, system folders, gradegrad and the submission
  file; write only the scratch folder and /dev/null (and the GPU's nodes with --device cuda);
- `landlock-net`: no TCP bind or connect (ABI 4, Linux 6.7+);
- `landlock-signal`: no signals to processes outside the sandbox, no abstract Unix sockets
  outside it (ABI 6, Linux 6.12+).
Landlock also forbids ptrace of processes outside the domain (so /proc/<grader>/environ).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
from typing import Iterable

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_NO_NEW_PRIVS = 38
SYS = {  # landlock_create_ruleset, landlock_add_rule, landlock_restrict_self, seccomp, socket
    "x86_64": (444, 445, 446, 317, 41),
    "aarch64": (444, 445, 446, 277, 198),
}.get(platform.machine())

# Landlock access rights (include/uapi/linux/landlock.h)
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_WRITES = sum(1 << i for i in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1
RULE_PATH_BENEATH = 1
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE

SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys",
                   "/run/nvidia-persistenced")
DEVICE_FILES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")


def _landlock_abi() -> int:
    if SYS is None:
        return 0
    abi = _libc.syscall(SYS[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


def _add_path(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            access &= FILE_RIGHTS
        attr = struct.pack("=Qi", access, fd)  # struct landlock_path_beneath_attr is packed
        buf = ctypes.create_string_buffer(attr, len(attr))
        _libc.syscall(SYS[1], ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), buf, ctypes.c_uint32(0))
    finally:
        os.close(fd)


def landlock(readable: Iterable[str], writable: Iterable[str], devices: Iterable[str] = DEVICE_FILES) -> list[str]:
    """Restrict this process and its descendants; returns the protections now active."""
    abi = _landlock_abi()
    if abi < 1:
        return []
    reads = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    writes = FS_WRITE_FILE | FS_WRITES | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", reads | writes, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(SYS[0], buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return []
    try:
        for path in readable:
            _add_path(ruleset, path, reads)
        for path in writable:
            _add_path(ruleset, path, reads | writes)
        for path in devices:  # /dev/null (written), the others read; GPU nodes with --device cuda
            _add_path(ruleset, path, reads | FS_WRITE_FILE)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if _libc.syscall(SYS[2], ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return []
    finally:
        os.close(ruleset)
    active = ["landlock-fs"]
    if net:
        active.append("landlock-net")
    if scoped:
        active.append("landlock-signal")
    return active


def readable_roots(submission: str, package_dir: str) -> list[str]:
    """What the child may read: Python, system folders, gradegrad itself and the submission."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, package_dir, submission, *SYSTEM_READABLE}
    roots.update(p for p in sys.path if ("site-packages" in p or "dist-packages" in p) and os.path.isdir(p))
    return sorted(roots)  # os.path.isdir: False where this user may not even look (Python under a 0700 /root)
