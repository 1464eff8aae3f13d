"""The C library and the few raw system calls the layers need (Linux, x86-64 and aarch64)."""

from __future__ import annotations

import ctypes
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MACHINE = platform.machine()
# system call numbers that the C library has no wrapper for (or not in every version)
NR = {
    "x86_64": {"pivot_root": 155, "capset": 126, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
               "landlock_restrict_self": 446, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "capset": 91, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
                "landlock_restrict_self": 446, "seccomp": 277},
}.get(MACHINE, {})

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def check(result: int, what: str) -> int:
    """`result` of a C call, or OSError(errno) naming `what`."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    return check(libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                            ctypes.c_ulong(0)), what)


def syscall(name: str, *args) -> int:
    if name not in NR:
        raise OSError(38, f"{name}: not supported on {MACHINE}")
    return check(libc.syscall(NR[name], *args), name)


def write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
