"""The scorecard as Markdown: feedback to hand back, a GitHub step summary, Gradescope's output.

Text that came from the student's code (tracebacks, what it printed, exception messages) is put
in code blocks or escaped, so it cannot break or restyle the page.
"""

from __future__ import annotations

import re

from gradegrad.diagnosis import CODES
from gradegrad.report import CheckResult, ExerciseResult, Report

MARKS = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱️", "missing": "➖", "skipped": "➖"}
OUTPUT_LINES = 60  # of what the student printed, per stream


def _points(x: float) -> str:
    return f"{x:g}"


def inline(text: str) -> str:
    """Text safe inside a table cell or a sentence: no HTML, no table breaks, one line."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(part for part in (line.strip() for line in text.split("\n")) if part)  # linear, unlike a regex


def code_block(text: str, lang: str = "") -> str:
    """A fenced block that the text itself cannot close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _status(status: str) -> str:
    return f"{MARKS.get(status, '')} {status}".strip()


def _table(report: Report) -> list[str]:
    lines = ["| Exercise | Class | Status | Points |", "|---|---|---|---:|"]
    for ex in report.exercises:
        lines.append(f"| {inline(ex.id)} | {inline(ex.class_name or '-')} | {_status(ex.status)} "
                     f"| {_points(ex.score)}/{_points(ex.max_score)} |")
    return lines


def _check_line(check: CheckResult) -> str:
    points = f"{_points(check.points)}/{_points(check.max_points)}"
    flag = " (a flag: worth no points)" if check.max_points == 0 and check.status == "failed" else ""
    text = f"- {_status(check.status)} `{check.id}` {points}{flag}"
    if check.status == "passed":  # a remark that cost nothing (a harmless upcast)
        return text + (f" (note: {inline(check.message)} `{check.diagnosis}`)" if check.diagnosis and check.message
                       else "")
    code = f" `{check.diagnosis}`" if check.diagnosis else ""
    return text + (f": {inline(check.message)}{code}" if check.message else code)


def _diagnosis(check: CheckResult) -> list[str]:
    if not check.diagnosis:
        return []
    meaning = CODES.get(check.diagnosis, "")
    line = f"**Diagnosis** `{check.diagnosis}`" + (f": {inline(meaning)}" if meaning else "")
    if check.worst is not None:
        w = check.worst
        index = ", ".join(str(i) for i in w.index)
        line += f". Largest difference at `{inline(w.input)}[{index}]`: got {w.got:.6g}, expected {w.expected:.6g}"
    return [line + "."]


def _exercise(ex: ExerciseResult) -> list[str]:
    lines = ["", f"### {inline(ex.id)}: {_status(ex.status)}, {_points(ex.score)}/{_points(ex.max_score)}", ""]
    if ex.hint:
        lines += [f"**Hint**: {inline(ex.hint)}", ""]
    if ex.status == "missing":
        return lines + [inline(ex.checks[0].message if ex.checks else "class not found")]
    lines += [_check_line(c) for c in ex.checks if c.status != "skipped"]
    problem = ex.first_problem
    if problem is not None and ex.status != "missing":
        lines += ["", *_diagnosis(problem)] if problem.diagnosis else []
        shown = next((c for c in ex.checks if c.traceback), None)
        if shown is not None:
            lines += ["", f"Your traceback ({shown.id}):", "", code_block(shown.traceback, "text")]
    if ex.teaches:
        lines += ["", f"> {inline(ex.teaches)}"]
    return lines


def _tail(text: str) -> str:
    lines = text.rstrip().split("\n")
    return "\n".join(lines[:OUTPUT_LINES] + ([f"… ({len(lines) - OUTPUT_LINES} more lines)"] if len(lines) > OUTPUT_LINES else []))


def _output(report: Report) -> list[str]:
    out = report.output
    if out.empty:
        return []
    lines = ["", "## What your code printed"]
    for name, text in (("stdout", out.stdout), ("stderr", out.stderr)):
        if text.strip():
            lines += ["", f"{name}:", "", code_block(_tail(text), "text")]
    return lines + (["", "_(output truncated)_"] if out.truncated else [])


def _load_error(report: Report) -> list[str]:
    if report.error is None:
        return []
    lines = ["", "## Your submission could not be loaded", "", inline(report.error)]
    if report.error_traceback:
        lines += ["", code_block(report.error_traceback, "text")]
    return lines


def verdict(report: Report) -> str:
    """The total's words; without a rubric, they say how many exercises were not graded."""
    if report.passed and report.not_graded:
        return f"all graded checks passed; {len(report.not_graded)} exercise(s) not graded (class not found)"
    return "all checks passed" if report.passed else "some checks did not pass"


def _adjustments(report: Report) -> list[str]:
    if not report.adjustments:
        return []
    lines = ["", "**Adjusted by your teacher** (included in the total):", ""]
    for a in report.adjustments:
        where = f" on `{inline(a.exercise)}`" if a.exercise else ""
        comment = f": {inline(a.comment)}" if a.comment else ""
        lines.append(f"- {'+' if a.points >= 0 else ''}{_points(a.points)} point(s){where}{comment}")
    return lines


def _load_problems(report: Report) -> list[str]:
    """Top-level code (a notebook cell, a module) that raised while the rest was graded."""
    if not report.load_problems:
        return []
    lines = ["", "## Code that did not run to its end (the rest was graded)"]
    for p in report.load_problems:
        lines += ["", f"**{inline(p.where)}**: {inline(p.message.split(chr(10))[0])}"]
        if p.traceback:
            lines += ["", code_block(p.traceback, "text")]
    return lines


def to_markdown(report: Report, name: str | None = None) -> str:
    """The whole scorecard; `name` titles it (the student), else the submission's path."""
    lines = [f"# gradegrad: {inline(name or report.submission)}", "",
             f"**Total {_points(report.score)}/{_points(report.max_score)}**: {verdict(report)}  ",
             f"rubric `{inline(report.rubric)}` · device {inline(report.device)} · seed {report.seed} · "
             f"gradegrad {inline(report.gradegrad_version)}"]
    lines += _adjustments(report)
    lines += _load_error(report)
    lines += _load_problems(report)
    if report.exercises:
        lines += ["", *_table(report)]
        for ex in report.exercises if report.error is None else ():
            if ex.status != "passed" or any(c.status == "failed" or c.diagnosis for c in ex.checks):
                lines += _exercise(ex)
    if report.notes:
        lines += ["", *[f"_{inline(note)}_  " for note in report.notes]]
    lines += _output(report)
    return "\n".join(lines) + "\n"
