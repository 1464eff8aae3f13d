"""The GitHub Classroom example (submissions_example/classroom): files that parse, points that
agree with `gradegrad list`, and commands that work in a student's repository."""

import json
import re
import shlex
import shutil

import yaml
from typer.testing import CliRunner

from conftest import EXAMPLES
from gradegrad.cli import app

CLASSROOM = EXAMPLES / "classroom"
KEYS = {"name", "setup", "run", "input", "output", "comparison", "timeout", "points"}  # education/autograding's


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "200"})


def autograding_tests():
    return json.loads((CLASSROOM / ".github" / "classroom" / "autograding.json").read_text())["tests"]


def test_the_workflow_and_the_autograding_config_parse():
    workflow = yaml.safe_load((CLASSROOM / ".github" / "workflows" / "classroom.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert [s.get("uses", "").split("@")[0] for s in steps] == ["actions/checkout", "actions/setup-python",
                                                                 "education/autograding"]
    assert workflow["permissions"]["checks"] == "write" and True in workflow  # `on:` reads as True in YAML 1.1
    for test in autograding_tests():
        assert set(test) == KEYS and test["comparison"] in ("included", "exact", "regex")
        assert isinstance(test["points"], int) and test["timeout"] > 0 and test["run"].startswith("gradegrad check ")
    assert "--index-url https://download.pytorch.org/whl/cpu" in autograding_tests()[0]["setup"]


def test_each_test_is_worth_its_exercise_s_points_in_gradegrad_list():
    listing = run("list", "--rubric", "lab2").output.splitlines()
    points = {row[0]: float(row[3]) for row in (re.split(r"\s{2,}", line) for line in listing[1:-1])}
    ids = {shlex.split(t["run"])[-1]: t["points"] for t in autograding_tests()}
    assert ids == points and sum(ids.values()) == float(listing[-1].split()[1])


def test_the_commands_work_in_a_student_repository(tmp_path, monkeypatch):
    total = sum(t["points"] for t in autograding_tests())
    repo = tmp_path / "lab2-student"
    shutil.copytree(CLASSROOM, repo)
    (repo / ".git").mkdir()
    monkeypatch.chdir(repo)
    starter = run("check")  # the template, untouched: every exercise 0, named
    assert starter.exit_code == 1 and "not implemented yet" in starter.output and f"Total 0/{total}" in starter.output
    shutil.copy(EXAMPLES / "complete.py", repo / "lab2.py")
    for test in autograding_tests()[:3]:
        result = run(*shlex.split(test["run"])[1:])
        assert result.exit_code == 0, (test["run"], result.output)
        assert f"Total {test['points']}/{test['points']}" in result.output
    everything = run("check")
    assert everything.exit_code == 0 and f"Total {total}/{total}  all checks passed" in everything.output
