"""The command line: parse options, call one core function, render, exit with a code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from gradegrad import __version__
from gradegrad.batch import grade_folder, grade_source
from gradegrad.cache import ResultCache
from gradegrad.catalog import Rubric, exercise_dirs, load_catalog, resolve_rubric, rubric_dirs, select_exercises
from gradegrad.errors import ExitCode, GradegradError
from gradegrad.options import make_options
from gradegrad.render.files import make_folder
from gradegrad.render.github import publish
from gradegrad.render.gradebook import write_gradebook
from gradegrad.render.gradescope import write_gradescope
from gradegrad.render.json_report import write_json
from gradegrad.render.junit import write_junit
from gradegrad.render.progress import progress_reporter
from gradegrad.render.scorecard import make_console, render_scorecard
from gradegrad.render.summary import render_summary
from gradegrad.stats import summarize
from gradegrad.submissions import discover, method_locations, source_for
from gradegrad.workers import default_jobs

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


def _fail(exc: GradegradError) -> typer.Exit:
    """The one-line message of a usage or configuration error, and the Exit to raise."""
    make_console(stderr=True).print(f"gradegrad: error: {exc}", markup=False, soft_wrap=True)  # one line
    return typer.Exit(exc.exit_code)


def _chosen(rubric: Optional[str], exercise: List[str], exercises: List[Path],
            rubrics: List[Path]) -> tuple[dict, Rubric]:
    """The catalog (built-in plus course folders) and the rubric restricted to `--exercise`."""
    catalog = load_catalog(exercise_dirs(exercises))
    return catalog, select_exercises(resolve_rubric(rubric, catalog, rubric_dirs(rubrics)), exercise, catalog)


EXERCISE = typer.Option([], "--exercise", "-e", help="Grade only this exercise id (repeatable).")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda or auto.")
SEED = typer.Option(0, "--seed", help="Seed for inputs and upstream gradients.")
TIMEOUT = typer.Option(30.0, "--timeout", help="Seconds allowed per exercise.")
MEMORY = typer.Option("4G", "--memory", help="Memory limit of the student's process (CPU), or 'none'.")
SUBMISSION_TIMEOUT = typer.Option(600.0, "--submission-timeout", help="Seconds allowed for all the exercises "
                                  "of one submission.")
ISOLATION = typer.Option("auto", "--isolation", help="Containment of student code: auto (every layer this "
                         "machine allows, the missing ones named in the report), strict (exit 2 unless evaluators "
                         "get their own namespaces), none (a separate process only: for debugging, never for "
                         "untrusted code). See SECURITY.md.")
EXERCISES = typer.Option([], "--exercises", help="Another folder of exercise manifests (repeatable); also "
                         "$GRADEGRAD_EXERCISES.")
RUBRICS = typer.Option([], "--rubrics", help="Another folder of rubrics, for --rubric NAME (repeatable); also "
                       "$GRADEGRAD_RUBRICS.")
MODULE = typer.Option(None, "--module", "-m", help="In a folder submission, the file to grade (e.g. lab2.py). "
                      "Default: the only top-level module, else all of them.")
FIXED_RUBRIC = typer.Option(None, "--rubric", "-r", help="Rubric name (see rubrics/) or YAML path. Default: all "
                            "(the whole catalog, so that every student is graded on the same exercises).")


@app.command()
def check(
    submission: Path = typer.Argument(..., help="The student's .py file, .ipynb notebook or folder."),
    rubric: Optional[str] = typer.Option(None, "--rubric", "-r", help="Rubric name (see rubrics/) or YAML path. "
                                         "Default: every exercise whose class is found."),
    exercise: List[str] = EXERCISE,
    device: str = DEVICE,
    seed: int = SEED,
    timeout: float = TIMEOUT,
    memory: str = MEMORY,
    submission_timeout: float = SUBMISSION_TIMEOUT,
    isolation: str = ISOLATION,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report (one testcase "
                                              "per check) for CI test reporters."),
    module: Optional[str] = MODULE,
) -> None:
    """Grade one submission and print its scorecard (in GitHub Actions: annotations and a job summary too)."""
    try:
        catalog, chosen = _chosen(rubric, exercise, exercises, rubrics)
        source = source_for(submission, module)
        report = grade_source(source, chosen, catalog, make_options(seed, device, timeout, memory, submission_timeout, isolation))
        render_scorecard(report, make_console())
        if json_path is not None:
            write_json(report, json_path)
        if junit_path is not None:
            write_junit(report, junit_path)
        publish(report, method_locations(source), str(submission), sys.stdout)
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FAILED)


@app.command("grade")
def grade_command(
    folder: Path = typer.Argument(..., help="The folder with one submission per student: .py files, "
                                  ".ipynb notebooks or folders."),
    rubric: Optional[str] = FIXED_RUBRIC,
    exercise: List[str] = EXERCISE,
    device: str = DEVICE,
    seed: int = SEED,
    timeout: float = TIMEOUT,
    memory: str = MEMORY,
    submission_timeout: float = SUBMISSION_TIMEOUT,
    isolation: str = ISOLATION,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    module: Optional[str] = MODULE,
    out: Path = typer.Option(Path("grades"), "--out", "-o", help="Where to write grades.csv, grades.json, "
                             "feedback/ and the cache."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Submissions graded at once. "
                                       "Default: the number of CPU cores. From 4 on, several grading "
                                       "processes share the batch."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Grade every submission again, even unchanged ones."),
    gradescope: bool = typer.Option(False, "--gradescope", help="Also write gradescope/<student>/results.json."),
) -> None:
    """Grade a folder of submissions: a gradebook, feedback per student, and a summary."""
    try:
        catalog, chosen = _chosen(rubric or "all", exercise, exercises, rubrics)
        options = make_options(seed, device, timeout, memory, submission_timeout, isolation)
        found = discover(folder, module, exclude=[out])
        cache = ResultCache(make_folder(out) / ".cache", read=not no_cache)
        with progress_reporter(make_console(stderr=True), len(found.sources)) as on_progress:
            result = grade_folder(found, chosen, catalog, options, jobs or default_jobs(), cache, on_progress)
        written = write_gradebook(result, out, gradescope)
        render_summary(result, summarize(result), written, make_console())
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK if result.passed else ExitCode.FAILED)


@app.command("gradescope")
def gradescope_command(
    rubric: Optional[str] = FIXED_RUBRIC,
    exercise: List[str] = EXERCISE,
    device: str = DEVICE,
    seed: int = SEED,
    timeout: float = TIMEOUT,
    memory: str = MEMORY,
    submission_timeout: float = SUBMISSION_TIMEOUT,
    isolation: str = ISOLATION,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    module: Optional[str] = MODULE,
    submission: Path = typer.Option(Path("/autograder/submission"), "--submission",
                                    help="The student's upload (a folder, a .py or a .ipynb)."),
    results: Path = typer.Option(Path("/autograder/results/results.json"), "--results",
                                 help="Where Gradescope reads the results."),
) -> None:
    """Grade inside Gradescope's autograder container (run_autograder): write results.json.

    Exits 0 once results.json is written, whatever the score: the score is in the file.
    """
    try:
        catalog, chosen = _chosen(rubric or "all", exercise, exercises, rubrics)
        report = grade_source(source_for(submission, module), chosen, catalog,
                              make_options(seed, device, timeout, memory, submission_timeout, isolation))
        write_gradescope(report, results)
        render_scorecard(report, make_console())
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK)


def main() -> None:
    app(prog_name="gradegrad")


from gradegrad import instructor_cli  # noqa: E402,F401  (registers list, show, template, validate, formula)
