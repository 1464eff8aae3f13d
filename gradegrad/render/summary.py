"""The batch summary on the terminal: what a TA reads after `gradegrad grade`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradegrad.batch import BatchResult
from gradegrad.diagnosis import CODES
from gradegrad.render.scorecard import STYLES
from gradegrad.stats import Rate, Summary

BAR = 40  # characters of the longest histogram bar
STATUS_STYLES = {**STYLES, "invalid": "bold red"}


def _rate(rate: Rate) -> Text:
    if not rate.total:
        return Text("-", "dim")
    style = "green" if rate.passed == rate.total else "red" if rate.percent < 50 else "yellow"
    return Text(f"{rate.percent:.0f}%", style)


def _title(result: BatchResult, summary: Summary) -> Text:
    return Text.assemble(("gradegrad grade ", "bold"), result.folder,
                         (f"  rubric {result.rubric} · {len(result.exercises)} exercise(s) · "
                          f"{summary.students} student(s)", "dim"))


def _histogram(summary: Summary) -> list[Text]:
    top = max((n for _, n in summary.histogram), default=0) or 1
    lines = [Text("Scores (percent of the maximum)", "bold")]
    for label, n in reversed(summary.histogram):
        bar = "█" * max(1 if n else 0, round(BAR * n / top))
        lines.append(Text.assemble(f"  {label:>8} ", (bar, "cyan"), f" {n}" if n else ""))
    lines.append(Text(f"  mean {summary.mean:.0f}% · median {summary.median:.0f}% · "
                      f"{summary.passed_all} of {summary.students} passed every check", "dim"))
    return lines


def _check_rates(checks: tuple[tuple[str, Rate], ...], only_failing: bool) -> Text:
    text = Text()
    for cid, rate in checks:
        if only_failing and rate.passed == rate.total:
            continue
        if text:
            text.append(" · ", "dim")
        text.append(f"{cid} ")
        text.append_text(_rate(rate))
    return text if text else Text("every check passed", "green")


def _rates(summary: Summary) -> Table:
    table = Table(title="Pass rates, among the students whose code loaded", title_justify="left",
                  title_style="bold", show_edge=False, pad_edge=False, header_style="bold", box=None)
    table.add_column("exercise", no_wrap=True)
    table.add_column("passed", justify="right", no_wrap=True)
    table.add_column("checks that some did not pass", ratio=1)
    for r in summary.rates:
        table.add_row(r.exercise, Text.assemble(_rate(r.overall), (f" {r.overall.passed}/{r.overall.total}", "dim")),
                      _check_rates(r.checks, only_failing=True))
    table.add_row(Text("every check", "bold"), "", _check_rates(summary.checks, only_failing=False))
    return table


def _grid() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    return table


def _mistakes(summary: Summary) -> list[Text | Table]:
    if not summary.mistakes:
        return []
    table = _grid()
    for m in summary.mistakes:
        names = ", ".join(m.students[:5]) + (f", … (+{len(m.students) - 5})" if len(m.students) > 5 else "")
        table.add_row(f"  {len(m.students):>3} ×", Text(f"{m.exercise} {m.check}", "bold"),
                      Text.assemble((m.diagnosis, "cyan"), f": {m.says or CODES.get(m.diagnosis, '')}",
                                    (f"  ({names})", "dim")))
    return [Text("Most common mistakes", "bold"), table]


def _troubles(summary: Summary) -> list[Text | Table]:
    if not summary.troubles:
        return []
    table = _grid()
    for t in summary.troubles:
        table.add_row(f"  {t.name}", Text(t.status, STATUS_STYLES.get(t.status, "")), t.reason)
    return [Text("Errored, timed out or not graded", "bold"), table]


def _skipped(result: BatchResult) -> list[Text]:
    lines = []
    if result.skipped:
        lines.append(Text("Skipped (not a student's submission)", "bold"))
        lines += [Text(f"  {s.name}: {s.reason}") for s in result.skipped]
    for group in result.identical:
        lines.append(Text.assemble(("Identical submissions: ", "bold yellow"), ", ".join(group)))
    return lines


def _footer(result: BatchResult, written: Sequence[Path]) -> list[Text]:
    fresh = len(result.graded) - result.reused
    lines = [Text(f"Graded {fresh} submission(s), reused {result.reused} from the cache, in "
                  f"{result.seconds:.1f} s", "dim")]
    if written:
        lines.append(Text("Wrote " + ", ".join(str(p) for p in written), "dim"))
    style = "bold green" if result.passed else "bold red"
    verdict = (f"{result.count('passed')} of {len(result.graded)} student(s) passed every check")
    lines.append(Text(verdict, style))
    return lines


def _notes(notes: Sequence[str]) -> list[Text]:
    """Roster and adjustment remarks (course.Gradebook): what did not fit."""
    return [Text("Roster and adjustments", "bold"), *(Text(f"  {n}", "yellow") for n in notes)] if notes else []


def render_summary(result: BatchResult, summary: Summary, written: Sequence[Path], console: Console,
                   notes: Sequence[str] = ()) -> None:
    console.print(_title(result, summary))
    if not result.graded:
        console.print(Text("no submission was graded", "bold red"))
    else:
        for line in _histogram(summary):
            console.print(line)
        console.print()
        console.print(_rates(summary))
    for block in (_mistakes(summary), _troubles(summary), _skipped(result), _notes(notes)):
        if block:
            console.print()
            for line in block:
                console.print(line)
    console.print()
    for line in _footer(result, written):
        console.print(line)
