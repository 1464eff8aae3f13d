"""The project's configuration: found upwards from the working directory, overridden by options."""

import json

import pytest
from typer.testing import CliRunner

from gradegrad.cli import app
from gradegrad.config import find_config, load_config, merge, project_config
from gradegrad.errors import ConfigError


SIGMOID_ONLY = """\
import torch


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)
"""


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_found_upwards_and_not_past_the_repository_root(tmp_path):
    repo = tmp_path / "outer" / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / "gradegrad.toml").write_text('rubric = "lab1"\n')  # above the repository: not read
    (repo / ".git").mkdir()
    assert find_config(repo / "src" / "deep") is None
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.gradegrad]: not a config
    assert find_config(repo / "src" / "deep") is None
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.gradegrad]\nrubric = "lab2"\n')
    assert find_config(repo / "src" / "deep") == repo / "pyproject.toml"
    (repo / "src" / "gradegrad.toml").write_text('rubric = "lab1"\n')  # the nearest wins
    assert find_config(repo / "src" / "deep") == repo / "src" / "gradegrad.toml"
    (repo / ".git").rmdir()
    (repo / ".git").write_text("gitdir: /elsewhere\n")  # a worktree's .git file is a boundary too
    (repo / "src" / "gradegrad.toml").unlink()
    assert find_config(repo / "src" / "deep") == repo / "pyproject.toml"


def test_paths_are_relative_to_the_file_and_keys_accept_both_spellings(tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "lab9.yaml").write_text("points: {found: 1}\nexercises: [add]\n")
    (tmp_path / "gradegrad.toml").write_text(
        'submission = "lab2.py"\nrubric = "course/lab9.yaml"\nexercises = "course"\nseed = 3\n'
        'submission_timeout = 90\nmemory = "2G"\n')
    config = project_config(tmp_path)
    assert config.get("submission") == tmp_path / "lab2.py" and config.get("rubric") == str(tmp_path / "course" / "lab9.yaml")
    assert config.get("exercises") == (tmp_path / "course",) and config.get("submission-timeout") == 90.0
    s = merge({"seed": 5, "exercises": [tmp_path / "more"], "memory": None}, config)
    assert s.seed == 5 and s.memory == "2G" and s.exercises == (tmp_path / "course", tmp_path / "more")
    assert s.timeout == 30.0 and s.config == tmp_path / "gradegrad.toml"


