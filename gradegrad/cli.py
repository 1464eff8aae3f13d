"""The command line: parse options, call one core function, render, exit with a code."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gradegrad import __version__
from gradegrad.catalog import load_catalog, resolve_rubric, select_exercises
from gradegrad.errors import ExitCode, GradegradError
from gradegrad.grading import grade
from gradegrad.options import make_options
from gradegrad.render.json_report import write_json
from gradegrad.render.scorecard import make_console, render_scorecard

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  rich_markup_mode=None, help="Grade hand-written backward passes (custom torch.autograd.Function).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradegrad {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Show the version and exit.")) -> None:
    """gradegrad: an autograder for backpropagation exercises."""


@app.command()
def check(
    submission: Path = typer.Argument(..., help="The student's .py file."),
    rubric: Optional[str] = typer.Option(None, "--rubric", "-r", help="Rubric name (see rubrics/) or YAML path. "
                                         "Default: every exercise whose class is found."),
    exercise: List[str] = typer.Option([], "--exercise", "-e", help="Grade only this exercise id (repeatable)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    seed: int = typer.Option(0, "--seed", help="Seed for inputs and upstream gradients."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds allowed per exercise."),
    memory: str = typer.Option("4G", "--memory", help="Memory limit of the student's process (CPU), or 'none'."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
) -> None:
    """Grade one submission and print its scorecard."""
    try:
        catalog = load_catalog()
        chosen = select_exercises(resolve_rubric(rubric, catalog), exercise, catalog)
        report = grade(submission, chosen, catalog, make_options(seed, device, timeout, memory))
        render_scorecard(report, make_console())
        if json_path is not None:
            write_json(report, json_path)
    except GradegradError as exc:
        make_console(stderr=True).print(f"gradegrad: error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code)
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FAILED)


def main() -> None:
    app(prog_name="gradegrad")
