"""The README and docs/ say what gradegrad does: every command shown runs or at least parses, and
the tables list real checks, diagnoses, config keys and columns."""

import re
import shlex

import typer
from typer.testing import CliRunner

from conftest import ROOT
from gradegrad.catalog import CHECK_IDS
from gradegrad.cli import app
from gradegrad.config import KEYS
from gradegrad.diagnosis import CODES
from gradegrad.render.lms import CANVAS_COLUMNS, MOODLE_COLUMNS
from gradegrad.roster import COLUMNS as ROSTER_COLUMNS

README = (ROOT / "README.md").read_text()
COURSE = (ROOT / "docs" / "course.md").read_text()


def readme_commands():
    return [shlex.split(line.split("#")[0].split("&&")[-1].strip())
            for line in README.splitlines() if re.search(r"(^|&& )gradegrad check submissions_example/", line.strip())]


def shown_commands(text: str) -> list[list[str]]:
    """Every `gradegrad ...` command of a code block (indented lines, or after `&&`)."""
    found = []
    for line in text.splitlines():
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("gradegrad ") and (line.startswith("    ") or "&&" in line):
                found.append(shlex.split(part, comments=True))
    return found


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end if end > 0 else None]


def test_readme_check_command_works(monkeypatch):
    commands = readme_commands()
    assert commands, "the README shows no gradegrad check command"
    monkeypatch.chdir(ROOT)
    for argv in commands:
        result = CliRunner().invoke(app, argv[1:], env={"NO_COLOR": "1"})
        expected = 0 if "complete.py" in " ".join(argv) else 1
        assert result.exit_code == expected, (argv, result.output)


def test_every_command_shown_names_real_commands_and_options():
    commands = shown_commands(README) + shown_commands(COURSE)
    assert len(commands) > 20
    root = typer.main.get_command(app)
    for argv in commands:
        args, command, name = argv[1:], root, "gradegrad"
        while isinstance(getattr(command, "commands", None), dict) and args and args[0] in command.commands:
            name, command, args = args[0], command.commands[args[0]], args[1:]
        command.make_context(name, list(args), resilient_parsing=False)  # raises on an unknown option


def test_the_checks_table_and_the_diagnoses_are_real():
    listed = re.findall(r"^\| (`[^|]+`) \|", section(README, "### The checks"), re.M)
    ids = {i for cell in listed for i in re.findall(r"`(\w+)`", cell)}
    # the table lists the checks of Function exercises; the other kinds' own checks are in docs/exercises.md
    assert ids and ids <= set(CHECK_IDS) and set(CHECK_IDS) - ids <= {"wraps_function", "training", "parameters"}
    codes = set(re.findall(r"`(\w+)`", section(README, "### Diagnoses")))
    assert codes and codes <= set(CODES)


def test_the_torch_advice_is_what_the_scripts_do():
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in README
    assert "the pinned torch is a CPU build" not in README


def test_the_course_docs_list_the_real_keys_and_columns():
    keys = re.findall(r"^\| `([\w-]+)` \|", section(COURSE, "## Project config"), re.M)
    assert set(keys) == set(KEYS)
    columns = re.findall(r"^\| `(\w+)` \|", section(COURSE, "## Roster"), re.M)
    assert tuple(columns) == ROSTER_COLUMNS
    canvas = section(COURSE, "## Canvas and Moodle")
    assert all(f"`{c}`" in canvas for c in (*CANVAS_COLUMNS, *MOODLE_COLUMNS, "Feedback", "Points Possible"))
