"""The command line as a user meets it: words on screen, exit codes, the JSON report."""

import json
import re
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from conftest import FIXTURES, EXAMPLES, ROOT, SUBMISSIONS
from gradegrad.catalog import load_catalog
from gradegrad.cli import app
from gradegrad.options import minimum_memory

runner = CliRunner()


def run(*args, env=None):
    return runner.invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "140", **(env or {})})


def test_complete_exits_0_with_full_marks_and_writes_json(tmp_path):
    out = tmp_path / "report.json"
    result = run("check", EXAMPLES / "complete.py", "--exercise", "sigmoid", "--exercise", "matvec", "--json", out)
    assert result.exit_code == 0, result.output
    assert "✓ passed" in result.output and "all checks passed" in result.output
    data = json.loads(out.read_text())
    assert {"submission", "device", "seed", "score", "max_score", "exercises"} <= set(data)
    assert data["score"] == data["max_score"] and data["device"] == "cpu" and data["seed"] == 0
    ex = data["exercises"][0]
    assert {"id", "class_name", "status", "score", "max_score", "checks"} <= set(ex)
    assert {"id", "status", "points", "max_points", "message", "diagnosis"} <= set(ex["checks"][0])
    assert ex["status"] in ("passed", "failed", "error", "timeout", "missing")


def test_partial_exits_1_and_names_mistakes():
    result = run("check", EXAMPLES / "partial.py", "-e", "sigmoid", "-e", "conv1d")
    assert result.exit_code == 1
    assert "sign_error" in result.output and "wrong sign" in result.output
    assert "missing" in result.output


@pytest.mark.parametrize("args,words", [
    (["check", "no/such/file.py"], "submission not found"),
    (["check", EXAMPLES / "complete.py", "--rubric", "lab9"], "unknown rubric 'lab9'"),
    (["check", EXAMPLES / "complete.py", "--exercise", "sigmod"], "did you mean 'sigmoid'"),
    (["check", EXAMPLES / "complete.py", "--memory", "lots"], "--memory"),
    (["check", EXAMPLES / "complete.py", "--device", "tpu"], "unknown device"),
    (["check", EXAMPLES / "complete.py", "--memory", "100M"], "grading needs at least"),
    (["check", EXAMPLES / "complete.py", "--load-timeout", "0"], "--load-timeout 0: must be a positive number"),
    (["check", FIXTURES / "batch" / "notes.txt"], "give a .py file, an .ipynb notebook or a folder"),
    (["check", FIXTURES / "batch" / "notes.txt", "--json", "x.json"], "cannot grade"),
])
def test_usage_errors_are_one_line_and_exit_2(args, words):
    result = run(*args)
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().split("\n")) == 1, result.output


