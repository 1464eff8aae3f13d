"""The command line: parse options, call one core function, render, exit with a code.

Grading options left out on the command line come from the project's configuration
(`gradegrad.toml` or `[tool.gradegrad]`, see `config.py`), then from the defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperArgument, TyperGroup

from gradegrad import __version__
from gradegrad.batch import grade_source
from gradegrad.catalog import Rubric, exercise_dirs, load_catalog, resolve_rubric, rubric_dirs, select_exercises
from gradegrad.config import Settings, settings
from gradegrad.errors import ExitCode, GradegradError, UsageError
from gradegrad.hygiene import one_line
from gradegrad.options import Options, make_options
from gradegrad.render.files import write_text_atomic
from gradegrad.render.github import publish
from gradegrad.render.json_report import write_json
from gradegrad.render.scorecard import make_console, render_scorecard
from gradegrad.intake import method_locations, source_for


class _PlainArgument(TyperArgument):
    """An argument shown by its metavar alone: recent typer adds its Python type (`<path>`) and braces."""

    def display_type_rich(self, ctx):  # noqa: ANN001, ANN201 - typer's signature
        return None

    def _usage_display_name(self) -> str:
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"


class CleanGroup(TyperGroup):
    """Help without Python types: every option has a metavar, and arguments show theirs alone."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            for param in command.params:
                if type(param) is TyperArgument and param.metavar:
                    param.__class__ = _PlainArgument


