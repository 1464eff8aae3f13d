"""Grading processes: a batch split over forked grader processes grades exactly as threads do, and
a grading process that dies costs only the submissions it had not sent back."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXTURES
from gradegrad.batch import GRADER_ERROR, grade_folder
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.options import Options
from gradegrad.report import Report
from gradegrad.sandbox.process import Limits
from gradegrad.intake import SubmissionSource, discover
from gradegrad.workers import grade_in_processes, preforks_for, processes_for


def test_one_process_up_to_a_few_jobs_then_one_per_two_jobs():
    assert [processes_for(j) for j in (1, 2, 3, 4, 5, 16)] == [1, 1, 1, 2, 2, 8]


def test_the_console_script_forks_a_worker_per_job_from_two_jobs():
    assert [preforks_for(j) for j in (1, 2, 3, 16)] == [0, 2, 3, 16]


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


def test_a_report_line_the_grader_cannot_read_is_that_submission_s_lost_report():
    """A worker's line is read in two steps (which submission, then its report, once the worker has
    its next one): a line naming no submission is skipped; one whose report cannot be read is that
    submission's lost report (its error row), never a crash of the batch."""
    from gradegrad.workers import _line, _parse

    sources = [SubmissionSource(name, Path(f"{name}.py"), "file") for name in ("a", "b")]
    good = _line(1, Report("b.py", "cpu", 0, "r", 1.0, 1.0, ()), True, 0.5).rstrip(b"\n")
    index, done = _parse(sources, good)
    assert (index, done.source.name, done.report.score, done.keep, done.seconds) == (1, "b", 1.0, True, 0.5)
    for line in (b"not json", b"[1]", b'{"index": true}', b'{"index": 7, "report": {}}', b'{"index": -1}'):
        assert _parse(sources, line) is None, line
    for report in (b'{"score": "x"}', b'[1, 2]', b'"text"'):
        line = b'{"index": 0, "report": ' + report + b', "keep": true, "seconds": 0}'
        index, done = _parse(sources, line)
        assert (index, done.source.name, done.report) == (0, "a", None), line


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


def _running(marker: str) -> set[int]:
    """Live processes whose command line holds `marker` (a grading worker keeps the console
    script's) or whose working directory lies under it (a fork server, which renames itself, works
    in a folder of the console script's TMPDIR: `_console` sets it under `marker`)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                zombie = fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except (OSError, IndexError):
            continue
        if not zombie and (marker.encode() in cmdline or cwd.startswith(marker)):
            found.add(int(entry))
    return found


def _console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "gradegrad", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(cwd / "tmp")})


def _gradebook(out: Path) -> list[dict]:
    """grades.json without the wall-clock times, which differ between any two runs."""
    def timeless(value):
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k != "seconds"}
        return [timeless(v) for v in value] if isinstance(value, list) else value
    return timeless(json.loads((out / "grades.json").read_text()))


def test_preforked_workers_give_the_gradebook_one_job_gives(tmp_path):
    """`grade --jobs 3` (three workers forked as the console script starts, each sent its share
    as data) writes the gradebook `--jobs 1` writes, on a mixed folder: passing, failing, raising,
    hanging, notebooks and a student's folder. Nothing is left running."""
    folder = shutil.copytree(FIXTURES / "batch", tmp_path / "subs")
    os.chmod(tmp_path, 0o755)
    before = _running(str(tmp_path))
    common = ["grade", str(folder), "--rubric", "lab1", "-e", "sigmoid", "-e", "matvec", "--timeout", "4", "--no-cache"]
    one = _console(*common, "--jobs", "1", "-o", str(tmp_path / "one"), cwd=tmp_path)
    three = _console(*common, "--jobs", "3", "-o", str(tmp_path / "three"), cwd=tmp_path)
    assert one.returncode == three.returncode == 1, one.stderr + three.stderr
    books = _gradebook(tmp_path / "one"), _gradebook(tmp_path / "three")
    assert books[0] == books[1]
    assert {e["status"] for r in books[1] for e in r["exercises"]} >= {"passed", "failed", "error", "timeout"}
    assert (tmp_path / "one" / "grades.csv").read_text() == (tmp_path / "three" / "grades.csv").read_text()
    assert not _running(str(tmp_path)) - before