@pytest.mark.parametrize("text,words", [
    ('rubirc = "lab2"\n', "gradegrad.toml: rubirc: unknown key (did you mean 'rubric'?)"),
    ('seed = "zero"\n', "gradegrad.toml: seed: expected an integer, got 'zero'"),
    ('timeout = true\n', "gradegrad.toml: timeout: expected a number, got True"),
    ('exercises = [1]\n', "gradegrad.toml: exercises: expected a list of folder paths"),
    ('rubric = \n', "gradegrad.toml: not valid TOML"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, text, words):
    (tmp_path / "gradegrad.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gradegrad.toml")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_mistake_in_pyproject_is_named_with_its_table(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.gradegrad]\nsede = 1\n')
    monkeypatch.chdir(tmp_path)
    result = run("check")
    assert result.exit_code == 2 and "pyproject.toml: tool.gradegrad.sede: unknown key (did you mean 'seed'?)" \
        in result.output and "Traceback" not in result.output


def test_a_student_repo_checks_the_configured_file_with_the_configured_rubric(tmp_path, monkeypatch):
    (tmp_path / "lab.py").write_text(SIGMOID_ONLY)
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.gradegrad]\nsubmission = "lab.py"\nrubric = "lab1"\n')
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # from a subfolder, as pytest would
    out = tmp_path / "r.json"
    result = run("check", "--json", out)
    data = json.loads(out.read_text())
    assert result.exit_code == 1, result.output
    assert data["rubric"] == "lab1" and data["submission"].endswith("lab.py")
    assert {e["id"] for e in data["exercises"]} == {"add", "mul", "sum", "sigmoid", "dot", "matvec"}
    missing = [e for e in data["exercises"] if e["status"] == "missing"]
    assert missing and all(e["score"] == 0 for e in missing)  # with a configured rubric, missing ones fail
    only = run("check", "--rubric", "all", "-e", "sigmoid", "--json", out)  # options win over the file
    assert only.exit_code == 0 and json.loads(out.read_text())["rubric"] == "all"


def test_without_a_submission_anywhere_it_says_what_to_give(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    result = run("check")
    assert result.exit_code == 2 and "give the submission to grade, or set `submission`" in result.output


def test_instructor_commands_read_the_course_folders_of_the_config(tmp_path, monkeypatch):
    from conftest import FIXTURES

    course = FIXTURES / "instructor" / "course"
    (tmp_path / ".git").mkdir()
    (tmp_path / "gradegrad.toml").write_text(f'exercises = ["{course / "exercises"}"]\nrubrics = ["{course / "rubrics"}"]\n')
    monkeypatch.chdir(tmp_path)
    listed = run("list")
    assert listed.exit_code == 0 and any(line.startswith("tanh ") for line in listed.output.splitlines())


def test_a_students_config_cannot_run_code_in_the_grader(tmp_path, monkeypatch):
    """A TA who runs `gradegrad check` inside a student's cloned repository reads the student's
    gradegrad.toml and its exercise folder: a reference reaching `torch.os` used to run as the grader."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "lab.py").write_text(SIGMOID_ONLY)
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "pwned"
    (evil / "tanh.yaml").write_text(f"id: evil_tanh\nclass: Sigmoid\nteaches: x\n"
                                    f"reference: torch.os.system('touch {marker}') or torch.sigmoid(x)\n"
                                    "inputs:\n  - name: x\n    shape: [4]\n")
    (tmp_path / "gradegrad.toml").write_text('exercises = ["evil"]\n')
    monkeypatch.chdir(tmp_path)
    result = run("check", "lab.py")
    assert result.exit_code == 2 and "attribute 'system' is not allowed" in result.output
    assert not marker.exists()


@pytest.mark.parametrize("expr,attr", [
    ("x.numpy().dump('{marker}') or torch.sigmoid(x)", "dump"),  # ndarray.dump: a pickle written anywhere
    ("x.mul_(0) is None or torch.sigmoid(x)", "mul_"),  # in place, on the grader's inputs
    ("torch.manual_seed(0) is None or torch.sigmoid(x)", "manual_seed"),  # the grader's global state
    ("torch.set_num_threads(1) or torch.sigmoid(x)", "set_num_threads"),
    ("torch.CompilationUnit() is None or torch.sigmoid(x)", "CompilationUnit"),  # TorchScript from a string
    ("x.grad_fn.register_prehook(torch.sigmoid) is None or torch.sigmoid(x)", "register_prehook"),
])
@pytest.mark.parametrize("field", ["reference", "mistakes"])
def test_a_students_config_cannot_write_files_or_change_the_grader_through_a_formula(tmp_path, monkeypatch, expr,
                                                                                      attr, field):
    (tmp_path / ".git").mkdir()
    (tmp_path / "lab.py").write_text(SIGMOID_ONLY)
    (tmp_path / "evil").mkdir()
    marker = tmp_path / "pwned"
    formula = expr.format(marker=marker)
    reference = formula if field == "reference" else "torch.sigmoid(x)"
    mistakes = f"mistakes: [{{says: s, output: \"{formula}\"}}]\n" if field == "mistakes" else ""
    (tmp_path / "evil" / "sig.yaml").write_text(f"id: evil_sig\nclass: Sigmoid\nteaches: x\nreference: \"{reference}\"\n"
                                                f"inputs:\n  - name: x\n    shape: [4]\n{mistakes}")
    (tmp_path / "gradegrad.toml").write_text('exercises = ["evil"]\n')
    monkeypatch.chdir(tmp_path)
    result = run("check", "lab.py")
    assert result.exit_code == 2 and f"attribute {attr!r} is not allowed" in result.output, result.output
    assert not marker.exists()