app = typer.Typer(cls=CleanGroup, add_completion=True, pretty_exceptions_enable=False, no_args_is_help=True,
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
    make_console(stderr=True).print(f"gradegrad: error: {one_line(exc, 2000)}", markup=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _chosen(s: Settings, default: Optional[str] = None) -> tuple[dict, Rubric]:
    """The catalog (built-in plus course folders) and the rubric restricted to `--exercise`."""
    catalog = load_catalog(exercise_dirs(s.exercises))
    rubric = resolve_rubric(s.rubric or default, catalog, rubric_dirs(s.rubrics))
    return catalog, select_exercises(rubric, s.exercise, catalog)


def _options(s: Settings) -> Options:
    return make_options(s.seed, s.device, s.timeout, s.memory, s.submission_timeout, s.load_timeout,
                        s.isolation)


def _given(path: Optional[Path], what: str, key: str) -> Path:
    if path is None:
        raise UsageError(f"give the {what}, or set `{key}` in the project's gradegrad.toml "
                         "(or [tool.gradegrad] in pyproject.toml)")
    return path


CONFIGURED = " Default: the project's config, else "
EXERCISE = typer.Option([], "--exercise", "-e", metavar="ID", help="Grade only this exercise id (repeatable).")
DEVICE = typer.Option(None, "--device", metavar="DEVICE", help="cpu, cuda or auto." + CONFIGURED + "cpu.")
SEED = typer.Option(None, "--seed", metavar="N", help="Seed for inputs and upstream gradients." + CONFIGURED + "0.")
TIMEOUT = typer.Option(None, "--timeout", metavar="SECONDS", help="Seconds allowed per exercise." + CONFIGURED
                       + "30.")
MEMORY = typer.Option(None, "--memory", metavar="SIZE", help="Memory limit of the student's process (CPU), "
                      "e.g. 4G, or 'none'." + CONFIGURED + "4G.")
LOAD_TIMEOUT = typer.Option(None, "--load-timeout", metavar="SECONDS", help="Seconds allowed for the "
                            "submission's top-level code (import, notebook cells); past it, the classes defined so "
                            "far are graded." + CONFIGURED + "60.")
SUBMISSION_TIMEOUT = typer.Option(None, "--submission-timeout", metavar="SECONDS", help="Seconds allowed for all "
                                  "the exercises of one submission." + CONFIGURED + "600.")
ISOLATION = typer.Option(None, "--isolation", metavar="LEVEL", help="Containment of student code: auto (every "
                         "layer this machine allows, the missing ones named in the report), strict (exit 2 unless "
                         "evaluators get their own namespaces), none (a separate process only: for debugging, never "
                         "for untrusted code). See SECURITY.md." + CONFIGURED + "auto.")
EXERCISES = typer.Option([], "--exercises", metavar="DIR", help="Another folder of exercise manifests "
                         "(repeatable); also $GRADEGRAD_EXERCISES and the config's `exercises`.")
RUBRICS = typer.Option([], "--rubrics", metavar="DIR", help="Another folder of rubrics, for --rubric NAME "
                       "(repeatable); also $GRADEGRAD_RUBRICS and the config's `rubrics`.")
MODULE = typer.Option(None, "--module", "-m", metavar="FILE", help="In a folder submission, the file to grade "
                      "(e.g. lab2.py); the folder's other modules stay importable. Default: the only top-level "
                      "module, else all of them.")
FIXED_RUBRIC = typer.Option(None, "--rubric", "-r", metavar="RUBRIC", help="Rubric name (see rubrics/) or YAML "
                            "path." + CONFIGURED + "all (the whole catalog, so that every student is graded on "
                            "the same exercises).")


@app.command()
def check(
    submission: Optional[Path] = typer.Argument(None, metavar="SUBMISSION", help="The student's .py file, .ipynb "
                                                "notebook or folder. Default: the config's `submission`."),
    rubric: Optional[str] = typer.Option(None, "--rubric", "-r", metavar="RUBRIC", help="Rubric name (see "
                                         "rubrics/) or YAML path." + CONFIGURED + "every exercise whose class is "
                                         "found (the report names those not graded)."),
    exercise: List[str] = EXERCISE,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    timeout: Optional[float] = TIMEOUT,
    memory: Optional[str] = MEMORY,
    submission_timeout: Optional[float] = SUBMISSION_TIMEOUT,
    load_timeout: Optional[float] = LOAD_TIMEOUT,
    isolation: Optional[str] = ISOLATION,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Also write the report as JSON "
                                             "to this file."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", metavar="FILE", help="Also write a JUnit XML report "
                                              "(xunit2: one testcase per check) for CI test reporters."),
    html_path: Optional[Path] = typer.Option(None, "--html", metavar="FILE", help="Also write the report as one "
                                             "self-contained web page."),
    module: Optional[str] = MODULE,
) -> None:
    """Grade one submission and print its scorecard (in GitHub Actions: annotations and a job summary too)."""
    from gradegrad.render.html_report import report_page  # here: `check` starts faster without what it rarely needs
    from gradegrad.render.junit import write_junit

    try:
        s = settings(locals())
        catalog, chosen = _chosen(s)
        source = source_for(_given(s.submission, "submission to grade", "submission"), s.module)
        report = grade_source(source, chosen, catalog, _options(s))
        render_scorecard(report, make_console())
        for path, write in ((json_path, write_json), (junit_path, write_junit),
                            (html_path, lambda r, p: write_text_atomic(p, report_page(r)))):
            if path is not None:
                write(report, path)
        publish(report, method_locations(source), str(s.submission), sys.stdout)
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FAILED)


