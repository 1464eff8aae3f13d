"""The evaluators' cgroups (`sandbox/layers/cgroups.py`): what a killed grader left is swept, and
nothing that is in use. Needs a cgroup hierarchy this process may write (root on most systems)."""

import os
import signal
import time

import pytest

from gradegrad.sandbox.layers import cgroups


@pytest.fixture
def groups():
    """Three cgroups made here: two empty, one with a process in it."""
    made = []
    try:
        made += [cgroups.create(None, 64) for _ in range(3)]
    except OSError as exc:
        for group in made:
            group.remove(wait=0)
        pytest.skip(f"no cgroup can be made here: {exc}")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        made[2].enter()
        os.write(write, b"in")
        time.sleep(60)
        os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"in"
    os.close(read)
    yield made
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for group in made:
        group.remove()


def test_a_sweep_removes_empty_cgroups_once_they_are_old_and_never_one_in_use(groups):
    empty, other, busy = groups
    mine = f"gradegrad-{os.getpid()}-"  # (made in this process: not another test's, running alongside)
    assert cgroups.sweep(prefix=mine) == 0  # just made: an intermediate may be about to enter it
    assert all(os.path.isdir(path) for group in groups for path in group.paths)
    assert cgroups.sweep(age=0, prefix=mine) == 2 * len(empty.paths)
    assert not any(os.path.exists(path) for group in (empty, other) for path in group.paths)
    assert all(os.path.isdir(path) for path in busy.paths)
