"""A seccomp filter that holds: the system calls an evaluator never needs, refused by the kernel.

The policy (data, below), for every thread of the evaluator and all it starts:
- any other architecture's system calls (i386 through `int 0x80`, x32): the process is killed;
- io_uring (it performs I/O, sockets included, without the system calls this filter sees),
  ptrace, process_vm_readv/writev, pidfd_getfd, bpf, keyrings, perf_event_open, userfaultfd,
  mounting, unshare, setns, kernel modules, kexec, reboot, swap, acct, syslog: EPERM;
- clone with a namespace flag: EPERM; clone3 (its flags are out of a filter's sight): ENOSYS, so
  the C library falls back to clone;
- socket(): EACCES for every family; socketpair(): AF_UNIX only;
- ioctl TIOCSTI (type into a terminal) and TIOCLINUX: EPERM;
- without an IPC namespace of its own: SysV shared memory, semaphores, message queues (they
  would outlive the evaluator on the host): EPERM.

The program is compiled once, in the fork server, by libseccomp where it is installed (through
the official `seccomp` binding, else `pyseccomp`, a ctypes binding with the same API): it knows
every architecture's numbers and the x32 trap. Without libseccomp, `compile_builtin` writes the
same policy as classic BPF for x86-64 and aarch64 (the tests check both give the same answers).
Each evaluator loads the compiled bytes (`install`), with SECCOMP_FILTER_FLAG_TSYNC.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import tempfile

from gradegrad.sandbox.layers.kernel import MACHINE, PR_SET_NO_NEW_PRIVS, prctl, syscall

DENIED = ("io_uring_setup", "io_uring_enter", "io_uring_register", "ptrace", "process_vm_readv", "process_vm_writev",
          "pidfd_getfd", "bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd", "mount",
          "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
          "open_tree", "mount_setattr", "open_by_handle_at", "kexec_load", "kexec_file_load", "init_module",
          "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "syslog")
SYSV_IPC = ("shmget", "semget", "msgget")  # denied too where the evaluator has no IPC namespace of its own
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
AF_UNIX = 1
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
NUMBERS = {  # the builtin compiler's syscall table (libseccomp has its own for every arch)
    "x86_64": dict(io_uring_setup=425, io_uring_enter=426, io_uring_register=427, ptrace=101, process_vm_readv=310,
                   process_vm_writev=311, pidfd_getfd=438, bpf=321, keyctl=250, add_key=248, request_key=249,
                   perf_event_open=298, userfaultfd=323, mount=165, umount2=166, pivot_root=155, unshare=272,
                   setns=308, fsopen=430, fsconfig=431, fsmount=432, fspick=433, move_mount=429, open_tree=428,
                   mount_setattr=442, open_by_handle_at=304, kexec_load=246, kexec_file_load=320, init_module=175,
                   finit_module=313, delete_module=176, reboot=169, swapon=167, swapoff=168, acct=163, syslog=103,
                   socket=41, socketpair=53, ioctl=16, clone=56, clone3=435, shmget=29, semget=64, msgget=68),
    "aarch64": dict(io_uring_setup=425, io_uring_enter=426, io_uring_register=427, ptrace=117, process_vm_readv=270,
                    process_vm_writev=271, pidfd_getfd=438, bpf=280, keyctl=219, add_key=217, request_key=218,
                    perf_event_open=241, userfaultfd=282, mount=40, umount2=39, pivot_root=41, unshare=97, setns=268,
                    fsopen=430, fsconfig=431, fsmount=432, fspick=433, move_mount=429, open_tree=428,
                    mount_setattr=442, open_by_handle_at=265, kexec_load=104, kexec_file_load=294, init_module=105,
                    finit_module=273, delete_module=106, reboot=142, swapon=224, swapoff=225, acct=89, syslog=116,
                    socket=198, socketpair=199, ioctl=29, clone=220, clone3=435, shmget=194, semget=190,
                    msgget=186),
}

RET_KILL_PROCESS, RET_ALLOW = 0x80000000, 0x7FFF0000
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1


def errno_action(code: int) -> int:
    return 0x00050000 | code


def _binding():
    try:
        import seccomp  # the official binding, built with libseccomp (e.g. Debian's python3-seccomp)
    except ImportError:
        import pyseccomp as seccomp  # RuntimeError when libseccomp.so is missing
    return seccomp


def denied(ipc_namespace: bool = True) -> tuple[str, ...]:
    return DENIED if ipc_namespace else DENIED + SYSV_IPC


def compile_libseccomp(ipc_namespace: bool = True) -> bytes:
    """The policy as BPF, by libseccomp (ImportError/RuntimeError/OSError where it is missing)."""
    sc = _binding()
    f = sc.SyscallFilter(sc.ALLOW)
    f.set_attr(sc.Attr.ACT_BADARCH, RET_KILL_PROCESS)
    f.set_attr(sc.Attr.CTL_NNP, 0)  # no_new_privs is set by `credentials`, and again by `install`
    eperm, eacces = sc.ERRNO(errno.EPERM), sc.ERRNO(errno.EACCES)
    for name in denied(ipc_namespace):
        try:
            f.add_rule(eperm, name)
        except (OSError, ValueError):
            pass  # a call this kernel/libseccomp does not know: nothing to deny
    for flag in NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(eacces, "socket")
    f.add_rule(eacces, "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as fh:
        f.export_bpf(fh)
        fh.seek(0)
        return fh.read()


# ------------------------------------------------------------------ the builtin compiler (classic BPF)

LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06


class _Program:
    """Classic BPF with forward jumps to labels (resolved by `bytes`)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, object, object]] = []  # (op, k, jt, jf): jumps are labels or 0
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, k, jt, jf))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def bytes(self) -> bytes:
        out = []
        for i, (code, k, jt, jf) in enumerate(self.code):
            offsets = [self.labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
            if not all(0 <= o < 256 for o in offsets):
                raise ValueError("BPF jump out of range")
            out.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k & 0xFFFFFFFF))
        return b"".join(out)