@pytest.mark.parametrize("case", ["one submission", "usage error"])
def test_preforked_workers_not_needed_exit(tmp_path, case):
    """Workers forked for `--jobs 4` that get nothing (one submission; a command that stops before
    grading) exit with the command; no process stays."""
    folder = tmp_path / "subs"
    folder.mkdir()
    shutil.copy(FIXTURES / "batch" / "alice.py", folder / "alice.py")
    os.chmod(tmp_path, 0o755)
    before = _running(str(tmp_path))
    # the whole catalog's grading context is larger than a pipe holds: it is written as the worker reads
    args = ["grade", str(folder), "--rubric", "all", "-e", "sigmoid", "--jobs", "4", "-o", str(tmp_path / "out")]
    result = _console(*(args if case == "one submission" else [*args, "--rubric", "no-such-rubric"]), cwd=tmp_path)
    assert result.returncode == (0 if case == "one submission" else 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    deadline = time.monotonic() + 5  # a fork server whose worker was killed leaves as its socket closes
    while _running(str(tmp_path)) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(str(tmp_path)) - before
    if case == "one submission":
        assert [r["score"] for r in _gradebook(tmp_path / "out")] == [r["max_score"] for r in
                                                                     _gradebook(tmp_path / "out")]


STUCK = """
import ctypes, time
import torch

ctypes.CDLL(None).prctl(15, b"ggexploit", 0, 0, 0)


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        time.sleep(1000)

    @staticmethod
    def backward(ctx, g):
        return g
"""


def test_a_worker_killed_mid_batch_loses_only_the_submission_it_was_grading(tmp_path):
    """Submissions go to the workers one at a time: when one dies (killed here while a submission
    hangs in it), the submission it held is that student's error (not cached), and the others,
    its later ones included, are graded by the workers left."""
    from test_exploits import leftovers, none_left

    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("a", "b", "c", "d", "e"):
        shutil.copy(FIXTURES / "batch" / "alice.py", folder / f"{name}.py")
    (folder / "b_stuck.py").write_text(STUCK)
    os.chmod(tmp_path, 0o755)
    (tmp_path / "tmp").mkdir()
    before = set(leftovers())
    proc = subprocess.Popen([sys.executable, "-m", "gradegrad", "grade", str(folder), "-e", "sigmoid", "--jobs", "2",
                             "--timeout", "120", "-o", str(tmp_path / "out")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp_path / "tmp")})
    deadline = time.monotonic() + 120
    while not (stuck := set(leftovers()) - before) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert stuck, "the stuck submission did not start"
    with open(f"/proc/{min(stuck)}/stat") as fh:  # the evaluator's parent: its grading worker (a subreaper)
        worker = int(fh.read().rsplit(")", 1)[1].split()[1])
    assert worker != proc.pid
    os.kill(worker, 9)
    assert proc.wait(timeout=120) == 1, proc.stderr.read().decode(errors="replace")[-2000:]
    rows = {r["submission"].rsplit("/", 1)[-1]: r for r in json.loads((tmp_path / "out" / "grades.json").read_text())}
    assert rows["b_stuck.py"]["error"].startswith(GRADER_ERROR)
    assert [rows[f"{n}.py"]["score"] for n in "abcde"] == [rows["a.py"]["max_score"]] * 5
    assert not (tmp_path / "out" / ".cache").exists() or len(list((tmp_path / "out" / ".cache").glob("*.json"))) == 5
    assert not set(none_left(seconds=10)) - before


COLLECTOR = """
import gc, json, sys
from pathlib import Path

gc.disable()  # as the console script runs until it has forked its workers
import gradegrad.batch
from gradegrad import workers
from gradegrad.catalog import load_catalog, resolve_rubric, select_exercises
from gradegrad.intake import discover
from gradegrad.options import Options
from gradegrad.portable import grading_context

graded = gradegrad.batch.grade_timed

def grade_timed(*args, **kwargs):  # in the worker, a fork of this process
    outcome = graded(*args, **kwargs)
    with open(sys.argv[2], "a") as fh:
        fh.write(json.dumps([gc.isenabled()]) + "\\n")
    return outcome

gradegrad.batch.grade_timed = grade_timed
workers.prefork(1)
catalog = load_catalog()
rubric = select_exercises(resolve_rubric("lab1", catalog), ["sigmoid"], catalog)
sources = discover(Path(sys.argv[1])).sources
for done in workers.grade_preforked(sources, grading_context(rubric, catalog, Options()), jobs=1):
    assert done.report is not None
"""


def test_a_preforked_worker_frees_what_grading_leaves_behind(tmp_path):
    """A grading worker forked while the console script still runs without the garbage collector
    (importing torch) turns it on: grading a failing submission leaves reference cycles (about a
    thousand objects, a quarter of a megabyte), which a worker grading thousands would otherwise
    keep until the batch ends."""
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("alice.py", "bob.py", "erin.py"):
        shutil.copy(FIXTURES / "batch" / name, folder / name)
    log = tmp_path / "collector.jsonl"
    result = subprocess.run([sys.executable, "-c", COLLECTOR, str(folder), str(log)], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    states = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(states) == 3
    assert all(enabled for enabled, in states)


def test_a_batch_that_ignores_ctrl_c_grades_every_submission_when_its_group_gets_one(tmp_path):
    """A `grade --jobs 2` started in the background by a script ignores SIGINT (the shell sets it
    so), and a Ctrl-C to the script's process group must not stop it: its grading workers ignore it
    too (they used to take it back and die, and the rest of the batch became error rows)."""
    from conftest import interrupted_batch

    code, err, left = interrupted_batch(tmp_path, "--jobs", "2", ignored=True)
    assert code == 1 and "Traceback" not in err and left == [], (code, left, err[-2000:])  # (`all`: not passed)
    rows = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert len(rows) == 12 and all(row["error"] is None and row["score"] == 165 for row in rows), rows
