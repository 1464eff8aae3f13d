"""`gradegrad grade` end to end on a folder of mixed submissions, as a TA meets it.

One graded batch (tests/fixtures/batch, two exercises of lab1) is shared by the module: the
gradebook in every format, the summary, the progress lines, then the cache. The folder holds a
correct file, a partial one, a notebook, a student folder, a syntax error, an import-time
exception, an empty file, a Latin-1 file, a hang, a stray file and a duplicate.
"""

import csv
import io
import json
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import FIXTURES, ROOT
from gradegrad.batch import GRADER_ERROR, grade_folder
from gradegrad.cache import ResultCache
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.cli import app
from gradegrad.options import Options
from gradegrad.report import Report
from gradegrad.intake import discover
from gradegrad.workers import default_jobs

BATCH = FIXTURES / "batch"
ARGS = ["--rubric", "lab1", "-e", "sigmoid", "-e", "matvec", "--timeout", "4", "--jobs", "2"]
runner = CliRunner()


def grade(*args):
    return runner.invoke(app, ["grade", *map(str, args)], env={"NO_COLOR": "1", "COLUMNS": "120"})


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """(CLI result, submissions folder, output folder) of the first run."""
    root = tmp_path_factory.mktemp("batch")
    folder = shutil.copytree(BATCH, root / "submissions")
    out = root / "grades"
    return grade(folder, *ARGS, "--out", out, "--gradescope"), folder, out


