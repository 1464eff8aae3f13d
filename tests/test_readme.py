"""Every `gradegrad check` command shown in the README runs and exits as it says."""

import re
import shlex

from typer.testing import CliRunner

from conftest import ROOT
from gradegrad.cli import app


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return [shlex.split(line.split("#")[0].split("&&")[-1].strip())
            for line in text.splitlines() if re.search(r"(^|&& )gradegrad check submissions_example/", line.strip())]


def test_readme_check_command_works(monkeypatch):
    commands = readme_commands()
    assert commands, "the README shows no gradegrad check command"
    monkeypatch.chdir(ROOT)
    for argv in commands:
        result = CliRunner().invoke(app, argv[1:], env={"NO_COLOR": "1"})
        expected = 0 if "complete.py" in " ".join(argv) else 1
        assert result.exit_code == expected, (argv, result.output)
