"""Namespaces per evaluator: its own PID, network, IPC, mount and UTS namespaces.

`enter` is called by the fork server's intermediate process (single-threaded: `unshare` of a user
namespace fails in a threaded process); the intermediate's next child is PID 1 of the new PID
namespace, the evaluator, so the evaluator's whole tree dies with it (the kernel kills every
process of a PID namespace when its first process exits). The network namespace has only a
loopback interface, down: no network of any kind, not even the host's Unix sockets by name
(those are hidden by the mount namespace) or abstract ones (bound to the network namespace).
SysV IPC objects live and die with the IPC namespace.

A root grader unshares directly; any other user goes through a user namespace in which it is
root only until `credentials.drop` (uid 0 in it maps to its own uid outside).
"""

from __future__ import annotations

import os

from gradegrad.sandbox.layers.kernel import PR_SET_DUMPABLE, check, libc, prctl, write_file

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
EVERY = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWCGROUP
NAMES = ("pid-namespace", "net-namespace", "ipc-namespace", "mount-namespace")


def unshare(flags: int) -> None:
    check(libc.unshare(flags), "unshare")


def enter() -> list[str]:
    """Unshare every namespace (a user namespace first, unless root); the layer names now active.

    Call in a single-threaded process; its children are born in the new PID namespace."""
    if os.geteuid() == 0:
        unshare(EVERY)
        return list(NAMES)
    prctl(PR_SET_DUMPABLE, 1, what="dumpable")  # (the fork server is not) else /proc/self/*_map are root's
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER | EVERY)
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/uid_map", f"0 {uid} 1")
    write_file("/proc/self/gid_map", f"0 {gid} 1")
    return [*NAMES, "user-namespace"]


def probe() -> str | None:
    """None when an evaluator can have its namespaces here, else why not (one line).

    Forks: the child enters the namespaces, forks the first process of the new PID namespace,
    which mounts a tmpfs and a /proc, as an evaluator's set-up would."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            try:
                enter()
                inner = os.fork()
                if inner == 0:
                    try:
                        from gradegrad.sandbox.layers.filesystem import probe_mounts

                        probe_mounts()
                    except OSError as exc:
                        os.write(write_fd, str(exc).encode()[:300])
                        os._exit(1)
                    os._exit(0)
                code = os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1])
            except OSError as exc:
                os.write(write_fd, str(exc).encode()[:300])
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        reason = fh.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return None if code == 0 else reason or f"set-up failed (exit code {code})"