def rows(out):
    return {r["name"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8-sig")))}


def test_exit_code_1_when_some_student_failed(batch):
    result, _, _ = batch
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output


def test_csv_has_one_row_per_student_with_scores_and_status(batch):
    _, _, out = batch
    header = (out / "grades.csv").read_text(encoding="utf-8-sig").split("\n")[0]
    assert header == "name,total,max,sigmoid,matvec,status,detail"
    r = rows(out)
    assert list(r) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"]
    assert {n: r[n]["status"] for n in r} == {
        "alice": "passed", "bob": "failed", "carol": "failed", "dave": "failed", "erin": "error", "frank": "failed",
        "grace": "invalid", "heidi": "invalid", "ivan": "timeout"}
    assert r["alice"]["total"] == r["alice"]["max"] == "23" and (r["alice"]["sigmoid"], r["alice"]["matvec"]) == ("11", "12")
    assert r["bob"]["matvec"] == "12" and int(r["bob"]["sigmoid"]) < 11  # sign error in sigmoid
    assert r["carol"]["sigmoid"] == "11" and int(r["carol"]["matvec"]) < 12  # the notebook: swapped gradients
    assert r["dave"]["sigmoid"] == "11" and int(r["dave"]["matvec"]) < 12  # the folder: helpers imported
    assert r["ivan"]["matvec"] == "12" and int(r["ivan"]["sigmoid"]) < 11  # a hang costs only that exercise
    assert 0 < int(r["frank"]["total"]) < 23  # its classes were graded though its last line raised
    for name in ("erin", "grace", "heidi"):
        assert r[name]["total"] == "0" and r[name]["max"] == "23"
    assert "SyntaxError" in r["erin"]["detail"]
    assert r["frank"]["detail"] == "frank.py, line 18: RuntimeError: forgot to remove my test code"
    assert r["grace"]["detail"] == "not graded: grace.py is empty"


def test_json_holds_every_full_report(batch):
    _, folder, out = batch
    data = json.loads((out / "grades.json").read_text())
    reports = {Report.from_dict(d).submission: Report.from_dict(d) for d in data}
    assert len(data) == 9 and {"exercises", "score", "max_score", "seed", "device"} <= set(data[0])
    carol = reports[str(folder / "carol.ipynb")]
    assert carol.exercises[1].first_problem.diagnosis == "swapped_gradients"
    assert "sigmoid ok" in carol.output.stdout and "3 shell/magic line(s) of the notebook not run" in carol.notes
    frank = reports[str(folder / "frank.py")]
    problem, = frank.load_problems
    assert frank.error is None and "try_it" in problem.traceback and "frank.py" in problem.traceback
    assert "gradegrad-source" not in json.dumps(data)  # generated files never show


def test_feedback_is_markdown_with_diagnosis_hints_and_tracebacks(batch):
    _, _, out = batch
    assert sorted(p.name for p in (out / "feedback").iterdir()) == [f"{n}.md" for n in rows(out)]
    bob = (out / "feedback" / "bob.md").read_text()
    assert bob.startswith("# gradegrad: bob") and "**Total 15/23**" in bob
    assert "`sign_error`" in bob and "the result has the wrong sign" in bob and "| sigmoid | Sigmoid | ❌ failed |" in bob
    carol = (out / "feedback" / "carol.md").read_text()
    assert "swapped_gradients" in carol and "sigmoid ok" in carol
    frank = (out / "feedback" / "frank.md").read_text()
    assert "## Code that did not run to its end (the rest was graded)" in frank and "raise RuntimeError" in frank
    assert "**frank.py, line 18**: RuntimeError: forgot to remove my test code" in frank
    assert "grace.py is empty" in (out / "feedback" / "grace.md").read_text()


def test_gradescope_results_per_student(batch):
    _, _, out = batch
    bob = json.loads((out / "gradescope" / "bob" / "results.json").read_text())
    assert bob["score"] == 15 and bob["output_format"] == "md" and bob["output"].startswith("# gradegrad: bob")
    tests = {t["name"]: t for t in bob["tests"]}
    assert tests["sigmoid: backward"]["status"] == "failed" and "sign_error" in tests["sigmoid: backward"]["output"]
    assert tests["matvec: backward"] == {"name": "matvec: backward", "score": 4.0, "max_score": 4.0,
                                         "status": "passed", "output": "", "visibility": "visible"} or \
        tests["matvec: backward"]["status"] == "passed"
    assert sum(t["score"] for t in bob["tests"]) == bob["score"]
    erin = json.loads((out / "gradescope" / "erin" / "results.json").read_text())
    assert erin["score"] == 0 and erin["tests"][0]["name"] == "the submission loads"
    assert "SyntaxError" in erin["tests"][0]["output"]


def test_summary_shows_histogram_rates_mistakes_and_troubles(batch):
    result, _, _ = batch
    text = result.stdout
    assert "Scores (percent of the maximum)" in text and re.search(r"90-100% █+ 1", text)
    assert "1 of 9 passed every check" in text
    assert re.search(r"sigmoid\s+50% 3/6", text) and "every check" in text  # frank's class loaded too
    assert re.search(r"1 ×\s+sigmoid backward\s+sign_error: the result has the wrong sign\s+\(bob\)", text)
    assert re.search(r"ivan\s+timeout", text) and re.search(r"erin\s+error\s+importing the submission raised "
                                                           r"SyntaxError", text)
    assert re.search(r"grace\s+invalid\s+not graded: grace.py is empty", text)
    assert "notes.txt: stray file" in text and "bob.ipynb: duplicate: bob.py is graded for bob" in text
    assert "Graded 9 submission(s), reused 0 from the cache" in text


def test_progress_is_one_plain_line_per_student_off_a_terminal(batch):
    result, _, _ = batch
    lines = [ln for ln in result.stderr.split("\n") if ln.startswith("[")]
    assert len(lines) == 9 and lines[-1].startswith("[9/9] ")
    assert "[1/9] grace: invalid 0/23" in result.stderr or any("grace: invalid 0/23" in ln for ln in lines)


def test_cache_skips_unchanged_submissions_and_regrades_a_changed_one(batch):
    _, folder, out = batch
    start = time.monotonic()
    again = grade(folder, *ARGS, "--out", out)
    assert "Graded 0 submission(s), reused 9 from the cache" in again.stdout and again.exit_code == 1
    assert time.monotonic() - start < 5 and "(cached)" in again.stderr
    assert rows(out) and rows(out)["bob"]["status"] == "failed"
    bob = folder / "bob.py"
    bob.write_text(bob.read_text().replace("return -grad_output", "return grad_output"))
    fixed = grade(folder, *ARGS, "--out", out)
    assert "Graded 1 submission(s), reused 8 from the cache" in fixed.stdout
    assert rows(out)["bob"]["status"] == "passed" and rows(out)["bob"]["total"] == "23"
    assert "[" in fixed.stderr and re.search(r"bob: passed 23/23\n", fixed.stderr)


# --------------------------------------------------------------------------- grade_folder, without children


@pytest.fixture
def lab1(catalog):
    return select_exercises(resolve_rubric("lab1", catalog), ["sigmoid"], catalog)


def test_no_cache_grades_again_but_still_writes(tmp_path, catalog, lab1):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "empty.py").write_text("")
    found = discover(tmp_path / "s")
    cache = tmp_path / "cache"
    first = grade_folder(found, lab1, catalog, Options(), 1, ResultCache(cache))
    assert not first.graded[0].cached and len(list(cache.iterdir())) == 1
    assert grade_folder(found, lab1, catalog, Options(), 1, ResultCache(cache)).graded[0].cached
    assert not grade_folder(found, lab1, catalog, Options(), 1, ResultCache(cache, read=False)).graded[0].cached
    other = Options(seed=1)
    assert not grade_folder(found, lab1, catalog, other, 1, ResultCache(cache)).graded[0].cached


def test_identical_submissions_never_share_a_cached_report(tmp_path, catalog, lab1):
    (tmp_path / "s").mkdir()
    for name in ("ann", "ben"):  # the same code: each report must still name its own student's file
        (tmp_path / "s" / f"{name}.py").write_text("import torch\nraise RuntimeError('no')\n")
    found = discover(tmp_path / "s")
    cache = ResultCache(tmp_path / "cache")
    first = grade_folder(found, lab1, catalog, Options(), 1, cache)
    assert [g.cached for g in first.graded] == [False, False]
    again = grade_folder(found, lab1, catalog, Options(), 1, cache)
    assert [g.cached for g in again.graded] == [True, True]
    for g in again.graded:
        assert f"{g.name}.py" in g.report.error_traceback and g.report.submission.endswith(f"{g.name}.py")


def test_a_grader_failure_is_that_students_error_and_is_not_cached(tmp_path, catalog, lab1, monkeypatch):
    (tmp_path / "s").mkdir()
    for name in ("ann", "ben"):
        (tmp_path / "s" / f"{name}.py").write_text(f"# {name}\n")

    def broken(path, *args, **kwargs):
        raise KeyError("a bug in gradegrad") if "ann" in str(path) else OSError("too many open files")

    monkeypatch.setattr("gradegrad.batch.grade", broken)
    events = []
    result = grade_folder(discover(tmp_path / "s"), lab1, catalog, Options(), 2, ResultCache(tmp_path / "c"),
                          events.append)
    ann, ben = result.graded
    assert ann.status == ben.status == "error" and not result.passed
    assert ann.report.error.startswith(f"{GRADER_ERROR} (internal error KeyError") and "Traceback" in ann.report.error_traceback
    assert ben.report.error == f"{GRADER_ERROR}: too many open files"
    assert ann.report.max_score == ben.report.max_score > 0
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())
    assert sorted((e.done, e.total) for e in events) == [(1, 2), (2, 2)]


