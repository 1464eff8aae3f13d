"""Text from a submission made fit for a terminal, a CSV cell or a file: capped, no control characters.

Everything a submission can influence (exception messages and tracebacks, type and class names,
what it printed, file names) passes through here where it enters the report (`clean_report`), so
every writer reads text that cannot clear the TA's screen, write to the clipboard (OSC 52), move
the cursor, forge a line with `\\r`, or fill a disk. Each function is linear in the length of its
input: one regular expression without nested repetition, one `str.translate`, slicing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable

from gradegrad.report import CheckResult, ExerciseResult, LoadProblem, Report, StudentOutput

NAME = 200  # a class, type, exercise-facing name or file name
MESSAGE = 2000  # a check's message, an error
NOTE = 1000  # one note of the report
NOTES = 50  # notes kept per report
TRACEBACK = 8000  # a student's traceback (the child keeps the same)
OUTPUT = 64 << 10  # what the submission printed, per stream
PROBLEMS = 20  # load problems kept per report (cells that raised)
CAP_SLACK = 40  # characters past a limit kept rather than replaced by " … [N characters cut] … "

# Escape sequences whole: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC
# (ESC P/X/^/_ ... ST), any other ESC + one character, and the one-byte CSI and OSC. Each match
# starts at an escape character and its classes do not overlap, so no match backtracks over more
# than its own characters.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|.?)"
                     r"|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c)?",  # their one-byte (C1) forms
                     re.DOTALL)
_CONTROLS = [c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0))
_INVISIBLE = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF]  # bidi, BOM
_SURROGATES = {c: "\ufffd" for c in range(0xD800, 0xE000)}  # lone halves (JSON, undecodable names): not UTF-8
_MULTILINE = {c: None for c in _CONTROLS + _INVISIBLE} | _SURROGATES | {0x2028: "\n", 0x2029: "\n"}
_ONE_LINE = _MULTILINE | {0x09: " ", 0x0A: " ", 0x0D: " ", 0x2028: " ", 0x2029: " "}


def cap(text: str, limit: int, one_line: bool = False) -> str:
    """At most about `limit` characters: the start and the end, and how much was cut between."""
    if len(text) <= limit + CAP_SLACK:  # cutting less than the marker would add is no cut
        return text
    head, tail = text[: limit * 3 // 4], text[len(text) - limit // 5:]
    cut = len(text) - len(head) - len(tail)
    gap = f" … [{cut} characters cut] … " if one_line else f"\n… [{cut} characters cut] …\n"
    return head + gap + tail


def clean_text(text: object, limit: int = MESSAGE) -> str:
    """Multi-line text (a traceback, printed output): newlines and tabs kept, every other control
    character and escape sequence removed, lone surrogates (which no UTF-8 file can hold) replaced
    by U+FFFD, `\\r` read as a line break, capped."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable() and len(text) <= limit + CAP_SLACK:  # nothing to remove or change (the tests check
        return text  # every printable character)
    text = cap(text, limit)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _ESCAPE.sub("", text).translate(_MULTILINE)


def one_line(text: object, limit: int = NAME) -> str:
    """Text for a one-line field (a name, a CSV cell, a title): no line breaks or tabs either."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable() and len(text) <= limit + CAP_SLACK and "  " not in text and text[:1] != " " != text[-1:]:
        return text  # one line already, no runs of spaces
    text = cap(text, limit, one_line=True)
    return " ".join(_ESCAPE.sub("", text).translate(_ONE_LINE).split())  # no runs of spaces either


def clean_error(error: dict) -> dict:
    """A child's description of an exception (`kind`, `type`, `message`, `traceback`, `line`),
    cleaned where it enters the grader: a type name is one short line."""
    out = dict(error)
    for key, limit in (("kind", NAME), ("type", NAME)):
        if key in out:
            out[key] = one_line(out[key], limit)
    for key, limit in (("message", MESSAGE), ("traceback", TRACEBACK)):
        if key in out:
            out[key] = clean_text(out[key], limit)
    return out


def _optional(text: str | None, limit: int) -> str | None:
    return None if text is None else clean_text(text, limit)


def _check(c: CheckResult) -> CheckResult:
    worst = c.worst if c.worst is None else replace(c.worst, input=one_line(c.worst.input))
    return replace(c, id=one_line(c.id), message=clean_text(c.message or ""), diagnosis=_optional(c.diagnosis, NAME),
                   worst=worst, traceback=_optional(c.traceback, TRACEBACK))


def _exercise(e: ExerciseResult) -> ExerciseResult:
    return replace(e, class_name=None if e.class_name is None else one_line(e.class_name),
                   checks=tuple(_check(c) for c in e.checks), hint=clean_text(e.hint, NOTE),
                   teaches=clean_text(e.teaches, MESSAGE))


def _problem(p: LoadProblem) -> LoadProblem:
    return replace(p, file=one_line(p.file, NOTE), kind=one_line(p.kind), message=clean_text(p.message),
                   traceback=_optional(p.traceback, TRACEBACK))


def _notes(notes: Iterable[str]) -> tuple[str, ...]:
    notes = tuple(notes)
    kept = tuple(clean_text(n, NOTE) for n in notes[:NOTES])
    return kept + ((f"… {len(notes) - NOTES} more notes",) if len(notes) > NOTES else ())


def clean_report(report: Report) -> Report:
    """The report with every text field capped and cleaned (idempotent; numbers untouched)."""
    out = report.output
    return replace(
        report, submission=one_line(report.submission, NOTE),
        exercises=tuple(_exercise(e) for e in report.exercises),
        output=StudentOutput(clean_text(out.stdout, OUTPUT), clean_text(out.stderr, OUTPUT), out.truncated),
        notes=_notes(report.notes), error=_optional(report.error, MESSAGE),
        error_traceback=_optional(report.error_traceback, TRACEBACK),
        protections=tuple(one_line(p) for p in report.protections[:NOTES]),
        load_problems=tuple(_problem(p) for p in report.load_problems[:PROBLEMS]),
    )

