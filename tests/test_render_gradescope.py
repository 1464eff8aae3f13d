"""Gradescope's results.json, from a report and from `gradegrad gradescope` in its container layout."""

import json
import shutil

from typer.testing import CliRunner

from conftest import FIXTURES
from gradegrad.cli import app
from gradegrad.render.gradescope import to_gradescope, to_gradescope_json
from render_samples import load_error_report, partial_report


def test_one_test_per_check_with_the_diagnosis_as_output():
    results = to_gradescope(partial_report(), "ann")
    assert results["score"] == 8 and results["output_format"] == "md" and results["output"].startswith("# gradegrad: ann")
    tests = {t["name"]: t for t in results["tests"]}
    assert "sigmoid: device" not in tests  # skipped checks are left out
    backward = tests["sigmoid: backward"]
    assert (backward["score"], backward["max_score"], backward["status"]) == (0, 4, "failed")
    assert "Diagnosis: sign_error" in backward["output"] and "got -0.25, expected 0.25" in backward["output"]
    assert tests["sigmoid: found"] == {"name": "sigmoid: found", "score": 1, "max_score": 1, "status": "passed",
                                       "output": "", "visibility": "visible"}
    assert tests["conv1d: found"]["output"].endswith("did you mean Conv? rename it Conv1d")
    assert {"name", "score", "max_score", "status", "output"} <= set(results["tests"][0])


def test_a_load_error_is_the_first_test():
    results = json.loads(to_gradescope_json(load_error_report()))
    first = results["tests"][0]
    assert first["name"] == "the submission loads" and first["status"] == "failed"
    assert "importing the submission raised RuntimeError" in first["output"] and "boom()" in first["output"]


def test_gradescope_command_reads_the_submission_folder_and_writes_results(tmp_path):
    submission = tmp_path / "autograder" / "submission"
    submission.mkdir(parents=True)
    shutil.copy(FIXTURES / "batch" / "bob.py", submission / "lab1.py")
    (submission / "README.md").write_text("my lab")
    results = tmp_path / "autograder" / "results" / "results.json"
    out = CliRunner().invoke(app, ["gradescope", "--rubric", "lab1", "-e", "sigmoid", "--module", "lab1.py",
                                   "--submission", str(submission), "--results", str(results)], env={"NO_COLOR": "1"})
    assert out.exit_code == 0, out.output  # the score is in the file, not the exit code
    data = json.loads(results.read_text())
    assert data["score"] == 3 and any(t["name"] == "sigmoid: backward" and t["status"] == "failed" for t in data["tests"])
    assert "sign_error" in data["output"]


def test_gradescope_command_without_a_submission_is_a_usage_error(tmp_path):
    out = CliRunner().invoke(app, ["gradescope", "--submission", str(tmp_path / "none"),
                                   "--results", str(tmp_path / "r.json")])
    assert out.exit_code == 2 and "submission not found" in out.output


def test_each_failing_check_is_a_test_with_its_own_reason():
    from gradegrad.render.gradescope import to_gradescope
    from render_samples import non_finite_report

    tests = {t["name"]: t for t in to_gradescope(non_finite_report())["tests"]}
    assert "nan/inf" in tests["softmax: stability"]["output"] and "not_finite" in tests["softmax: stability"]["output"]
    assert "n^2.00" in tests["softmax: efficiency"]["output"]
    assert tests["softmax: efficiency"]["status"] == "failed" and tests["softmax: forward"]["output"] == ""
