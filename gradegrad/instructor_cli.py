"""Commands for instructors and for the formula homework: list, show, template, validate, formula.

Registered on `gradegrad.cli.app` (imported at the end of cli.py). Each command parses its
options, calls one core function and prints plain text; `GradegradError` is caught here as in
cli.py: one line on stderr, exit code 2. The course's folders of the project config
(`exercises`, `rubrics`) count here too.
"""

from __future__ import annotations

import difflib
import shutil
import textwrap
from pathlib import Path
from typing import List, Optional

import typer

from gradegrad import describe
from gradegrad.catalog import (Exercise, Rubric, exercise_dirs, load_catalog, resolve_rubric, rubric_dirs,
                               select_exercises)
from gradegrad.cli import _fail, app
from gradegrad.config import settings
from gradegrad.errors import ExitCode, GradegradError, UsageError
from gradegrad.kinds import noun
from gradegrad.kinds.source import describe_input
from gradegrad.points import listing_device, skipped_here
from gradegrad.template import starter
from gradegrad.validate import validate as validate_paths
from gradegrad.variants import pick

EXERCISES_HELP = "Another folder of exercise manifests (repeatable); also $GRADEGRAD_EXERCISES."
RUBRICS_HELP = "Another folder of rubrics, for --rubric NAME (repeatable); also $GRADEGRAD_RUBRICS."
LISTING_DEVICE = typer.Option("cpu", "--device", metavar="DEVICE", help="The points as graded on this device: "
                              "cpu (the device check is skipped there and counts 0), cuda, or auto (this machine's).")


def _width() -> int:
    return max(80, shutil.get_terminal_size((110, 24)).columns)


def _folders(folders: List[Path], rubric_folders: List[Path]) -> tuple[list[Path], list[Path]]:
    """The course's folders: the project config's (gradegrad.toml), then the command line's."""
    s = settings({"exercises": folders, "rubrics": rubric_folders})
    return list(s.exercises), list(s.rubrics)


def _load(folders: List[Path], rubric: Optional[str],
          rubric_folders: List[Path]) -> tuple[dict[str, Exercise], Rubric]:
    folders, rubric_folders = _folders(folders, rubric_folders)
    catalog = load_catalog(exercise_dirs(folders))
    return catalog, resolve_rubric(rubric, catalog, rubric_dirs(rubric_folders))


# --------------------------------------------------------------------------- list


def _print_total(total: describe.Total | None) -> None:
    if total is None:
        return
    typer.echo(f"total {total.points:g} points on {total.device}" + (
        f" ({total.other_points:g} on {total.other_device}: `gradegrad list --device {total.other_device}`)"
        if total.other_points != total.points else ""))


def _print_rows(rows: list[describe.Row]) -> None:
    header = ("id", "kind", "class (aliases)", "points", "teaches")
    cells = [(r.id, r.kind, r.names, "-" if r.points is None else f"{r.points:g}", r.teaches) for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(4)]
    room = max(20, _width() - sum(widths) - 8)
    for c in [header, *cells]:
        teaches = c[4] if len(c[4]) <= room else c[4][:room - 1] + "…"
        typer.echo(f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]:>{widths[3]}}  {teaches}".rstrip())


@app.command("list")
def list_exercises(
    rubric: Optional[str] = typer.Option(None, "--rubric", "-r", metavar="RUBRIC",
                                         help="Only this rubric's exercises, with its points."),
    device: str = LISTING_DEVICE,
    exercises: List[Path] = typer.Option([], "--exercises", metavar="DIR", help=EXERCISES_HELP),
    rubrics: List[Path] = typer.Option([], "--rubrics", metavar="DIR", help=RUBRICS_HELP),
) -> None:
    """List the exercises: id, kind, class, points (the maxima grading gives) and what each teaches."""
    try:
        catalog, chosen = _load(exercises, rubric, rubrics)
        where = listing_device(device)
        rows = describe.rows(catalog, chosen, where)
        total = describe.total(catalog, chosen, where) if rubric else None
    except GradegradError as exc:
        raise _fail(exc)
    _print_rows(rows)
    _print_total(total)