def _arg(i: int, high: bool = False) -> int:
    return 16 + 8 * i + (4 if high else 0)  # seccomp_data.args[i], little-endian words


def compile_builtin(machine: str = MACHINE, ipc_namespace: bool = True) -> bytes:
    """The same policy, without libseccomp, for x86-64 and aarch64 (little-endian)."""
    nr, p = NUMBERS[machine], _Program()
    p.op(LD_W_ABS, 4)  # seccomp_data.arch
    p.op(JEQ_K, AUDIT_ARCH[machine], 0, "kill")
    p.op(LD_W_ABS, 0)  # seccomp_data.nr
    if machine == "x86_64":
        p.op(JGE_K, X32_SYSCALL_BIT, "kill", 0)
    for name in denied(ipc_namespace):
        p.op(JEQ_K, nr[name], "eperm", 0)
    for name, target in (("clone", "clone"), ("clone3", "enosys"), ("socket", "eacces"),
                         ("socketpair", "socketpair"), ("ioctl", "ioctl")):
        p.op(JEQ_K, nr[name], target, 0)
    p.op(RET_K, RET_ALLOW)
    p.label("clone")
    p.op(LD_W_ABS, _arg(0))
    p.op(JSET_K, sum(NAMESPACE_FLAGS), "eperm", 0)
    p.op(RET_K, RET_ALLOW)
    p.label("socketpair")
    p.op(LD_W_ABS, _arg(0, high=True))
    p.op(JEQ_K, 0, 0, "eacces")
    p.op(LD_W_ABS, _arg(0))
    p.op(JEQ_K, AF_UNIX, 0, "eacces")
    p.op(RET_K, RET_ALLOW)
    p.label("ioctl")
    p.op(LD_W_ABS, _arg(1))
    p.op(JEQ_K, TIOCSTI, "eperm", 0)
    p.op(JEQ_K, TIOCLINUX, "eperm", 0)
    p.op(RET_K, RET_ALLOW)
    for name, action in (("eperm", errno_action(errno.EPERM)), ("eacces", errno_action(errno.EACCES)),
                         ("enosys", errno_action(errno.ENOSYS)), ("kill", RET_KILL_PROCESS)):
        p.label(name)
        p.op(RET_K, action)
    return p.bytes()


def compile_policy(ipc_namespace: bool = True) -> tuple[bytes, str]:
    """(BPF program, the layer's name): libseccomp's where it works, else the builtin one."""
    try:
        return compile_libseccomp(ipc_namespace), "seccomp"
    except (ImportError, RuntimeError, OSError, AttributeError):
        pass
    if MACHINE in NUMBERS:
        return compile_builtin(MACHINE, ipc_namespace), "seccomp-builtin"
    return b"", ""


def install(program: bytes) -> None:
    """Load a compiled filter on every thread of this process (no_new_privs first)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1, what="no_new_privs")
    filt = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(filt))
    buf = ctypes.create_string_buffer(fprog, len(fprog))
    syscall("seccomp", ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), buf)


_COMPILED: dict[bool, tuple[bytes, str]] = {}


def compiled(ipc_namespace: bool = True) -> tuple[bytes, str]:
    """The policy compiled once per process (the fork server compiles it before forking)."""
    if ipc_namespace not in _COMPILED:
        _COMPILED[ipc_namespace] = compile_policy(ipc_namespace)
    return _COMPILED[ipc_namespace]


def apply(ipc_namespace: bool = True) -> list[str]:
    """Install the filter here; the layer names now active (none where seccomp is missing)."""
    program, name = compiled(ipc_namespace)
    if not program:
        return []
    try:
        install(program)
    except OSError:
        return []
    return [name]


def evaluate(program: bytes, nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> int:
    """Run a classic BPF filter on one seccomp_data, as the kernel would: its action (for tests).

    Understands the instructions libseccomp and the builtin compiler emit."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            mode = code & 0xE0
            a = struct.unpack_from("=I", data, k)[0] if mode == 0x20 else k if mode == 0x00 else mem[k] if mode == 0x60 else a
        elif cls == 0x01:  # LDX
            x = k if code & 0xE0 == 0x00 else mem[k]
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            src = x if code & 0x08 else k
            op = code & 0xF0
            a = {0x00: a + src, 0x10: a - src, 0x50: a & src, 0x40: a | src, 0xA0: a ^ src,
                 0x60: a << src, 0x70: a >> src, 0x20: a * src}.get(op, a) & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            src = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return (a if code & 0x18 == 0x10 else k) & 0xFFFFFFFF
        elif cls == 0x07:  # MISC: TAX / TXA
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
