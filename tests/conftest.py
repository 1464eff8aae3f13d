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
