"""A `.py` file run statement by statement, as a notebook's cells are: for a file whose imports fail on
the grading machine (`import matplotlib` at the top, where the course's image has no matplotlib).

Loaded as it is, such a file raises before it defines anything, and every exercise scores 0, though
the same code in a notebook loses only its cell: a grade should not depend on the grading machine's
packages. The grader parses the file (never runs it) and splits it at its top-level statements; the
generated module (`generated.py`) runs them one by one, so a statement that raises is reported with
its line and the classes after it are defined and graded.
"""

from __future__ import annotations

import ast
import re

from gradegrad.intake.files import python_text, read_bytes
from gradegrad.intake.generated import Piece, Unit, build
from gradegrad.intake.sources import SubmissionSource, printable, sha

MAX_PIECES = 2000  # statements run on their own; the rest of a longer file is one piece
IMPORT_FAILED = re.compile(r"^importing the submission raised (ModuleNotFoundError|ImportError)\b")


def _identifier(stem: str) -> str:
    name = re.sub(r"\W", "_", stem)
    return name if name and not name[0].isdigit() else f"_{name}"


def _starts(tree: ast.Module) -> list[int]:
    """The first line of each top-level statement (its decorators included)."""
    starts = []
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        starts.append(min([node.lineno, *(d.lineno for d in decorators)]))
    return starts


def statement_source(source: SubmissionSource) -> tuple[SubmissionSource, str] | None:
    """The file of `source` as a generated module of its top-level statements, and its text; None when
    it is not one file loaded as it is, or does not parse (then Python's own error stands)."""
    if source.load is None or source.load.suffix.lower() != ".py":
        return None
    origin = printable(str(source.load.relative_to(source.origin.parent)))  # lab.py, or carol/lab.py
    try:
        text = python_text(origin, read_bytes(source.load))
        starts = _starts(ast.parse(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return None
    except Exception:  # noqa: BLE001 - whatever the file does to the parser, the first report stands
        return None
    if len(starts) < 2:
        return None
    starts = [1, *starts[1:MAX_PIECES]]
    lines = text.split("\n")
    bounds = list(zip(starts, [*starts[1:], len(lines) + 1]))
    pieces = tuple(Piece(origin, tuple(lines[a - 1:b - 1]), None, a) for a, b in bounds)
    code, segments = build([Unit(_identifier(source.load.stem), pieces)])
    note = (f"{origin}: its imports failed on the grading machine, so it was run statement by statement (as a "
            "notebook's cells): what raised is reported, every class defined is graded")
    return SubmissionSource(source.name, source.origin, source.kind, segments=segments, digest=sha(code),
                            notes=(*source.notes, note), module=source.module), code
