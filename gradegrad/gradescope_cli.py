"""`gradegrad gradescope`: grade inside Gradescope's container (the default, or `run`), and
`gradescope bundle`: write the autograder zip (setup.sh, run_autograder, the course's files).

Registered on `gradegrad.cli.app` (imported at the end of cli.py); commands are as thin as there.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gradegrad.batch import grade_source
from gradegrad.bundle import BundleSpec, write_bundle
from gradegrad.catalog import BUILTIN_EXERCISES, exercise_dirs
from gradegrad.cli import (DEVICE, EXERCISE, EXERCISES, FIXED_RUBRIC, ISOLATION, LOAD_TIMEOUT, MEMORY, MODULE,
                           RUBRICS, SEED, SUBMISSION_TIMEOUT, TIMEOUT, CleanGroup, _chosen, _fail, _options, app)
from gradegrad.config import settings
from gradegrad.errors import ExitCode, GradegradError
from gradegrad.render.gradescope import visibility_of, write_gradescope
from gradegrad.render.scorecard import make_console, render_scorecard
from gradegrad.intake import source_for

gradescope_app = typer.Typer(cls=CleanGroup, rich_markup_mode=None, help="Grade inside Gradescope's autograder "
                             "(the default, or `run`), or write the autograder zip (`bundle`).")
app.add_typer(gradescope_app, name="gradescope")


def run(
    ctx: typer.Context,
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
    submission: Path = typer.Option(Path("/autograder/submission"), "--submission", metavar="PATH",
                                    help="The student's upload (a folder, a .py or a .ipynb)."),
    results: Path = typer.Option(Path("/autograder/results/results.json"), "--results", metavar="FILE",
                                 help="Where Gradescope reads the results."),
) -> None:
    """Grade inside Gradescope's autograder container (run_autograder): write results.json.

    Exits 0 once results.json is written, whatever the score: the score is in the file.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        s = settings(locals())
        catalog, chosen = _chosen(s, "all")
        report = grade_source(source_for(submission, s.module), chosen, catalog, _options(s))
        write_gradescope(report, results, visibility=visibility_of(chosen))
        render_scorecard(report, make_console())
    except GradegradError as exc:
        raise _fail(exc)
    raise typer.Exit(ExitCode.OK)


gradescope_app.callback(invoke_without_command=True)(run)
gradescope_app.command("run")(run)


@gradescope_app.command("bundle")
def bundle(
    rubric: Optional[str] = FIXED_RUBRIC,
    exercise: List[str] = EXERCISE,
    seed: Optional[int] = SEED,
    timeout: Optional[float] = TIMEOUT,
    memory: Optional[str] = MEMORY,
    submission_timeout: Optional[float] = SUBMISSION_TIMEOUT,
    load_timeout: Optional[float] = LOAD_TIMEOUT,
    exercises: List[Path] = EXERCISES,
    rubrics: List[Path] = RUBRICS,
    module: Optional[str] = MODULE,
    output: Path = typer.Option(Path("autograder.zip"), "--output", "-o", metavar="ZIP",
                                help="The zip to upload to Gradescope."),
) -> None:
    """Write the autograder zip: setup.sh (CPU torch, gradegrad's dependencies), run_autograder, the rubric."""
    try:
        s = settings(locals())
        catalog, chosen = _chosen(s, "all")
        course = tuple(d for d in exercise_dirs(s.exercises) if d.resolve() != BUILTIN_EXERCISES.resolve())
        spec = BundleSpec(chosen, catalog, course, s.exercise, s.module, s.seed, s.timeout, s.submission_timeout,
                          s.memory, s.load_timeout)
        made = write_bundle(spec, output)
    except GradegradError as exc:
        raise _fail(exc)
    typer.echo(f"wrote {made.path}: setup.sh, run_autograder, gradegrad {len(made.files)} file(s), rubric "
               f"{chosen.name}; upload it as the assignment's autograder (Configure Autograder > Zip file upload)")
