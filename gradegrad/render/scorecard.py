"""The Rich scorecard: the one module that knows Rich's styles.

A table of the exercises (one line each), then, for every exercise that lost points (or has a
flag, a note or a hint), each check that did not pass with its own one-line reason: the points it
cost, its message and diagnosis code. Reads well on an 80-column terminal and in a CI log (no
colour with NO_COLOR or when not a terminal; the table never wraps, the reasons wrap under their
own indentation).
"""

from __future__ import annotations

import os
import sys
import textwrap

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradegrad.hygiene import clean_report
from gradegrad.render.markdown import verdict
from gradegrad.report import CheckResult, ExerciseResult, Report

STYLES = {
    "passed": "bold green", "failed": "bold red", "error": "bold magenta", "timeout": "bold yellow",
    "missing": "dim", "skipped": "dim",
}
MARKS = {"passed": "✓", "failed": "✗", "error": "!", "timeout": "⏱", "missing": "·"}
OTHER_REASON = 240  # characters of the reason of a failing check after the first (the first is whole)
PROBLEM_VERBS = {"exception": "raised", "timeout": "took too long", "exit": "called sys.exit()",
                 "memory": "ran out of memory"}  # top-level code that did not run to its end


def make_console(stderr: bool = False) -> Console:
    file = sys.stderr if stderr else sys.stdout
    width = None if file.isatty() or os.environ.get("COLUMNS") else 110
    # no emoji codes: a file name, an address or a student's text with `:two:` in it is shown as written
    return Console(file=file, width=width, highlight=False, soft_wrap=False, emoji=False)


def _points(x: float) -> str:
    return f"{x:g}"


