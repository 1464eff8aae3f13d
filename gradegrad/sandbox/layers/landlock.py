"""Kernel protections a child applies to itself before the submission's code runs.

Unprivileged, best effort, each reported by name so the report says which were active:
- `rlimit-as`: an address-space limit (CPU only; set after importing torch, which needs ~2 GiB).
- `landlock-fs`: read only the Python installation, system folders and the submission file;
  write only inside the scratch directory (Landlock, Linux 5.13+).
- `landlock-net`: no TCP bind or connect (Landlock ABI 4, Linux 6.7+).
- `landlock-signal`: no signals to processes outside the sandbox, so the grader cannot be killed
  (Landlock ABI 6, Linux 6.12+).
- `seccomp-socket`: no sockets other than Unix ones (seccomp-bpf).
Nothing here decides a grade; a protection the kernel lacks is simply absent from the list.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct
import sys
from pathlib import Path
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
                   "/dev", "/run/nvidia-persistenced")


def limit_memory(limit: int | None) -> list[str]:
    if not limit:
        return []
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return ["rlimit-as"]


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


def landlock(readable: Iterable[str], writable: Iterable[str]) -> list[str]:
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
        _add_path(ruleset, "/dev", reads | FS_WRITE_FILE)  # /dev/null, and GPU device files
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


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_sockets() -> list[str]:
    """A seccomp filter: socket() for anything but AF_UNIX fails with EACCES."""
    if SYS is None:
        return []
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]
    LD, JEQ, RET = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EACCES
    prog = b"".join([
        _bpf(LD, 4), _bpf(JEQ, arch, 0, 5),          # seccomp_data.arch
        _bpf(LD, 0), _bpf(JEQ, SYS[4], 0, 3),        # seccomp_data.nr == socket
        _bpf(LD, 16), _bpf(JEQ, 1, 1, 0),            # args[0] (low word) == AF_UNIX
        _bpf(RET, DENY), _bpf(RET, ALLOW), _bpf(RET, ALLOW),
    ])
    n = len(prog) // 8
    filt = ctypes.create_string_buffer(prog, len(prog))
    fprog = struct.pack("=HxxxxxxQ", n, ctypes.addressof(filt))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if _libc.syscall(SYS[3], ctypes.c_uint(1), ctypes.c_uint(0), fbuf) != 0:  # SECCOMP_SET_MODE_FILTER
        return []
    return ["seccomp-socket"]


def readable_roots(submission: str, package_dir: str) -> list[str]:
    """What the child may read: Python, system folders, gradegrad itself and the submission."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, package_dir, submission, *SYSTEM_READABLE}
    roots.update(p for p in sys.path if ("site-packages" in p or "dist-packages" in p) and Path(p).is_dir())
    return sorted(roots)
