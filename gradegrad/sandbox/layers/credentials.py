"""Never root: the evaluator's user, capabilities and privileges, dropped before the submission runs.

A root grader's evaluator becomes a user of its own, `UID_BASE + its host pid` (unique among
the evaluators alive on the machine, so that co-tenants of a batch cannot signal each other or
share an RLIMIT_NPROC count), with the same number as its group and no supplementary groups.
A grader run by anyone else gives its evaluator its own uid, inside a user namespace where the
evaluator is uid 0 with no capabilities left. Either way:
- the capability bounding set is emptied (where the process may: a root grader's evaluator, or
  one in its user namespace), then every capability (permitted, effective, inheritable,
  ambient) is dropped;
- the secure bits make uid 0 (inside a user namespace) worth nothing at execve, for good;
- no_new_privs: no setuid binary or file capability can give anything back.
"""

from __future__ import annotations

import ctypes
import os

from gradegrad.sandbox.layers.kernel import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP,
                                             PR_SET_NO_NEW_PRIVS, PR_SET_SECUREBITS, prctl, syscall)

UID_BASE = 0x7E000000  # 2113929216: above systemd's container ranges, below 2^31
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS_LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE, each locked
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80


def evaluator_uid(host_pid: int) -> int:
    return UID_BASE + host_pid


def _last_cap() -> int:
    try:
        return int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        return 63


def _capset_zero() -> None:
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two of {effective, permitted, inheritable}, all empty
    syscall("capset", header, data)


def drop(uid: int | None, host_uid: int) -> list[str]:
    """Drop to `uid` (a root grader's evaluator; None: keep this uid) and every capability;
    `host_uid` is who this process is outside any user namespace, after the drop. Layer names.

    Needs /proc (the host's or the evaluator's own) for the last capability's number."""
    last = _last_cap()
    try:
        prctl(PR_SET_SECUREBITS, SECUREBITS, what="securebits")
    except OSError:
        pass  # without CAP_SETPCAP nothing here is privileged anyway
    for cap in range(last + 1):
        try:
            prctl(PR_CAPBSET_DROP, cap, what="capbset")
        except OSError:
            break
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="ambient")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _capset_zero()
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="no_new_privs")
    active = ["no-capabilities", "no-new-privileges"]
    if host_uid != 0:
        active.insert(0, "unprivileged-uid")
    return active


def capabilities() -> dict[str, int]:
    """The capability sets of this process, from /proc/self/status (0 is none)."""
    found = {}
    for line in open("/proc/self/status"):
        if line.startswith("Cap"):
            name, value = line.split(":")
            found[name] = int(value, 16)
    return found
