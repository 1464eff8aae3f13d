"""GitHub Actions: annotations on the student's code and the scorecard in the job's summary.

Annotations (`::error file=…,line=…::`) point at the failing Function's `backward` (its `forward`
when forward is wrong, the class when it is not a Function, the raising line when the file could
not be imported). Lines come from `intake.method_locations`, which parses the source and
never runs it. See https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, TextIO

from gradegrad.report import ExerciseResult, LoadProblem, Report
from gradegrad.render.markdown import to_markdown
from gradegrad.intake import Location

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
_LAST_FRAME = re.compile(r'File "(?P<file>[^"]+)"(?:, cell (?P<cell>\d+))?, line (?P<line>\d+)')


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, title: str, where: Location | None) -> str:
    props = []
    if where is not None:
        props.append(f"file={_escape_property(_relative(where.file))}")
        if where.line and not where.cell:  # a notebook's line numbers are the cell's, not the file's
            props.append(f"line={where.line}")
    props.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path) if os.path.isabs(path) else path
    except ValueError:
        return path


def _method(check_id: str) -> str:
    if check_id == "found":
        return "class"
    return "forward" if check_id == "forward" else "backward"


def _exercise_annotation(report: Report, ex: ExerciseResult, methods: Mapping[str, Mapping[str, Location]],
                         fallback: Location) -> str | None:
    problem = ex.first_problem
    if problem is None:
        return None
    level = "warning" if problem.max_points == 0 and ex.status == "passed" else "error"
    where = methods.get(ex.class_name or "", {})
    location = where.get(_method(problem.id)) or where.get("class") or fallback
    text = problem.message + (f" [{problem.diagnosis}]" if problem.diagnosis else "")
    if ex.hint:
        text = f"{ex.hint}. {text}"
    if location.cell:
        text = f"cell {location.cell}, line {location.line}: {text}"
    return command(level, text, f"gradegrad {ex.id}: {problem.id}", location)


def _raising_line(trace: str | None, fallback: Location) -> Location:
    """The last frame of a student's traceback (the line that raised), else `fallback`."""
    frames = list(_LAST_FRAME.finditer(trace or ""))
    if not frames:
        return fallback
    last = frames[-1]
    cell = int(last.group("cell")) if last.group("cell") else None
    return Location(last.group("file"), int(last.group("line")), cell)


def _load_annotation(report: Report, fallback: Location) -> str:
    location = _raising_line(report.error_traceback, fallback)
    return command("error", report.error or "", "gradegrad: the submission could not be loaded", location)


def _problem_annotation(problem: LoadProblem, fallback: Location) -> str:
    """A warning where top-level code raised while the rest was graded (a notebook cell, a module)."""
    location = _raising_line(problem.traceback, fallback)
    text = problem.message.split("\n")[0]
    if location.cell:
        text = f"cell {location.cell}, line {location.line}: {text}"
    return command("warning", text, f"gradegrad: {problem.where} did not run to its end", location)


def annotations(report: Report, methods: Mapping[str, Mapping[str, Location]], submission: str) -> list[str]:
    """One workflow command per exercise that did not pass (or a flag) and per piece of top-level code
    that raised, or one for a load error."""
    fallback = Location(submission)
    if report.error is not None:
        return [_load_annotation(report, fallback)]
    found = [_exercise_annotation(report, ex, methods, fallback) for ex in report.exercises]
    return [a for a in found if a is not None] + [_problem_annotation(p, fallback) for p in report.load_problems]


def publish(report: Report, methods: Mapping[str, Mapping[str, Location]], submission: str, out: TextIO,
            env: Mapping[str, str] = os.environ) -> None:
    """In GitHub Actions: print the annotations, append the Markdown scorecard to $GITHUB_STEP_SUMMARY."""
    if env.get("GITHUB_ACTIONS") == "true":
        for line in annotations(report, methods, submission):
            out.write(line + "\n")
    summary = env.get(SUMMARY_ENV)
    if summary:
        with open(Path(summary), "a", encoding="utf-8") as fh:
            fh.write(to_markdown(report) + "\n")
