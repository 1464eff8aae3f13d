"""`gradegrad gradescope bundle`: the zip, its scripts, and run_autograder in a simulated /autograder."""

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES, ROOT
from gradegrad.cli import app

SCHEMA = Path(__file__).resolve().parent / "schemas" / "gradescope_results.schema.json"
COURSE = FIXTURES / "instructor" / "course"
RUBRIC = """\
name: lab1g
title: "Lab 1 on Gradescope"
points: {found: 1, forward: 2, backward: 4, gradcheck: 2, stability: 1, hand_written: 0}
visibility: {default: visible, gradcheck: after_due_date, hand_written: hidden}
stdout_visibility: visible
exercises:
  - sigmoid
  - {id: matvec, visibility: {backward: after_published}}
"""
HELPERS = "import torch\n\ndef sig(x):\n    return 1 / (1 + torch.exp(-x))\n"
LAB = """\
import torch
from helpers import sig


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = sig(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return -g * y * (1 - y)
"""


def valid_results(data: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    (folder / "lab1g.yaml").write_text(RUBRIC)
    out = folder / "autograder.zip"
    result = CliRunner().invoke(app, ["gradescope", "bundle", "--rubric", str(folder / "lab1g.yaml"), "-e", "sigmoid",
                                      "-e", "matvec", "--module", "lab1.py", "--timeout", "20",
                                      "--exercises", str(COURSE / "exercises"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    return out


def test_the_zip_holds_the_scripts_gradegrad_and_the_course(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in archive.infolist()}
        setup = archive.read("setup.sh").decode()
        run = archive.read("run_autograder").decode()
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755 and modes["lib/gradegrad/cli.py"] == 0o644
    assert {"lib/gradegrad/__main__.py", "lib/gradegrad/data/exercises/sigmoid.yaml",
            "lib/gradegrad/data/rubrics/lab2.yaml", "course/rubrics/lab1g.yaml"} <= names
    assert any(n.startswith("course/exercises/1-exercises/") and n.endswith(".yaml") for n in names)
    assert not any("__pycache__" in n for n in names)
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup and "torch==2." in setup
    for requirement in ("numpy>=1.24", "typer>=0.9", "rich>=13", "pyyaml>=6"):
        assert requirement in setup, requirement
    assert "pytest" not in setup and "hypothesis" not in setup  # the test extra is not installed
    assert "-m gradegrad gradescope" in run and '--submission "$AUTOGRADER/submission"' in run
    assert "--module lab1.py" in run and "--rubric course/rubrics/lab1g.yaml" in run and "--timeout 20" in run
    assert "--exercise sigmoid" in run and "--exercises course/exercises/1-exercises" in run


def test_run_autograder_grades_the_upload_folder_in_a_simulated_container(bundle, tmp_path):
    autograder = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(autograder / "source")
    init = autograder / "source" / "lib" / "gradegrad" / "__init__.py"
    init.write_text(init.read_text() + '\n__version__ = "0.0.0+bundled"\n')  # to see which gradegrad ran
    upload = autograder / "submission"
    upload.mkdir()
    (upload / "lab1.py").write_text(LAB)
    (upload / "helpers.py").write_text(HELPERS)  # a sibling module the graded file imports
    env = {**os.environ, "AUTOGRADER": str(autograder), "GRADEGRAD_PYTHON": sys.executable, "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", str(autograder / "source" / "run_autograder")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((autograder / "results" / "results.json").read_text())
    valid_results(data)
    tests = {t["name"]: t for t in data["tests"]}
    assert tests["sigmoid: forward"]["status"] == "passed"  # helpers imported: the sibling module works
    assert tests["sigmoid: backward"]["status"] == "failed" and "sign_error" in tests["sigmoid: backward"]["output"]
    assert tests["sigmoid: gradcheck"]["visibility"] == "after_due_date"
    assert tests["sigmoid: hand_written"]["visibility"] == "hidden"
    assert tests["matvec: backward"]["visibility"] == "after_published" and tests["sigmoid: found"]["visibility"] == "visible"
    assert data["stdout_visibility"] == "visible" and data["score"] == 1 + 2  # found, forward (matvec missing)
    assert "gradegrad 0.0.0+bundled" in data["output"]  # the bundle's own gradegrad, from lib/


def test_the_default_gradescope_command_still_grades(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    (upload / "lab1.py").write_text(LAB.replace("-g *", "g *"))
    (upload / "helpers.py").write_text(HELPERS)
    results = tmp_path / "results.json"
    for argv in (["gradescope"], ["gradescope", "run"]):
        out = CliRunner().invoke(app, [*argv, "--rubric", "lab1", "-e", "sigmoid", "--module", "lab1.py",
                                       "--submission", str(upload), "--results", str(results)])
        assert out.exit_code == 0, out.output
        data = json.loads(results.read_text())
        valid_results(data)
        assert data["score"] == 11 and all(t["visibility"] == "visible" for t in data["tests"])


def test_visibility_mistakes_are_reported_by_validate(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("points: {found: 1}\nvisibility: {gradcheck: later}\nexercises: [sigmoid]\n")
    out = CliRunner().invoke(app, ["validate", str(bad), "--no-run"])
    assert out.exit_code == 1
    assert f"{bad}:2: visibility.gradcheck: expected one of visible, hidden, after_due_date, after_published, " \
           "got 'later'" in out.output
    bad.write_text("points: {found: 1}\nstdout_visibility: shown\nexercises: [{id: sigmoid, visibility: {gradchek: hidden}}]\n")
    out = CliRunner().invoke(app, ["validate", str(bad), "--no-run"])
    assert "stdout_visibility: expected one of" in out.output and "exercises[0].visibility.gradchek: unknown field " \
           "(did you mean 'gradcheck'?)" in out.output