# --------------------------------------------------------------------------- show


def _case_changes(ex: Exercise) -> list[str]:
    first = {s.name: s for s in ex.cases[0].inputs}
    lines = []
    for case in ex.cases:
        changes = [f"{s.name}.shape={list(s.shape)}" if s.shape != first[s.name].shape else "" for s in case.inputs]
        changes += [f"{s.name}.domain={s.domain.kind}{dict(s.domain.params)}" if s.domain != first[s.name].domain
                    else "" for s in case.inputs]
        changes += [f"{s.name}={s.value:g}" if s.value != first[s.name].value else "" for s in case.inputs]
        changes += [f"{s.name} includes {[f'{v:g}' for v in s.include]}".replace("'", "") if s.include else ""
                    for s in case.inputs]
        label = case.name + (" (stability)" if case.stability else "")
        lines.append(label + (": " + ", ".join(c for c in changes if c) if any(changes) else ""))
    return lines


def _show(ex: Exercise, rubric: Rubric, variant: str, device: str) -> None:
    who = f"{noun(ex)} {describe.names(ex)}" if ex.class_name else "no code: an answer file"
    typer.echo(f"{ex.id}  ({ex.kind}; {who})")
    typer.echo(textwrap.fill(ex.teaches, _width() - 2, initial_indent="  ", subsequent_indent="  ") + "\n")
    if ex.formula:
        typer.echo(f"formula    {ex.formula}")
    if ex.kind == "formula":
        typer.echo(f"variables  {ex.spec.variables} (x1 .. x{ex.spec.variables}), a random expression per student")
        typer.echo(f"tolerance  rtol {ex.spec.rtol:g}, atol {ex.spec.atol:g} per gradient component")
        typer.echo("students   gradegrad formula --student NAME   (then --answer FILE to grade)")
    else:
        _show_code(ex, variant)
    item = describe.item_for(rubric, ex.id)
    checks = describe.checks_of(ex, item)
    if checks:
        label = "all" if rubric.only_found else rubric.name
        skipped = {cid: why for cid, _, why in skipped_here(ex, item, device)}
        typer.echo(f"checks     (rubric {label}; {describe.points(ex, item, device):g} points on {device})")
        for cid, p in checks:
            shown = f"({p:g})" if cid in skipped else f"{p:g}"
            meaning = f"skipped on {device} ({skipped[cid]}): counts 0" if cid in skipped else \
                describe.CHECK_MEANINGS.get(cid, '')
            typer.echo(f"  {cid:<17}{shown:>4}  {meaning}")
    typer.echo(f"file       {ex.path}")


def _show_code(ex: Exercise, variant: str) -> None:
    if ex.reference:
        typer.echo(f"reference  {ex.reference}")
    if ex.kind == "chain":
        typer.echo(f"data       the course notes' linear regression (30 points), {ex.spec.steps} SGD steps, "
                   f"lr {ex.spec.lr:g}")
    if ex.inputs:
        typer.echo("inputs" + (f"     ({variant})" if variant else ""))
        for spec in ex.inputs:
            where = " (constructor)" if spec.name in ex.spec.init else ""
            typer.echo(f"  {describe_input(spec, 'array' if ex.kind == 'vjp' else 'tensor')}{where}")
        if ex.kind == "vjp":
            typer.echo(f"  vjp is called with {'u = None (a loss)' if ex.spec.upstream == 'none' else 'a random u'}")
        typer.echo("cases")
        for line in _case_changes(ex):
            typer.echo(f"  {line}")
    if ex.variants and not variant:
        typer.echo(f"variants   {len(ex.variants)}, one per student with a rubric's `variants: true`:")
        for i, v in enumerate(ex.variants):
            typer.echo(f"  {i + 1}. {v.label}")
    if ex.forbidden:
        typer.echo(f"forbidden  {', '.join(ex.forbidden)}")
    if ex.mistakes:
        typer.echo("mistakes   named when a student's numbers match:")
        for m in ex.mistakes:
            typer.echo(f"  {m.says}")
            for line in ([f"output = {m.output}"] if m.output else []) + [f"grad {n} = {e}" for n, e in m.gradients]:
                typer.echo(f"      {line}")
    t64, t32 = ex.tolerance64, ex.tolerance32
    typer.echo(f"tolerance  float64 rtol {t64.rtol:g} atol {t64.atol:g}; float32 rtol {t32.rtol:g} atol {t32.atol:g}")