def scorecard_table(report: Report) -> Table:
    table = Table(show_edge=False, pad_edge=False, expand=False, header_style="bold")
    table.add_column("Exercise", no_wrap=True)
    table.add_column("Class", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("Status", no_wrap=True)
    table.add_column("Points", justify="right", no_wrap=True)
    for ex in report.exercises:
        status = Text(f"{MARKS.get(ex.status, '')} {ex.status}", STYLES.get(ex.status, ""))
        table.add_row(ex.id, ex.class_name or "-", status, f"{_points(ex.score)}/{_points(ex.max_score)}")
    return table


def _is_flag(check: CheckResult) -> bool:
    return check.status == "failed" and check.max_points == 0


def _clip(text: str, limit: int | None) -> str:
    """`text`, or its first sentences up to `limit` characters (or a cut with …)."""
    if limit is None or len(text) <= limit:
        return text
    cut = max(text.rfind(". ", 0, limit), text.rfind("? ", 0, limit))
    return text[:cut + 1] if cut > limit // 3 else text[:limit - 1].rstrip() + "…"


def _wrapped(parts: list[tuple[str, str]], width: int, indent: int = 2, hang: int = 6) -> Text:
    """Styled parts as one paragraph, wrapped to `width` with a hanging indent, no trailing spaces."""
    plain = "".join(s for s, _ in parts)
    lines = textwrap.wrap(plain, max(30, width - 1), initial_indent=" " * indent,
                          subsequent_indent=" " * hang, break_on_hyphens=False) or [" " * indent]
    text = Text("\n".join(lines))
    at = 0  # find each styled part again in the wrapped text (wrapping only turns spaces into breaks)
    for chunk, style in parts:
        words = chunk.split()
        if not words:
            continue
        begin = text.plain.find(words[0], at)
        end = begin
        for word in words:
            end = text.plain.find(word, end) + len(word)
        if style and begin >= 0:
            text.stylize(style, begin, end)
        at = max(at, end)
    return text


def _reason(checks: list[CheckResult], limit: int | None, width: int) -> Text:
    """One line (wrapped) per reason: the checks that failed for it, the points they cost, the
    message and the diagnosis code."""
    first = checks[0]
    if _is_flag(first):
        head = [("flag ", "bold yellow"), (", ".join(c.id for c in checks), "bold"), (" (no points): ", "")]
    else:
        lost = sum(c.max_points for c in checks)
        head = [(f"{MARKS.get(first.status, '')} ", STYLES.get(first.status, "")),
                (", ".join(c.id for c in checks), "bold"), (f" 0/{_points(lost)}: ", "")]
    message = first.message
    if message.startswith(f"{first.id}: "):  # gradcheck's own messages start with its name
        message = message[len(first.id) + 2:]
    parts = head + [(_clip(message or first.status, limit), "")]
    if first.diagnosis:
        parts.append((f"  [{first.diagnosis}]", "cyan"))
    return _wrapped(parts, width)


def _problems(ex: ExerciseResult) -> list[list[CheckResult]]:
    """The checks that did not pass, those with the same reason together, in rubric order."""
    groups: dict[tuple, list[CheckResult]] = {}
    for c in ex.checks:
        if c.status in ("failed", "error"):
            groups.setdefault((c.status, c.message, c.diagnosis, _is_flag(c)), []).append(c)
    return list(groups.values())


def _notes(ex: ExerciseResult) -> list[CheckResult]:
    """Passed checks that carry a remark (a harmless upcast, ...)."""
    return [c for c in ex.checks if c.status == "passed" and c.diagnosis and c.message]


def _details(ex: ExerciseResult, width: int) -> list[Text]:
    """An exercise's failing checks, each with its reason; then flags, notes, the hint, the lesson."""
    if ex.status == "missing":
        return [Text(""), Text.assemble((ex.id, "bold"), ": ", (ex.hint, "yellow"))] if ex.hint else []
    problems, notes = _problems(ex), _notes(ex)
    if not (problems or notes or ex.hint):
        return []
    title = Text.assemble((ex.id, "bold"), f" ({ex.class_name}) " if ex.class_name else " ",
                          (f"{_points(ex.score)}/{_points(ex.max_score)}", STYLES.get(ex.status, "")))
    lines = [Text(""), title]
    if ex.hint:
        lines.append(_wrapped([(ex.hint, "yellow")], width))
    lines += [_reason(checks, None if i == 0 else OTHER_REASON, width) for i, checks in enumerate(problems)]
    for check in notes:
        lines.append(_wrapped([("note ", "bold cyan"), (check.id, "bold"), (": ", ""), (check.message, ""),
                               (f"  [{check.diagnosis}]", "cyan")], width))
    if ex.teaches and any(not _is_flag(c[0]) for c in problems):
        lines.append(_wrapped([(ex.teaches, "dim italic")], width, hang=2))
    return lines


def feedback(report: Report, width: int = 80) -> list[Text]:
    """What the student reads under the table: the reasons of each exercise with something to say."""
    return [line for ex in report.exercises for line in _details(ex, width)]


def _title(report: Report) -> Text:
    return Text.assemble(("gradegrad ", "bold"), report.submission,
                         (f"  rubric {report.rubric} · device {report.device} · seed {report.seed}", "dim"))


def _total(report: Report) -> Text:
    style = "bold green" if report.passed else "bold red"
    n = len(report.load_problems)
    unfinished = f"; {n} piece{'s' if n > 1 else ''} of top-level code did not run to {'their' if n > 1 else 'its'} " \
                 "end (see above)" if n else ""
    return Text.assemble(("Total ", "bold"), (f"{_points(report.score)}/{_points(report.max_score)}", style),
                         f"  {verdict(report)}{unfinished}")


def _tracebacks(report: Report) -> list[Panel]:
    panels = []
    if report.error:
        body = Text(report.error, "bold red")
        if report.error_traceback:
            body.append("\n\n" + report.error_traceback.rstrip())
        panels.append(Panel(body, title="the submission could not be loaded", title_align="left"))
    for problem in report.load_problems:
        body = Text(problem.message.split("\n")[0], "bold yellow")  # the traceback ends with all of it
        if problem.traceback:
            body.append("\n\n" + problem.traceback.rstrip())
        panels.append(Panel(body, title=f"{problem.where}: {PROBLEM_VERBS.get(problem.kind, 'raised')} "
                            "(the rest was graded)", title_align="left", border_style="yellow"))
    for ex in report.exercises:
        shown = next((c for c in ex.checks if c.traceback), None)
        if shown:
            whose = "gradegrad's traceback, please report it" if shown.message.startswith("internal error") \
                else "your traceback"
            panels.append(Panel(Text(shown.traceback.rstrip()), title=f"{ex.id}: {whose} ({shown.id})",
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
    report = clean_report(report)  # capped text, so that Rich's per-line work stays bounded
    console.print(_title(report))
    if report.exercises:
        console.print(scorecard_table(report))
        for line in feedback(report, console.width) if report.error is None else ():
            console.print(line)
    for panel in _tracebacks(report):
        console.print(panel)
    for panel in _output(report):
        console.print(panel)
    for note in report.notes:
        console.print(Text(note, "dim"))
    for a in report.adjustments:
        where = f" on {a.exercise}" if a.exercise else ""
        console.print(Text(f"adjusted by your teacher{where}: {'+' if a.points >= 0 else ''}{_points(a.points)}"
                           f"{' (' + a.comment + ')' if a.comment else ''}", "yellow"))
    console.print(Text(sandbox_line(report), "dim"))
    console.print(_total(report))