@app.command("grade")
def grade_command(
    submissions: Optional[Path] = typer.Argument(None, metavar="FOLDER", help="The folder with one submission per "
                                                 "student: .py files, .ipynb notebooks or folders. Default: the "
                                                 "config's `submissions`."),
    rubric: Optional[str] = FIXED_RUBRIC,
    exercise: List[str] = EXERCISE,
    device: Optional[str] = DEVICE,
    seed: Optional[int] = SEED,
    timeout: Optional[float] = TIMEOUT,
    memory: Optional[str] = MEMORY,
    submission_timeout: Optional[float] = SUBMISSION_TIMEOUT,
    load_timeout: Optional[float] = LOAD_TIMEOUT,
    isolation: Optional[str] = ISOLATION,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    module: Optional[str] = MODULE,
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Where to write grades.csv, "
                                       "grades.json, report.html, feedback/ and the cache." + CONFIGURED + "grades."),
    roster: Optional[Path] = typer.Option(None, "--roster", metavar="CSV", help="The class roster (id, name, "
                                          "email, section): maps submissions to students and writes canvas.csv "
                                          "and moodle.csv."),
    adjustments: Optional[Path] = typer.Option(None, "--adjustments", metavar="CSV", help="Manual adjustments "
                                               "(student, exercise, points, comment), applied to every output."),
    assignment: Optional[str] = typer.Option(None, "--assignment", metavar="NAME", help="The gradebook column "
                                             "in canvas.csv and moodle.csv, e.g. 'Lab 2 (4242)' as in Canvas's "
                                             "export. Default: the rubric's title."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="N", help="Submissions graded at "
                                       "once. Default: the number of CPU cores. From 2 on, each is a grading "
                                       "process of its own."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Grade every submission again, even unchanged ones."),
    gradescope: bool = typer.Option(False, "--gradescope", help="Also write gradescope/<student>/results.json."),
    cluster: Optional[str] = typer.Option(None, "--cluster", metavar="ADDRESS", help="Grade on a Dask cluster: "
                                          "its scheduler's address (tcp://host:8786), or local:N to start N worker "
                                          "processes here. Needs gradegrad[dask]; see docs/cluster.md." + CONFIGURED
                                          + "this machine."),
) -> None:
    """Grade a folder of submissions: a gradebook, feedback per student, a web page and a summary."""
    from gradegrad.adjustments import read_adjustments  # here, not at the top: `check` starts without them
    from gradegrad.cache import ResultCache
    from gradegrad.cluster import dask_grader
    from gradegrad.course import grade_course
    from gradegrad.intake import discover
    from gradegrad.render.files import make_folder
    from gradegrad.render.gradebook import roster_notes, write_gradebook
    from gradegrad.render.gradescope import visibility_of
    from gradegrad.render.progress import progress_reporter
    from gradegrad.render.summary import render_summary
    from gradegrad.roster import read_roster
    from gradegrad.stats import summarize
    from gradegrad.workers import default_jobs

    try:
        s = settings(locals())
        catalog, chosen = _chosen(s, "all")
        found = discover(_given(s.submissions, "folder of submissions", "submissions"), s.module, exclude=[s.out])
        students = read_roster(s.roster) if s.roster else None
        rows = read_adjustments(s.adjustments, [it.exercise for it in chosen.items]) if s.adjustments else ()
        cache = ResultCache(make_folder(s.out) / ".cache", read=not no_cache)
        with dask_grader(s.cluster, jobs) as remote, \
                progress_reporter(make_console(stderr=True), len(found.sources)) as on_progress:
            book = grade_course(found, chosen, catalog, _options(s), s.jobs or default_jobs(), cache, on_progress,
                                students, rows, str(s.adjustments), s.assignment, remote)
        written = write_gradebook(book, s.out, gradescope, visibility_of(chosen))
        render_summary(book.batch, summarize(book.batch), written, make_console(), roster_notes(book))
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK if book.batch.passed else ExitCode.FAILED)


from gradegrad import gradescope_cli  # noqa: E402,F401  (registers gradescope [run|bundle])
from gradegrad import instructor_cli  # noqa: E402,F401  (registers list, show, template, validate, formula)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        _tolerant(stream)
    app(prog_name="gradegrad")


def _tolerant(stream: object) -> None:
    """A terminal or log whose encoding is not UTF-8 (`PYTHONIOENCODING=ascii`, a Latin-1 locale)
    gets `?` for what it cannot show (a mark, a student's text) instead of an exception that
    would end the command after the grading (Rich draws its tables in ASCII there itself)."""
    encoding = str(getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
    if not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="replace")
        except (ValueError, OSError):
            pass