@app.command()
def show(
    exercise: str = typer.Argument(..., metavar="EXERCISE", help="The exercise id (see `gradegrad list`)."),
    rubric: Optional[str] = typer.Option(None, "--rubric", "-r", metavar="RUBRIC",
                                         help="Show this rubric's points (default: all)."),
    device: str = LISTING_DEVICE,
    student: Optional[str] = typer.Option(None, "--student", metavar="NAME", help="Show the variant this student gets."),
    exercises: List[Path] = typer.Option([], "--exercises", metavar="DIR", help=EXERCISES_HELP),
    rubrics: List[Path] = typer.Option([], "--rubrics", metavar="DIR", help=RUBRICS_HELP),
) -> None:
    """Show an exercise: statement, formula, inputs, cases and checks."""
    try:
        catalog, chosen = _load(exercises, rubric, rubrics)
        if exercise not in catalog:
            select_exercises(chosen, [exercise], catalog)  # raises with "did you mean"
        ex, variant = pick(catalog[exercise], student) if student else (catalog[exercise], "")
        where = listing_device(device)
    except GradegradError as exc:
        raise _fail(exc)
    _show(ex, chosen, f"student {student}: {variant}" if student and variant else "", where)


# --------------------------------------------------------------------------- template


@app.command()
def template(
    rubric: str = typer.Option(..., "--rubric", "-r", metavar="RUBRIC", help="Rubric name or YAML path."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE",
                                          help="Write to this file (default: print)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output file if it exists."),
    exercises: List[Path] = typer.Option([], "--exercises", metavar="DIR", help=EXERCISES_HELP),
    rubrics: List[Path] = typer.Option([], "--rubrics", metavar="DIR", help=RUBRICS_HELP),
) -> None:
    """Write a starter .py for a rubric: a stub per exercise that imports cleanly and scores 0."""
    try:
        catalog, chosen = _load(exercises, rubric, rubrics)
        source = starter(chosen, catalog, rubric, output.name if output else "my_answers.py")
        if output is not None and output.exists() and not force:
            raise UsageError(f"{output} exists: pass --force to overwrite it")
    except GradegradError as exc:
        raise _fail(exc)
    if output is None:
        typer.echo(source, nl=False)
        return
    output.write_text(source, encoding="utf-8")
    typer.echo(f"wrote {output}: {len(chosen.items)} stub(s) for rubric {chosen.name}; "
               f"check it with `gradegrad check {output} --rubric {rubric}`", err=True)


# --------------------------------------------------------------------------- validate


@app.command()
def validate(
    paths: Optional[List[Path]] = typer.Argument(None, metavar="PATH...", help="Manifests, rubrics or folders "
                                                 "(default: every folder gradegrad reads)."),
    run: bool = typer.Option(True, "--run/--no-run", help="Grade each exercise's reference answer (a few seconds)."),
    exercises: List[Path] = typer.Option([], "--exercises", metavar="DIR", help=EXERCISES_HELP),
    rubrics: List[Path] = typer.Option([], "--rubrics", metavar="DIR", help=RUBRICS_HELP),
) -> None:
    """Check manifests and rubrics, and that each exercise's reference passes its own checks."""
    try:
        result = validate_paths(paths or [], *_folders(exercises, rubrics), run=run)
    except GradegradError as exc:
        raise _fail(exc)
    for problem in result.problems:
        typer.echo(str(problem))
    ran = f", {result.references} reference answer(s) graded" if run else ""
    verdict = f"{len(result.problems)} problem(s)" if result.problems else "no problems"
    typer.echo(f"checked {len(result.files)} file(s): {len(result.exercises)} exercise(s), "
               f"{len(result.rubrics)} rubric(s){ran}; {verdict}", err=True)
    raise typer.Exit(ExitCode.FAILED if result.problems else ExitCode.OK)


