"""The Rich scorecard: the one module that knows Rich's styles.

Reads well on a terminal and in a CI log (no colour with NO_COLOR or when not a terminal).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradegrad.report import ExerciseResult, Report

STYLES = {
    "passed": "bold green", "failed": "bold red", "error": "bold magenta", "timeout": "bold yellow",
    "missing": "dim", "skipped": "dim",
}
MARKS = {"passed": "✓", "failed": "✗", "error": "!", "timeout": "⏱", "missing": "·"}


def make_console(stderr: bool = False) -> Console:
    file = sys.stderr if stderr else sys.stdout
    width = None if file.isatty() or os.environ.get("COLUMNS") else 110
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


def _points(x: float) -> str:
    return f"{x:g}"


def _feedback(ex: ExerciseResult) -> Text:
    text = Text()
    if ex.hint:
        text.append(ex.hint, "yellow")
    problem = ex.first_problem
    if problem is not None and ex.status != "missing":
        if problem.max_points == 0 and problem.status == "failed":
            text.append("flag ", "bold yellow")  # worth no points: shown, not scored
        text.append(f"{problem.id}: ", "bold")
        text.append(problem.message)
        if problem.diagnosis:
            text.append(f"  [{problem.diagnosis}]", "cyan")
        if ex.teaches:
            text.append("\n" + ex.teaches, "dim italic")
    elif ex.status == "missing" and not ex.hint:
        text.append("class not found", "dim")
    return text


def scorecard_table(report: Report) -> Table:
    table = Table(show_edge=False, pad_edge=False, expand=False, header_style="bold")
    table.add_column("Exercise", no_wrap=True)
    table.add_column("Class", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Points", justify="right", no_wrap=True)
    table.add_column("Feedback", ratio=1)
    for ex in report.exercises:
        status = Text(f"{MARKS.get(ex.status, '')} {ex.status}", STYLES.get(ex.status, ""))
        table.add_row(ex.id, ex.class_name or "-", status, f"{_points(ex.score)}/{_points(ex.max_score)}",
                      _feedback(ex))
    return table


def _title(report: Report) -> Text:
    return Text.assemble(("gradegrad ", "bold"), report.submission,
                         (f"  rubric {report.rubric} · device {report.device} · seed {report.seed}", "dim"))


def _total(report: Report) -> Text:
    style = "bold green" if report.passed else "bold red"
    verdict = "all checks passed" if report.passed else "some checks did not pass"
    return Text.assemble(("Total ", "bold"), (f"{_points(report.score)}/{_points(report.max_score)}", style),
                         f"  {verdict}")


def _tracebacks(report: Report) -> list[Panel]:
    panels = []
    if report.error:
        body = Text(report.error, "bold red")
        if report.error_traceback:
            body.append("\n\n" + report.error_traceback.rstrip())
        panels.append(Panel(body, title="the submission could not be loaded", title_align="left"))
    for ex in report.exercises:
        shown = next((c for c in ex.checks if c.traceback), None)
        if shown:
            panels.append(Panel(Text(shown.traceback.rstrip()), title=f"{ex.id}: your traceback ({shown.id})",
                                title_align="left", border_style="magenta"))
    return panels


def _output(report: Report) -> list[Panel]:
    out = report.output
    if out.empty:
        return []
    parts = []
    for name, text in (("stdout", out.stdout), ("stderr", out.stderr)):
        if text.strip():
            parts.append(Text(f"[{name}]\n", "dim") + Text(text.rstrip()))
    if out.truncated:
        parts.append(Text("… (output truncated)", "dim"))
    return [Panel(Group(*parts), title="what your code printed", title_align="left", border_style="dim")]


def sandbox_line(report: Report) -> str:
    """Every layer of containment that was active, then every one missing here (SECURITY.md)."""
    active = ", ".join(report.protections) or "a separate process only"
    missing = f"; missing: {', '.join(report.missing_protections)}" if report.missing_protections else ""
    return f"sandbox: {active}{missing}"


def render_scorecard(report: Report, console: Console) -> None:
    console.print(_title(report))
    if report.exercises:
        console.print(scorecard_table(report))
    for panel in _tracebacks(report):
        console.print(panel)
    for panel in _output(report):
        console.print(panel)
    for note in report.notes:
        console.print(Text(note, "dim"))
    console.print(Text(sandbox_line(report), "dim"))
    console.print(_total(report))
