"""The evaluator's own file system (in its mount namespace): only what it needs, read-only.

    /                     a small tmpfs, read-only once built
    /usr, /lib*, /bin     the host's, read-only (or the symlinks to /usr a merged-/usr system has)
    <python prefixes>     sys.prefix, base and exec prefixes, site-packages folders: read-only,
                          at the same paths (so every module still imports from where it was)
    <gradegrad package>   read-only, at the same path
    <submission>          a read-only copy of the one file, at the same path (tracebacks match)
    /etc                  passwd and group naming the evaluator's user, hosts, ld.so.cache
    /dev                  null, zero, random, urandom (and the GPU's nodes with --device cuda);
                          no tty, pts, console or ptmx: no terminal to reach
    /proc                 a proc of the evaluator's PID namespace (its own processes only)
    /home/student         a private tmpfs of bounded size: cwd, HOME, TMPDIR; /tmp, /var/tmp and
                          /dev/shm point there. It disappears with the mount namespace, whatever
                          its files' modes or flags.

Nothing else of the host exists there: no /home, /root, /tmp, /run, no daemon's socket. Built by
PID 1 of the new namespaces while it still has capabilities (`build`), then `pivot_root`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from gradegrad.sandbox.layers.kernel import check, libc, syscall, write_file

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
# statvfs flags of a mount that a bind remount inside a user namespace must keep (they are locked)
_KEPT = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
         (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset", "/dev/dri",
               "/dev/nvidia-caps")
SCRATCH = "/home/student"


@dataclass(frozen=True)
class Plan:
    """What the evaluator's root shows, decided once in the fork server."""

    binds: tuple[str, ...]  # host folders shown read-only at the same path
    links: tuple[tuple[str, str], ...]  # (path, target) symlinks recreated as they are on the host
    devices: tuple[str, ...]  # host device nodes bound into /dev
    sysfs: bool = False  # /sys, read-only (CUDA reads the GPU's topology there)


def plan(package_dir: str, device: str = "cpu") -> Plan:
    """The folders an evaluator needs: system libraries, Python and its packages, gradegrad."""
    wanted = [*SYSTEM, sys.prefix, sys.base_prefix, sys.exec_prefix, package_dir]
    wanted += [p for p in sys.path if ("site-packages" in p or "dist-packages" in p)]
    binds, links = [], []
    for path in wanted:
        if not path or not os.path.isabs(path) or not os.path.exists(path):
            continue
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /lib -> usr/lib on merged-/usr systems
            links.append((path, os.readlink(path)))
            continue
        path = os.path.realpath(path)
        if os.path.isdir(path):
            binds.append(path)
    binds = sorted(set(binds))
    binds = [p for p in binds if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in binds)]
    devices = list(DEVICES)
    if device.startswith("cuda"):
        devices += [d for d in GPU_DEVICES if os.path.exists(d)]
        devices += sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    return Plan(tuple(binds), tuple(sorted(set(links))), tuple(d for d in devices if os.path.exists(d)),
                device.startswith("cuda") and os.path.isdir("/sys"))


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def bind_read_only(source: str, target: str, recursive: bool = False) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    kept = 0
    flags = os.statvfs(source).f_flag
    for st, ms in _KEPT:
        if flags & st:
            kept |= ms
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | kept)


def _node(root: str, path: str) -> str:
    """The path inside `root` for the host's `path`, its parent folders made."""
    inside = root + path
    os.makedirs(os.path.dirname(inside), exist_ok=True)
    return inside


def _etc(root: str, uid: int, gid: int) -> None:
    os.makedirs(root + "/etc", exist_ok=True)
    Path(root + "/etc/passwd").write_text(f"root:x:0:0:root:/:/bin/false\nstudent:x:{uid}:{gid}:student:{SCRATCH}:/bin/false\n"
                                          "nobody:x:65534:65534:nobody:/:/bin/false\n")
    Path(root + "/etc/group").write_text(f"root:x:0:\nstudent:x:{gid}:\nnogroup:x:65534:\n")
    Path(root + "/etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    for name in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.isfile(name):
            Path(root + name).write_bytes(Path(name).read_bytes())


def _dev(root: str, devices: tuple[str, ...]) -> None:
    os.makedirs(root + "/dev", exist_ok=True)  # (a submission kept under /dev would be hidden: none is)
    for path in devices:
        inside = _node(root, path)
        if os.path.isdir(path):
            os.makedirs(inside, exist_ok=True)
            mount(path, inside, None, MS_BIND | MS_REC)
        else:
            Path(inside).touch()
            mount(path, inside, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("shm", SCRATCH)):
        os.symlink(target, f"{root}/dev/{name}")


def build(root: str, layout: Plan, submission: str, scratch_bytes: int, uid: int, gid: int,
          memory: int | None = None) -> list[str]:
    """Make `root` (an empty folder) the evaluator's whole file system and move into it.

    Run by PID 1 of fresh PID and mount namespaces, with capabilities in them; returns the
    layer names now active. Raises OSError when the kernel refuses a step."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0755")
    for path in layout.binds:
        os.makedirs(root + path, exist_ok=True)
        bind_read_only(path, root + path)
    for path, target in layout.links:
        os.symlink(target, root + path)
    os.makedirs(root + SCRATCH)
    mount("tmpfs", root + SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={max(scratch_bytes, 1 << 20)},mode=0700,uid={uid},gid={gid}")
    if submission and not os.path.lexists(root + submission):  # (under a folder shown read-only: it is there)
        inside = _node(root, submission)
        with open(submission, "rb") as src, open(inside, "wb") as dst:
            dst.write(src.read())
        os.chmod(inside, 0o444)
    _etc(root, uid, gid)
    _dev(root, layout.devices)
    for path in ("/tmp", "/var/tmp"):  # (unless the submission's own folder is there)
        if not os.path.lexists(root + path):
            _node(root, path)
            os.symlink(SCRATCH, root + path)
    active = ["private-root", "scratch-tmpfs"]
    os.makedirs(root + "/proc", exist_ok=True)
    try:
        mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _ipc_limits(root + "/proc", memory)
        mount(None, root + "/proc", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        active.append("own-proc")
    except OSError:
        pass  # no /proc at all rather than the host's
    if layout.sysfs:
        os.makedirs(root + "/sys", exist_ok=True)
        bind_read_only("/sys", root + "/sys", recursive=True)
    os.chdir(root)
    syscall("pivot_root", b".", b".")
    check(libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(SCRATCH)
    return active


def _ipc_limits(proc: str, memory: int | None) -> None:
    """SysV shared memory of this IPC namespace bounded by the memory limit (best effort)."""
    if not memory:
        return
    for name, value in (("shmmax", memory), ("shmall", memory // 4096), ("shmmni", 64)):
        try:
            write_file(f"{proc}/sys/kernel/{name}", str(value))
        except OSError:
            pass


def probe_mounts() -> None:
    """What `namespaces.probe` tries: a private tmpfs and a proc of the new PID namespace."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
    os.makedirs("/tmp/proc")
    mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