# --------------------------------------------------------------------------- formula


def _formula_exercise(catalog: dict[str, Exercise], exercise: Optional[str]) -> Exercise:
    found = [ex for ex in catalog.values() if ex.kind == "formula"]
    if exercise is not None:
        if exercise not in catalog or catalog[exercise].kind != "formula":
            close = difflib.get_close_matches(exercise, [ex.id for ex in found], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"{exercise!r} is not a formula exercise: {hint}those are: "
                             + (", ".join(ex.id for ex in found) or "none"))
        return catalog[exercise]
    if len(found) != 1:
        raise UsageError("pass --exercise: the formula exercises are " + (", ".join(ex.id for ex in found) or "none"))
    return found[0]


def _print_formula(formula, ex: Exercise) -> None:
    names = ", ".join(formula.variables)
    typer.echo(f"student: {formula.student}   ({ex.id})")
    typer.echo(f"f({names}) = {formula.text}")
    typer.echo(f"at x = ({', '.join(str(v) for v in formula.point)})\n")
    typer.echo(textwrap.fill("Draw the computational graph, do the forward pass by hand, then the backward pass "
                             "to get the gradient of f at this point; check it with PyTorch. Hand in a YAML (or "
                             "JSON) file:", _width() - 2))
    typer.echo(f"\n  student: {formula.student}\n  gradient: [{', '.join('df/d' + v for v in formula.variables)}]")


@app.command()
def formula(
    student: Optional[str] = typer.Option(None, "--student", "-s", metavar="NAME", help="The student's name (the "
                                          "formula depends on it). With --answer, default: the answer file's name "
                                          "(ada_lovelace.yaml); the name written inside the answer is never used."),
    answer: Optional[Path] = typer.Option(None, "--answer", "-a", metavar="FILE", help="Grade this YAML/JSON answer "
                                          "(gradient: [...])."),
    exercise: Optional[str] = typer.Option(None, "--exercise", "-e", metavar="ID", help="The formula exercise "
                                           "(when there are several)."),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="Also write the graded report "
                                             "as JSON."),
    exercises: List[Path] = typer.Option([], "--exercises", metavar="DIR", help=EXERCISES_HELP),
) -> None:
    """Print a student's own random formula and point, or grade their gradient (--answer)."""
    from gradegrad.formula import grade_answer, identity, make_formula, read_answer

    try:
        ex = _formula_exercise(load_catalog(exercise_dirs(_folders(exercises, [])[0])), exercise)
        given = read_answer(answer, ex.spec.variables) if answer is not None else None
        if not student and answer is None:
            raise UsageError("pass --student NAME (the formula depends on the student's name)")
        who = identity(student, answer, given)
        chosen = make_formula(ex, who.name)
        report = grade_answer(ex, chosen, given, answer, who) if given else None
        if report is not None and json_path is not None:
            from gradegrad.render.json_report import write_json

            write_json(report, json_path)
    except GradegradError as exc:
        raise _fail(exc)
    if report is None:
        _print_formula(chosen, ex)
        return
    _print_graded(report, chosen)
    raise typer.Exit(ExitCode.OK if report.passed else ExitCode.FAILED)


def _print_graded(report, chosen) -> None:
    typer.echo(f"student: {chosen.student}   f({', '.join(chosen.variables)}) = {chosen.text}   "
               f"at x = ({', '.join(str(v) for v in chosen.point)})")
    for note in report.notes[1:]:  # whose formula was graded, and why
        typer.echo(note)
    for check in report.exercises[0].checks:
        mark = "✓" if check.status == "passed" else "✗"
        detail = f"  {check.message}" + (f"  [{check.diagnosis}]" if check.diagnosis else "") if check.message else ""
        typer.echo(f"  {mark} {check.id}{detail}")
    typer.echo(f"Total {report.score:g}/{report.max_score:g}")
