"""Grading processes: a batch split over forked grader processes grades exactly as threads do, and
a grading process that dies costs only the submissions it had not sent back."""

import os
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from gradegrad.batch import GRADER_ERROR, grade_folder
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.options import Options
from gradegrad.report import Report
from gradegrad.sandbox.process import Limits
from gradegrad.intake import SubmissionSource, discover
from gradegrad.workers import grade_in_processes, processes_for


def test_one_process_up_to_a_few_jobs_then_one_per_two_jobs():
    assert [processes_for(j) for j in (1, 2, 3, 4, 5, 16)] == [1, 1, 1, 2, 2, 8]


@pytest.fixture(scope="module")
def both(tmp_path_factory, catalog):
    """The batch fixture graded with threads, then with two grading processes."""
    folder = shutil.copytree(FIXTURES / "batch", tmp_path_factory.mktemp("workers") / "subs")
    rubric = select_exercises(resolve_rubric("lab1", catalog), ["sigmoid", "matvec"], catalog)
    options = Options(limits=Limits(timeout=4))
    return [grade_folder(discover(folder), rubric, catalog, options, jobs=2, processes=p) for p in (1, 2)]


def test_grading_processes_give_the_reports_threads_give(both):
    threads, processes = both
    assert [g.name for g in threads.graded] == [g.name for g in processes.graded]
    for a, b in zip(threads.graded, processes.graded):
        assert (a.status, a.report.score, a.report.max_score) == (b.status, b.report.score, b.report.max_score)
        assert a.report.exercises == b.report.exercises and a.report.error == b.report.error
    assert {g.status for g in processes.graded} >= {"passed", "failed", "error", "timeout"}


def test_no_process_is_left_behind(both):
    me = str(os.getpid())
    children = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == me]
    assert children == []


def _parent(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return ""


def test_a_dying_grading_process_loses_only_what_it_had_not_sent():
    sources = [SubmissionSource(name, Path(f"{name}.py"), "file") for name in ("a", "b", "dies", "c", "d", "e")]

    def grade(source):
        if source.name == "dies":
            os._exit(3)
        return Report(str(source.origin), "cpu", 0, "r", 1.0, 1.0, ()), True, 0.0

    # shares are dealt round-robin: a, dies, d to one process (one at a time), b, c, e to the other
    done = {d.source.name: d for d in grade_in_processes(sources, grade, processes=2, threads=1)}
    assert set(done) == {"a", "b", "dies", "c", "d", "e"}
    assert {n for n in done if done[n].report is None} == {"dies", "d"}
    assert all(done[n].report.score == 1.0 and done[n].keep for n in ("a", "b", "c", "e"))


def test_a_lost_submission_is_the_students_error_in_the_batch(tmp_path, catalog, monkeypatch):
    import gradegrad.workers as workers

    def lose_everything(sources, grade, processes, threads):
        for source in sources:
            yield workers.Done(source, None)

    monkeypatch.setattr("gradegrad.batch.grade_in_processes", lose_everything)
    for name in ("a", "b", "c", "d"):
        shutil.copy(FIXTURES / "batch" / "alice.py", tmp_path / f"{name}.py")
    rubric = select_exercises(resolve_rubric("lab1", catalog), ["sigmoid"], catalog)
    result = grade_folder(discover(tmp_path), rubric, catalog, Options(), jobs=4)
    assert [g.status for g in result.graded] == ["error"] * 4
    assert all(g.report.error.startswith(GRADER_ERROR) for g in result.graded)
