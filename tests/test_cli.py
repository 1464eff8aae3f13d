"""The command line as a user meets it: words on screen, exit codes, the JSON report."""

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from conftest import FIXTURES, EXAMPLES, ROOT, SUBMISSIONS
from gradegrad.cli import app
from gradegrad.options import TORCH_ADDRESS_SPACE, minimum_memory

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
    (["check", EXAMPLES / "complete.py", "--memory", "300M"], "the student's process needs at least"),
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
    assert least > TORCH_ADDRESS_SPACE  # RLIMIT_AS is set after torch is imported
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


@pytest.mark.parametrize("source", ["x = " + "1+" * 100_000 + "1\n", "x = " + "-" * 1_000_000 + "1\n"],
                         ids=["recursion", "memory"])
def test_check_on_a_source_python_cannot_parse_reports_it_and_never_crashes(tmp_path, source):
    path = tmp_path / "bomb.py"
    path.write_text(source + (EXAMPLES / "complete.py").read_text())
    result = CliRunner().invoke(app, ["check", str(path), "-e", "add"],
                                env={"NO_COLOR": "1", "GITHUB_ACTIONS": "true", "COLUMNS": "120"})
    assert result.exit_code == 1 and "could not be loaded" in result.output
    assert "Traceback (most recent call last)" not in result.output.split("could not be loaded")[0]