def test_default_jobs_is_the_cores_available():
    assert default_jobs() >= 1


# --------------------------------------------------------------------------- the command line


def test_every_student_passing_exits_0(tmp_path):
    (tmp_path / "s").mkdir()
    shutil.copy(BATCH / "alice.py", tmp_path / "s" / "alice.py")
    result = grade(tmp_path / "s", "--rubric", "lab1", "-e", "sigmoid", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 of 1 student(s) passed every check" in result.stdout


@pytest.mark.parametrize("args,words", [
    (["no/such/folder"], "submissions folder not found"),
    ([BATCH, "--rubric", "lab9"], "unknown rubric 'lab9'"),
    ([BATCH, "-e", "sigmod"], "did you mean 'sigmoid'"),
    ([BATCH, "--jobs", "0"], "--jobs"),
])
def test_usage_errors_exit_2(args, words):
    result = grade(*args)
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output


def test_an_output_path_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "out").write_text("")
    result = grade(BATCH, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "it is a file, not a folder" in result.output


def readme_commands(word):
    text = (ROOT / "README.md").read_text()
    return [shlex.split(line.split("#")[0].strip()) for line in text.splitlines()
            if line.strip().startswith(f"gradegrad {word} ")]


@pytest.mark.parametrize("word", ["grade", "gradescope"])
def test_readme_batch_commands_parse(word):
    """Every `gradegrad grade` and `gradegrad gradescope` line of the README names real options."""
    commands = readme_commands(word)
    assert commands, f"the README shows no gradegrad {word} command"
    group = typer.main.get_command(app)
    for argv in commands:
        ctx = group.make_context("gradegrad", argv[1:], resilient_parsing=False)
        name, command, rest = group.resolve_command(ctx, argv[1:])
        command.make_context(name, rest)  # raises on an unknown option


# --------------------------------------------------------------------------- a hostile batch


HOSTILE = FIXTURES / "hostile"


def _hostile_folder(root):
    """Honest students, and one of each file and reply that once stopped a batch or flooded a report."""
    from intake_helpers import notebook

    folder = root / "hostile"
    folder.mkdir()
    complete = (ROOT / "submissions_example" / "complete.py").read_text()
    shutil.copy(BATCH / "alice.py", folder / "alice.py")
    (folder / "ann.ipynb").write_bytes(notebook("import torch", complete, "undefined_name"))
    (folder / "deep.ipynb").write_bytes(b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    cells = json.loads(notebook("import torch", complete))
    cells["cells"].insert(1, {"cell_type": "code", "source": ["x = ", 1], "metadata": {}})
    (folder / "intcell.ipynb").write_text(json.dumps(cells))
    (folder / "puny.py").write_bytes(b"# coding: punycode\n" + complete.encode())
    (folder / "astbomb.py").write_text("x = " + "1+" * 100_000 + "1\n" + complete)
    (folder / "mal\x1b[2J\x1b]52;c;eA==\x07lory.py").write_text(complete)
    for name in ("bigint_reply.py", "overlapping_tensors.py", "text_flood.py"):
        shutil.copy(HOSTILE / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    folder, out = _hostile_folder(root), root / "grades"
    result = grade(folder, "--rubric", "lab1", "-e", "sigmoid", "-e", "matvec", "--timeout", "20", "--jobs", "2",
                   "--out", out, "--gradescope")
    return result, folder, out


def test_a_hostile_batch_ends_with_a_complete_gradebook(hostile):
    result, _, out = hostile
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    r = rows(out)
    assert {n: r[n]["status"] for n in r} == {
        "alice": "passed", "ann": "passed", "astbomb": "error", "bigint_reply": "failed", "deep": "invalid",
        "intcell": "passed", "mal?[2J?]52;c;eA==?lory": "passed", "overlapping_tensors": "failed", "puny": "invalid",
        "text_flood": "failed"}  # failed: loaded, their sigmoid errored; matvec is missing
    for name in ("alice", "ann", "intcell", "mal?[2J?]52;c;eA==?lory"):
        assert r[name]["total"] == r[name]["max"] == "23"  # honest work keeps its full marks
    assert "nested too deeply" in r["deep"]["detail"] and "punycode" in r["puny"]["detail"]
    assert len(list((out / "feedback").iterdir())) == len(r) == len(list((out / "gradescope").iterdir()))


def test_hostile_replies_cost_only_their_own_exercise(hostile):
    _, folder, out = hostile
    reports = {Path(d["submission"]).name: Report.from_dict(d) for d in json.loads((out / "grades.json").read_text())}
    for name in ("bigint_reply.py", "overlapping_tensors.py"):
        sigmoid = next(e for e in reports[name].exercises if e.id == "sigmoid")
        assert sigmoid.status == "error" and "invalid reply" in sigmoid.checks[1].message, sigmoid  # the tampering ran
    message = next(e for e in reports["text_flood.py"].exercises if e.id == "sigmoid").checks[1].message
    assert message.startswith("passed 166/166 all checks passed passed 166/166")  # the type name: one line
    assert "passed 166/166" in message.split("\n", 1)[1] and len(message) < 2500  # the tampering ran, capped


def test_no_report_file_holds_escape_sequences_or_unbounded_text(hostile):
    result, _, out = hostile
    assert "\x1b" not in result.output and "\x07" not in result.output
    for path in out.rglob("*"):
        if path.is_file() and ".cache" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert "\x1b" not in text and "\x07" not in text and "\r" not in text, path
    assert (out / "grades.json").stat().st_size < 1 << 20  # it was 102 MB for one student
    flood = (out / "feedback" / "text_flood.md").read_text()
    assert len(flood) < 200_000 and "characters cut" in flood


def test_a_report_no_writer_can_render_costs_only_that_students_file(tmp_path, monkeypatch):
    from gradegrad.batch import BatchResult, Graded
    from gradegrad.course import Gradebook
    from gradegrad.render import gradebook

    def fine(name):
        return Report(name, "cpu", 0, "lab1", 1.0, 1.0, ())

    class Unwritable(Report):
        def to_dict(self):
            raise ValueError("a report no writer can hold")

    broken = Unwritable("bob", "cpu", 0, "lab1", 0.0, 1.0, ())
    result = BatchResult("f", "lab1", (), (Graded("ann", "file", fine("ann"), "passed"),
                                           Graded("bob", "file", broken, "failed"),
                                           Graded("cid", "file", fine("cid"), "passed")))
    real = gradebook.to_markdown
    monkeypatch.setattr(gradebook, "to_markdown", lambda r, n: real(r, n) if n != "bob" else 1 / 0)
    gradebook.write_gradebook(Gradebook(result, 1.0, "lab1"), tmp_path, gradescope=True)
    data = json.loads((tmp_path / "grades.json").read_text())
    assert [d.get("name", d["submission"]) for d in data] == ["ann", "bob", "cid"]
    assert data[1]["error"].startswith("gradegrad could not write this report (ValueError")
    assert (tmp_path / "feedback" / "bob.md").read_text().startswith(
        "gradegrad could not write this feedback (ZeroDivisionError: division by zero)")
    assert (tmp_path / "feedback" / "cid.md").read_text().startswith("# gradegrad: cid")
    assert len(rows(tmp_path)) == 3
