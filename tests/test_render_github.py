"""GitHub Actions: annotations at the failing Function, the job summary, and the ready-made workflow."""

import io
import shlex
import xml.etree.ElementTree as ET

import yaml
from typer.testing import CliRunner

from conftest import EXAMPLES, ROOT
from gradegrad.cli import app
from gradegrad.render.github import annotations, command, publish
from gradegrad.intake import Location
from render_samples import load_error_report, partial_report

METHODS = {"Sigmoid": {"class": Location("subs/lab.py", 10), "forward": Location("subs/lab.py", 12),
                       "backward": Location("subs/lab.py", 17)},
           "MyMatVec": {"class": Location("subs/lab.nb.ipynb", 1, 4), "backward": Location("subs/lab.nb.ipynb", 8, 4)}}


def test_an_annotation_per_exercise_that_did_not_pass_at_its_backward():
    lines = annotations(partial_report(), METHODS, "subs/lab.py")
    assert lines[0] == ("::error file=subs/lab.py,line=17,title=gradegrad sigmoid%3A backward::"
                        "the gradient of `x` has the wrong sign [sign_error]")
    assert lines[1].startswith("::warning file=subs/lab.nb.ipynb,title=gradegrad matvec%3A hand_written::cell 4, line 8: ")
    assert lines[2] == ("::error file=subs/lab.py,title=gradegrad conv1d%3A found::did you mean Conv? rename it Conv1d. "
                        "no class Conv1d in the submission [missing]")
    assert len(lines) == 3


def test_a_load_error_points_at_the_raising_line():
    assert annotations(load_error_report(), {}, "subs/broken.py") == [
        "::error file=subs/broken.py,line=7,title=gradegrad%3A the submission could not be loaded::"
        "importing the submission raised RuntimeError: no"]


def test_workflow_command_data_and_properties_are_escaped():
    assert command("error", "50% off\nnext", "a: b, c", Location("x,y.py", 3)) == \
        "::error file=x%2Cy.py,line=3,title=a%3A b%2C c::50%25 off%0Anext"


def test_publish_only_inside_github_actions(tmp_path):
    out, summary = io.StringIO(), tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    publish(partial_report(), METHODS, "subs/lab.py", out, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert out.getvalue() == "" and summary.read_text().startswith("earlier step\n# gradegrad: subs/lab.py")
    publish(partial_report(), METHODS, "subs/lab.py", out, env={"GITHUB_ACTIONS": "true"})
    assert out.getvalue().startswith("::error file=subs/lab.py,line=17,")


def test_check_in_github_actions_annotates_and_summarises(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    summary = tmp_path / "summary.md"
    result = CliRunner().invoke(app, ["check", "tests/fixtures/submissions/raises_before_classes.py", "-e", "add"],
                                env={"NO_COLOR": "1", "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    assert ("::error file=tests/fixtures/submissions/raises_before_classes.py,line=5,title=gradegrad%3A the "
            "submission could not be loaded::importing the submission raised FileNotFoundError") in result.stdout
    assert "## Your submission could not be loaded" in summary.read_text()


def test_top_level_code_that_raised_while_the_rest_was_graded_is_a_warning(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["check", "tests/fixtures/batch/frank.py", "-e", "sigmoid"],
                                env={"NO_COLOR": "1", "GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1  # its Sigmoid is graded, and wrong
    assert ("::warning file=tests/fixtures/batch/frank.py,line=18,title=gradegrad%3A frank.py%2C line 18 did not "
            "run to its end::RuntimeError: forgot to remove my test code") in result.stdout


def test_the_workflow_runs_gradegrad_check_with_junit(tmp_path, monkeypatch):
    """The Grade step of submissions_example/github-workflow.yml, run here on the complete example."""
    flow = yaml.safe_load((ROOT / "submissions_example" / "github-workflow.yml").read_text())
    steps = flow["jobs"]["check"]["steps"]
    assert any(s.get("uses", "").startswith("actions/checkout@") for s in steps)
    keep = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert keep["if"] == "always()" and "report.xml" in keep["with"]["path"]
    run = next(s["run"] for s in steps if "gradegrad check" in s.get("run", ""))
    values = {"$SUBMISSION": str(EXAMPLES / "complete.py"), "$RUBRIC": "lab1"}
    argv = [values.get(a, a) for a in shlex.split(run)]
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    result = CliRunner().invoke(app, [*argv[1:], "-e", "sigmoid"],
                                env={"NO_COLOR": "1", "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    assert "::" not in result.stdout  # nothing to annotate
    assert ET.parse(tmp_path / "report.xml").getroot().get("failures") == "0"
    assert "all checks passed" in summary.read_text() and (tmp_path / "report.json").exists()
    assert set(flow["env"]) == {"SUBMISSION", "RUBRIC", "GRADEGRAD", "TORCH"}
