"""The evaluator's seccomp filter (gradegrad/sandbox/layers/seccomp.py): the policy as both
compilers write it, and as the kernel enforces it on a process of this test's own."""

import errno
import json
import os
import platform
import pty
import socket
import termios

import pytest

from gradegrad.sandbox.layers import seccomp

ARCH = seccomp.AUDIT_ARCH.get(platform.machine())
I386, ARM32, X32_BIT = 0x40000003, 0x40000028, 0x40000000
NR = seccomp.NUMBERS.get(platform.machine(), {})
pytestmark = pytest.mark.skipif(ARCH is None, reason=f"no seccomp policy for {platform.machine()}")

ALLOW, KILL = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS
EPERM, EACCES, ENOSYS = (seccomp.errno_action(e) for e in (errno.EPERM, errno.EACCES, errno.ENOSYS))


def cases():
    """(what, nr, arch, args, expected action) on this machine's architecture."""
    a = ARCH
    table = [(f"{name} is refused", NR[name], a, (), EPERM) for name in seccomp.DENIED]
    table += [
        ("read is allowed", 0 if platform.machine() == "x86_64" else 63, a, (), ALLOW),
        ("an i386 system call kills the process", 359, I386, (2, 2, 0), KILL),
        ("an arm32 system call kills the process", 281, ARM32, (2, 2, 0), KILL),
        ("socket(AF_INET)", NR["socket"], a, (socket.AF_INET, socket.SOCK_DGRAM), EACCES),
        ("socket(AF_UNIX) too", NR["socket"], a, (socket.AF_UNIX, socket.SOCK_STREAM), EACCES),
        ("socketpair(AF_UNIX)", NR["socketpair"], a, (socket.AF_UNIX, socket.SOCK_STREAM), ALLOW),
        ("socketpair(AF_INET6)", NR["socketpair"], a, (socket.AF_INET6,), EACCES),
        ("socketpair, AF_UNIX with high bits set", NR["socketpair"], a, (1 | 1 << 32,), EACCES),
        ("ioctl TIOCSTI", NR["ioctl"], a, (0, termios.TIOCSTI), EPERM),
        ("ioctl TIOCSTI with high bits set (the kernel ignores them)", NR["ioctl"], a, (0, 1 << 32 | termios.TIOCSTI),
         EPERM),
        ("ioctl TIOCLINUX", NR["ioctl"], a, (0, 0x541C), EPERM),
        ("ioctl TCGETS", NR["ioctl"], a, (0, termios.TCGETS), ALLOW),
        ("fork-like clone", NR["clone"], a, (0x01200011,), ALLOW),
        ("clone into a new user namespace", NR["clone"], a, (0x10000000 | 17,), EPERM),
        ("clone into a new network namespace", NR["clone"], a, (0x40000000,), EPERM),
        ("clone3 (flags out of sight)", NR["clone3"], a, (), ENOSYS),
        ("SysV shm with an IPC namespace", NR["shmget"], a, (), ALLOW),
    ]
    if platform.machine() == "x86_64":
        table.append(("an x32 system call kills the process", X32_BIT | NR["socket"], a, (2, 2, 0), KILL))
    return table


@pytest.mark.parametrize("what,nr,arch,args,expected", cases(), ids=[c[0] for c in cases()])
def test_the_builtin_compiler_writes_the_policy(what, nr, arch, args, expected):
    program = seccomp.compile_builtin()
    assert seccomp.evaluate(program, nr, arch, tuple(args) + (0,) * (6 - len(args))) == expected


def _libseccomp():
    try:
        return seccomp.compile_libseccomp()
    except (ImportError, RuntimeError, OSError) as exc:
        pytest.skip(f"libseccomp is not available here ({exc})")


@pytest.mark.parametrize("what,nr,arch,args,expected", cases(), ids=[c[0] for c in cases()])
def test_libseccomp_writes_the_same_policy(what, nr, arch, args, expected):
    program = _libseccomp()
    assert seccomp.evaluate(program, nr, arch, tuple(args) + (0,) * (6 - len(args))) == expected


def test_without_an_ipc_namespace_sysv_ipc_is_refused_by_both():
    builtin = seccomp.compile_builtin(ipc_namespace=False)
    assert seccomp.evaluate(builtin, NR["shmget"], ARCH) == EPERM
    _libseccomp()
    assert seccomp.evaluate(seccomp.compile_libseccomp(False), NR["shmget"], ARCH) == EPERM


def test_the_builtin_syscall_table_agrees_with_libseccomp():
    sc = pytest.importorskip("pyseccomp") if not _has_official() else __import__("seccomp")
    arch = {"x86_64": sc.Arch.X86_64, "aarch64": sc.Arch.AARCH64}
    for machine, numbers in seccomp.NUMBERS.items():
        for name, number in numbers.items():
            assert sc.resolve_syscall(arch[machine], name) == number, (machine, name)


def _has_official():
    try:
        import seccomp  # noqa: F401
        return True
    except ImportError:
        return False


def _in_filtered_child(program: bytes, probe) -> dict:
    """Run `probe()` in a forked child under `program`; its result (JSON) or how it died."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            seccomp.install(program)
            os.write(write_fd, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    status = os.waitpid(pid, 0)[1]
    return {"result": json.loads(data) if data else None, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}


def _errno(fn):
    try:
        fn()
        return 0
    except OSError as exc:
        return exc.errno


def _kernel_probe():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    master, slave = pty.openpty()
    results = {
        "socket": _errno(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)),
        "socketpair": _errno(lambda: socket.socketpair()),
        "tiocsti": _errno(lambda: __import__("fcntl").ioctl(slave, termios.TIOCSTI, b"x")),
        "io_uring": ctypes.get_errno() if libc.syscall(NR["io_uring_setup"], 4, ctypes.create_string_buffer(120)) < 0 else 0,
        "unshare": ctypes.get_errno() if libc.unshare(0x10000000) < 0 else 0,
    }
    pid = os.fork()  # plain fork still works
    if pid == 0:
        os._exit(7)
    results["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return results


@pytest.mark.parametrize("compiler", ["builtin", "libseccomp"])
def test_the_kernel_enforces_the_policy(compiler):
    program = seccomp.compile_builtin() if compiler == "builtin" else _libseccomp()
    got = _in_filtered_child(program, _kernel_probe)["result"]
    assert got == {"socket": errno.EACCES, "socketpair": 0, "tiocsti": errno.EPERM, "io_uring": errno.EPERM,
                   "unshare": errno.EPERM, "fork": 7}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="int 0x80 is x86")
@pytest.mark.parametrize("compiler", ["builtin", "libseccomp"])
def test_a_32_bit_system_call_kills_the_process(compiler):
    """socket(AF_INET, SOCK_DGRAM) through int 0x80 (machine code run with ctypes)."""
    program = seccomp.compile_builtin() if compiler == "builtin" else _libseccomp()

    def int80():
        import ctypes
        import mmap

        mem = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        # push rbx; mov eax, 359; mov ebx, 2; mov ecx, 2; xor edx, edx; int 0x80; pop rbx; ret
        mem.write(bytes.fromhex("53b867010000bb02000000b90200000031d2cd805bc3"))
        return ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(mem)))()

    died = _in_filtered_child(program, int80)
    assert died["result"] is None and died["signal"] == 31  # SIGSYS