def test_the_smallest_memory_limit_accepted_runs_the_reference_solution():
    least = minimum_memory()
    result = run("check", EXAMPLES / "complete.py", "--rubric", "lab2", "--memory", f"{least >> 20}M")
    assert result.exit_code == 0, result.output
    too_low = run("check", EXAMPLES / "complete.py", "--memory", f"{(least >> 20) - 64}M")
    assert too_low.exit_code == 2 and f"at least {least >> 20}M" in too_low.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_unavailable_is_a_usage_error():
    result = run("check", EXAMPLES / "complete.py", "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_import_error_shows_student_traceback():
    result = run("check", FIXTURES / "batch" / "erin.py")
    assert result.exit_code == 1
    assert "could not be loaded" in result.output and "SyntaxError" in result.output


def test_top_level_code_that_raises_after_the_classes_loses_no_points_and_is_shown():
    result = run("check", SUBMISSIONS / "raises_at_import.py")
    assert result.exit_code == 0, result.output
    assert "raises_at_import.py, line 21: raised (the rest was graded)" in result.output
    assert "sanity_check" in result.output and "Total 11/11" in result.output
    assert "1 piece of top-level code did not run to its end" in result.output


def test_console_script_and_module_entry_points():
    result = subprocess.run([sys.executable, "-m", "gradegrad", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.startswith("gradegrad ")


HALF_LAB = '''\
import torch


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)
'''


def test_without_a_rubric_the_report_names_what_it_did_not_grade(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no project config here
    (tmp_path / "half.py").write_text(HALF_LAB)
    result = run("check", "half.py", "--json", "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert result.exit_code == 0, result.output  # 0: every graded check passed (not: the lab is complete)
    others = [i for i, ex in load_catalog().items() if ex.kind != "formula" and i != "sigmoid"]
    assert f"all graded checks passed; {len(others)} exercise(s) not graded (class not found)" in result.output
    assert "all checks passed" not in result.output.replace("all graded checks passed", "")
    assert [e["id"] for e in data["exercises"]] == ["sigmoid"] and set(data["not_graded"]) == set(others)
    graded = run("check", "half.py", "--rubric", "lab1")
    assert graded.exit_code == 1 and "some checks did not pass" in graded.output


def test_nothing_that_matters_is_cut_on_a_narrow_console():
    result = runner.invoke(app, ["check", str(EXAMPLES / "partial.py"), "-e", "sigmoid", "-e", "matvec"],
                           env={"NO_COLOR": "1", "COLUMNS": "60"})
    assert result.exit_code == 1
    assert "[sign_error]" in result.output and "[swapped_gradients]" in result.output and "…" not in result.output
    assert all(len(line) <= 60 for line in result.output.splitlines())
    assert "Total 9/23  some checks did not pass" in result.output


def commands(group=None, prefix=()):
    from typer.main import get_command

    group = group or get_command(app)
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(getattr(command, "commands", None), dict):  # a group (typer vendors its own click)
            yield from commands(command, (*prefix, name))


@pytest.mark.parametrize("argv", [(), *commands()], ids=lambda argv: " ".join(argv) or "gradegrad")
def test_help_of_every_command_is_clean(argv):
    result = runner.invoke(app, [*argv, "--help"], prog_name="gradegrad", env={"COLUMNS": "100"})
    assert result.exit_code == 0 and "Usage: gradegrad" in result.output
    types = re.findall(r"<(?:str|int|float|path|bool|list|tuple|text|choice)\b[^>]*>|list\[|\{\w+\}|PosixPath|"
                       r"NoneType|Optional", result.output)
    assert not types, (argv, types, result.output)


def test_shell_completion_prints_a_script_and_completes(monkeypatch):
    # typer's --show-completion is a flag: it finds the shell among this process's ancestors, which
    # a job started in the background (setsid, nohup, CI) may not have
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    script = runner.invoke(app, ["--show-completion"], prog_name="gradegrad")
    assert script.exit_code == 0 and "_GRADEGRAD_COMPLETE" in script.output and "complete" in script.output, \
        (script.output, script.exc_info and "".join(__import__("traceback").format_exception(*script.exc_info)))
    env = {"_GRADEGRAD_COMPLETE": "complete_bash", "COMP_WORDS": "gradegrad gra", "COMP_CWORD": "1"}
    result = subprocess.run([sys.executable, "-m", "gradegrad"], capture_output=True, text=True, cwd=ROOT,
                            env={**__import__("os").environ, **env})
    assert "grade" in result.stdout.split() and "gradescope" in result.stdout.split()


def test_check_html_writes_the_students_page(tmp_path):
    page = tmp_path / "me.html"
    result = run("check", EXAMPLES / "partial.py", "-e", "sigmoid", "--html", page)
    assert result.exit_code == 1
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "sign_error" in html and "<script src" not in html


def test_nan_in_a_report_reaches_every_file_and_check_and_grade_agree(tmp_path):
    """A `not_finite` diagnosis (nan in the worst element) once ended `check --json` in a
    ValueError and cost `grade` its grades.json, feedback and summary; with --jobs 4 the student
    was lost with the grading process."""
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "ann.py").write_text((SUBMISSIONS / "not_finite.py").read_text())
    (folder / "bob.py").write_text((EXAMPLES / "complete.py").read_text())
    report = tmp_path / "ann.json"
    checked = run("check", folder / "ann.py", "--rubric", "lab2", "-e", "softmax", "--json", report,
                  "--junit", tmp_path / "ann.xml")
    assert checked.exit_code == 1 and "Traceback" not in checked.output, checked.output
    assert '"got": "nan"' in report.read_text()
    out = tmp_path / "grades"
    graded = run("grade", folder, "--rubric", "lab2", "-e", "softmax", "--jobs", "4", "--out", out)
    assert graded.exit_code == 1 and "Traceback" not in graded.output, graded.output
    assert "grading process ended first" not in graded.output
    books = {r["submission"].split("/")[-1]: r for r in json.loads((out / "grades.json").read_text())}
    mine = json.loads(report.read_text())
    for key in ("score", "max_score"):
        assert books["ann.py"][key] == mine[key]
    untimed = lambda checks: [{k: v for k, v in c.items() if k != "seconds"} for c in checks]  # noqa: E731
    assert untimed(books["ann.py"]["exercises"][0]["checks"]) == untimed(mine["exercises"][0]["checks"])
    assert (out / "feedback" / "ann.md").is_file() and "not_finite" in (out / "feedback" / "ann.md").read_text()


@pytest.mark.parametrize("source", ["x = " + "1+" * 100_000 + "1\n", "x = " + "-" * 1_000_000 + "1\n"],
                         ids=["recursion", "memory"])
def test_check_on_a_source_python_cannot_parse_reports_it_and_never_crashes(tmp_path, source):
    path = tmp_path / "bomb.py"
    path.write_text(source + (EXAMPLES / "complete.py").read_text())
    result = CliRunner().invoke(app, ["check", str(path), "-e", "add"],
                                env={"NO_COLOR": "1", "GITHUB_ACTIONS": "true", "COLUMNS": "120"})
    assert result.exit_code == 1 and "could not be loaded" in result.output
    assert "Traceback (most recent call last)" not in result.output.split("could not be loaded")[0]


@pytest.mark.parametrize("after", [0.3, 4.0], ids=["while-starting", "while-grading"])
def test_ctrl_c_says_interrupted_and_exits_130_without_a_traceback(after):
    """Ctrl-C while torch is still being imported, or while a submission that hangs is graded."""
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "gradegrad", "check", str(SUBMISSIONS / "hangs.py")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (a background
    # shell's job ignores SIGINT, and so would gradegrad, as a program started with `cmd &` should)
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode(errors="replace")
    assert code == 130 and "gradegrad: interrupted" in err and "Traceback" not in err, (code, err[-2000:])


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_is_not_utf8_gets_question_marks_not_a_traceback(encoding):
    """`PYTHONIOENCODING=ascii`, a Latin-1 locale: the marks and the student's text that the
    terminal cannot show become `?`, the verdict and the exit code are the same."""
    import os

    result = subprocess.run([sys.executable, "-m", "gradegrad", "check", str(EXAMPLES / "partial.py"), "-e", "sigmoid"],
                            capture_output=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": encoding, "NO_COLOR": "1"})
    out, err = result.stdout.decode(encoding), result.stderr.decode(encoding)
    assert result.returncode == 1 and "Traceback" not in out + err, err
    assert "? failed" in out and "sign_error" in out


def test_text_that_looks_like_an_emoji_code_is_shown_as_written(tmp_path):
    """A file name, a student's exception message or a command line argument with `:cat:` or
    `:x:` in it reaches the terminal as it was written, not as an emoji (Rich's codes)."""
    source = (EXAMPLES / "complete.py").read_text() + (
        "\n\ndef _forward(ctx, x):\n"
        "    raise ValueError('shape :x: expected :100:')\n\n\n"
        "Sigmoid.forward = staticmethod(_forward)\n")
    student = tmp_path / "stu:cat:dent.py"
    student.write_text(source)
    result = run("check", student, "-e", "sigmoid")
    assert result.exit_code == 1, result.output
    assert "shape :x: expected :100:" in result.output and "stu:cat:dent" in result.output, result.output
    assert not {"\u274c", "\U0001f4af", "\U0001f431"} & set(result.output), result.output
    graded = run("grade", tmp_path, "-e", "sigmoid", "--out", tmp_path / "out")
    assert graded.exit_code == 1 and "stu:cat:dent" in graded.output, graded.output
    assert not {"\u274c", "\U0001f4af", "\U0001f431"} & set(graded.output), graded.output
    error = run("grade", tmp_path, "--cluster", "local:two", "--out", tmp_path / "out")
    assert error.exit_code == 2 and "--cluster local:two: expected" in error.output, error.output
