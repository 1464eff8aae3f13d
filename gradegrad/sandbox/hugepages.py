"""Torch's memory in huge pages, before the process that holds it is forked again and again.

After `import torch` a process holds about 150 MB of anonymous memory (the interpreter's heap,
torch's registrations). Every fork copies the page table entries of all of it (4 KiB each), and
every exit takes them down again: with an evaluator forked twice per submission (`spawn.py`),
that is most of what a fresh evaluator costs the kernel. Collapsed into 2 MiB pages
(`MADV_COLLAPSE`, Linux 6.1+), the same memory is a few hundred entries: a fork copies those,
an exit drops them, and a write in a child splits just the one it touches (copying 4 KiB, as
before).

Called once in a process that will be forked from and still shares nothing: the console script's
`grade` right after importing torch (before the grading workers, fork servers or the local
cluster's fork server are forked from it, which then share its huge pages), and the preload of a
local cluster's fork server that multiprocessing started as a fresh interpreter
(`cluster_preload.py`, whose forks are the Dask workers). Never in a fork that shares its pages
with its parent: collapsing there would copy them (the memory twice).
Best effort: where the kernel has no MADV_COLLAPSE or no transparent huge pages, nothing changes.
"""

from __future__ import annotations

import ctypes
import os

from gradegrad.sandbox.layers.kernel import libc

MADV_COLLAPSE = 25
HUGE = 2 << 20


def anonymous_ranges(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of the private, writable, anonymous mappings in `maps` (the text of
    /proc/<pid>/maps): the heap and unnamed mappings, not files, stacks or special regions."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name not in ("", "[heap]"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-start // HUGE) * HUGE, end // HUGE * HUGE
        if end > start:
            ranges.append((start, end))
    return ranges


def collapse() -> int:
    """Collapse this process's anonymous memory into huge pages now; the bytes collapsed (0 where
    the kernel cannot, or GRADEGRAD_NO_HUGEPAGES=1 says not to: to compare, or where a kernel
    handles huge pages badly)."""
    if os.environ.get("GRADEGRAD_NO_HUGEPAGES"):
        return 0
    try:
        with open("/proc/self/maps") as fh:
            ranges = anonymous_ranges(fh.read())
    except OSError:
        return 0
    done = 0
    for start, end in ranges:
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_COLLAPSE) == 0:
            done += end - start
    return done

