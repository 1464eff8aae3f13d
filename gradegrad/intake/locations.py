"""Where things are in the student's own files: lines of a generated module mapped back to files
and notebook cells, method lines found by parsing (never running) the source, tracebacks relabelled.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass
from pathlib import Path

from gradegrad.errors import GradegradError
from gradegrad.intake.files import python_text, read_bytes
from gradegrad.intake.scan import generated_code
from gradegrad.intake.sources import BUNDLE_PREFIX, Segment, SubmissionSource, Unusable


@dataclass(frozen=True)
class Location:
    """Where something is in the student's own files."""

    file: str
    line: int | None = None
    cell: int | None = None

    def describe(self) -> str:
        cell = f", cell {self.cell}" if self.cell else ""
        line = f", line {self.line}" if self.line else ""
        return f"{self.file}{cell}{line}"

    def describe_frame(self) -> str:
        """As a traceback names a frame: `alice.ipynb", cell 3, line 2` (after an opening quote)."""
        cell = f", cell {self.cell}" if self.cell else ""
        line = f", line {self.line}" if self.line else ""
        return f'{self.file}"{cell}{line}'


def _segment(source: SubmissionSource, line: int) -> Segment | None:
    """The segment holding `line` (segments are in file order and never overlap)."""
    i = bisect.bisect_right(source.segments, line, key=lambda seg: seg.first) - 1
    return source.segments[i] if i >= 0 and source.segments[i].holds(line) else None


def locate(source: SubmissionSource, line: int, base: Path | None = None) -> Location:
    """Map a line of what the child loaded to the student's file (and cell).

    Files of a generated module are named relative to the submissions folder ("dave/lab.py"),
    or to `base` when given (the folder that holds the submission, for paths from the cwd).
    """
    seg = _segment(source, line)
    if seg is not None:
        return Location(str(base / seg.origin) if base else seg.origin, seg.origin_line(line), seg.cell)
    if source.generated:
        return Location(str(base / source.display) if base else source.display)
    return Location(str(source.load or source.origin), line)


def _classes(tree: ast.AST) -> dict[str, dict[str, int]]:
    """{class: {"class": line, method: line}} for every class in a parsed module."""
    found: dict[str, dict[str, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            lines = {"class": node.lineno}
            lines.update({item.name: item.lineno for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))})
            found.setdefault(node.name, lines)
    return found


def _parsed(text: str) -> dict[str, dict[str, int]]:
    try:
        return _classes(ast.parse(text))
    except Exception:  # noqa: BLE001 - SyntaxError, and RecursionError or MemoryError on a hostile file
        return {}


def _chunks(source: SubmissionSource) -> list[tuple[int, str]]:
    """(first line, text) of each piece of the student's own code in what the child loads."""
    try:
        if source.load is not None:
            return [(1, python_text(source.load.name, read_bytes(source.load)))]
        if not source.generated:
            return []
        lines = generated_code(source).split("\n")
    except (GradegradError, Unusable):
        return []
    return [(seg.first, "\n".join(ln[seg.prefix:] for ln in lines[seg.first - 1: seg.first - 1 + seg.count]))
            for seg in source.segments]


def method_locations(source: SubmissionSource) -> dict[str, dict[str, Location]]:
    """{class: {"class"/"forward"/"backward"/...: Location}}, by parsing the source, never running it.

    Each file (or notebook cell) is parsed on its own, so one with a syntax error hides only itself.
    """
    base = source.origin.parent
    found: dict[str, dict[str, Location]] = {}
    for first, text in _chunks(source):
        for cls, lines in _parsed(text).items():
            found.setdefault(cls, {k: locate(source, first + n - 1, base) for k, n in lines.items()})
    return found


# --------------------------------------------------------------------------- tracebacks


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _caret_line(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) <= set("^~")


def relabel_traceback(text: str | None, loaded: str, source: SubmissionSource, label: str) -> str | None:
    """Name the student's files in a traceback: `label` for the loaded file, or, when the child
    loaded a generated module, the file (and notebook cell) each frame's line came from; frames of
    the generated glue itself (a bundle's import hook) are left out."""
    if not text:
        return text
    if not source.generated:
        return text.replace(loaded, label)
    out: list[str] = []
    prefix, shift, dropping = 0, 0, False
    for line in text.split("\n"):
        match = _FRAME.search(line)
        if dropping and not match and line.startswith("    "):
            continue  # the source and carets of a dropped frame
        dropping = False
        body = line.lstrip()
        if prefix and body.startswith(BUNDLE_PREFIX.rstrip()):  # the source line under a bundle frame
            rest = body[prefix:]
            shift = len(rest) - len(rest.lstrip())
            line = line[: len(line) - len(body)] + rest.lstrip()
        elif shift and _caret_line(line):
            line = line[:4] + line[4 + shift:]
        else:
            shift = 0
        prefix = 0
        if match and match.group("file") == loaded:
            number = int(match.group("line"))
            seg = _segment(source, number)
            if seg is None and any(s.prefix for s in source.segments):
                dropping = True
                continue
            line = line[: match.start()] + f'File "{locate(source, number).describe_frame()}' + line[match.end():]
            prefix = seg.prefix if seg else 0
        out.append(line)
    text = re.sub(rf"\({re.escape(Path(loaded).name)}, line (\d+)\)",  # a SyntaxError's "(x.py, line 3)"
                  lambda m: f"({locate(source, int(m.group(1))).describe()})", "\n".join(out))
    return text.replace(loaded, label)
