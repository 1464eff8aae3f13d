"""Torch's memory collapsed into huge pages before a batch forks from it: which mappings, and that
a process forked afterwards works as before."""

import os

import torch

from gradegrad.sandbox import hugepages

MAPS = """\
55d0a0000000-55d0a0a00000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000600000 rw-p 00000000 00:00 0
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
7f1000100000-7f1000500000 rw-p 00000000 00:00 0
7f2000000000-7f2000400000 r--p 00000000 00:00 0
7f3000000000-7f3000400000 rw-s 00000000 00:01 42                         /memfd:gradegrad-shared (deleted)
7f4000000000-7f4000400000 rw-p 00100000 08:01 1234                       /usr/lib/libtorch_cpu.so
7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0                          [stack]
"""


def test_only_private_writable_anonymous_memory_in_whole_huge_pages():
    two = 2 << 20
    assert hugepages.anonymous_ranges(MAPS) == [
        (0x55d0a0000000, 0x55d0a0a00000),  # the heap: five huge pages
        (0x7f0000000000, 0x7f0000600000),  # an unnamed mapping: three
        (0x7f1000200000, 0x7f1000400000),  # the aligned middle of one that is not aligned
    ]  # too small for one (1 MiB), read-only, shared, a file's data, the stack: left as they are
    assert all(start % two == 0 and end % two == 0 for start, end in hugepages.anonymous_ranges(MAPS))


def _in_a_fork(body) -> int:
    """Run `body` in a fork of this process (so that this one keeps its pages); its exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(body())
        finally:
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_process_forked_after_the_collapse_computes_as_before():
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)

    def collapsed_then_forked() -> int:
        if hugepages.collapse() < 0:
            return 1

        def child() -> int:
            y = (x.sigmoid() * 3).sum()
            (g,) = torch.autograd.grad(y, [x])
            return 0 if torch.allclose(g, 3 * x.sigmoid() * (1 - x.sigmoid())) else 2

        return _in_a_fork(child)

    assert _in_a_fork(collapsed_then_forked) == 0


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("GRADEGRAD_NO_HUGEPAGES", "1")
    assert hugepages.collapse() == 0
