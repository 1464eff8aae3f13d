"""Shared fixtures: the catalog, and graded reports cached per session (each costs a child)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradegrad.catalog import load_catalog, resolve_rubric, select_exercises
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.report import Report
from gradegrad.sandbox.process import Limits

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "submissions_example"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUBMISSIONS = FIXTURES / "submissions"


# Test modules that look for what any grading left on the machine (processes named or marked by the
# exploits, their files in /tmp, SysV segments), not only what their own test started: under
# pytest-xdist they run in one worker, one after the other.
MACHINE_WIDE = {"test_exploits", "test_process", "test_workers"}


@pytest.hookimpl(tryfirst=True)  # before xdist names each test's group (`--dist loadgroup`)
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`-n auto --dist loadgroup`, the README's command): each module's tests in
    one worker (its module-scoped fixtures, some a batch or a cluster, are made once), the
    MACHINE_WIDE modules in the same one. Without a GPU, the `cuda` tests are skipped."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", item.nodeid).rpartition(".")[2]
        item.add_marker(pytest.mark.xdist_group("machine-wide" if module in MACHINE_WIDE else module))
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


_REPORTS: dict[tuple, Report] = {}


@pytest.fixture(scope="session")
def graded(catalog):
    """graded(path, rubric=None, exercises=(), timeout=30) -> Report, memoised for the session."""

    def run(path: Path, rubric: str | None = None, exercises: tuple[str, ...] = (), timeout: float = 30.0,
            seed: int = 0, device: str = "cpu") -> Report:
        key = (str(path), rubric, tuple(exercises), timeout, seed, device)
        if key not in _REPORTS:
            chosen = select_exercises(resolve_rubric(rubric, catalog), exercises, catalog)
            _REPORTS[key] = grade(Path(path), chosen, catalog, Options(seed, device, Limits(timeout)))
        return _REPORTS[key]

    return run


def exercise(report: Report, ex_id: str):
    return next(e for e in report.exercises if e.id == ex_id)


def check(report: Report, ex_id: str, check_id: str):
    return next(c for c in exercise(report, ex_id).checks if c.id == check_id)


def interrupted_batch(tmp_path: Path, *options: str, ignored: bool = False) -> tuple[int, str, list[int]]:
    """`gradegrad grade` of twelve copies of complete.py (tmp_path/subs, the gradebook in
    tmp_path/out) in a session of its own, SIGINT sent to its whole process group (a terminal's
    Ctrl-C) once the first submission is reported, SIGINT ignored from the start where `ignored` (a
    job that a script started in the background). (exit code, standard error, the command's
    processes at the interrupt that still ran 3 s after it exited)."""
    import os
    import shutil
    import signal
    import subprocess
    import sys

    from gradegrad.sandbox import reaper

    folder = tmp_path / "subs"
    folder.mkdir()
    for i in range(12):
        shutil.copy(EXAMPLES / "complete.py", folder / f"student{i:02d}.py")
    out = tmp_path / "out"
    disposition = signal.SIG_IGN if ignored else signal.SIG_DFL
    with reaper.LOCK:  # a child in a session of its own: not an orphan for a warden this test process runs
        proc = subprocess.Popen([sys.executable, "-m", "gradegrad", "grade", str(folder), "--out", str(out),
                                 "--no-cache", *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
        reaper.LIVE.add(proc.pid)
    try:
        return _interrupted(proc)
    finally:
        reaper.LIVE.discard(proc.pid)


def _interrupted(proc) -> tuple[int, str, list[int]]:
    import os
    import signal
    import time

    from gradegrad.sandbox.reaper import stat_fields
    from gradegrad.sandbox.watchdog import tree

    seen = b""
    for line in proc.stderr:  # one progress line a submission
        seen += line
        if line.startswith(b"[1/"):
            break
    processes = tree(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 3
    alive = processes
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if (fields := stat_fields(pid)) is not None and fields[0] != b"Z"]
    return proc.returncode, (seen + err).decode(errors="replace"), alive
