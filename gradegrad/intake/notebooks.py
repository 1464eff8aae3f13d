"""Jupyter notebooks: the code cells, read as JSON data (never run here), as a unit of the generated module.

Shell and magic lines (`! pip install`, `%timeit`) become `pass` (`x = !ls` becomes `x = []`), so
line numbers still match; the child runs the cells one by one (see `generated.py`), so a cell
that raises loses only itself. A cell that is not text (a malformed notebook) is left out with a
note; a notebook nested too deeply, with too many cells or too much code is a problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gradegrad.intake.files import decode_detail
from gradegrad.intake.generated import Piece, Unit, build
from gradegrad.intake.sources import Segment, Unusable

KEEP_BODY_MAGICS = ("time", "timeit", "capture", "prun")  # cell magics whose body is Python
DROPPED = "pass  # gradegrad: dropped"  # what a shell or magic line of a notebook becomes
MAX_CELLS = 2000  # code cells read from one notebook
MAX_CODE = 5 << 20  # characters of code in one notebook (as for a .py file)

_TARGET = re.compile(r"[\w.,\s]+")  # what may stand left of `=` in `x = !ls`, `a, b = %timeit -o f()`


@dataclass(frozen=True)
class Notebook:
    """The code cells of a notebook, as pieces of Python, and what was left out."""

    unit: Unit
    dropped: int  # shell and magic lines not run
    notes: tuple[str, ...]  # e.g. "cell 4 was not read: its source is not text"


def _assigned(line: str) -> tuple[str, str] | None:
    """(target, "!" or "%") of a line that assigns a shell or magic command's result."""
    target, equals, rest = line.partition("=")
    rest = rest.lstrip()
    if equals and rest[:1] in ("!", "%") and target.strip() and _TARGET.fullmatch(target):
        return target.strip(), rest[0]
    return None


def _is_magic(line: str) -> bool:
    """A shell (`!ls`), magic (`%timeit`), help (`torch.mv?`) or `x = !ls` line: not Python."""
    s = line.strip()
    return bool(s) and (s[0] in "!%" or (s.endswith("?") and not s.startswith("#")) or _assigned(line) is not None)


def _replacement(line: str) -> str:
    """What a magic line becomes: `pass`, or the assignment of an empty value (`files = []`)."""
    indent = line[: len(line) - len(line.lstrip())]
    assigned = _assigned(line)
    if assigned and assigned[0].isidentifier():
        return f"{indent}{assigned[0]} = {'[]' if assigned[1] == '!' else 'None'}  # gradegrad: not run"
    return indent + DROPPED


def _cell_lines(source: object) -> list[str] | None:
    """The cell's lines, or None when its source is not text (a list must hold strings only)."""
    if isinstance(source, list):
        if not all(isinstance(part, str) for part in source):
            return None
        source = "".join(source)
    if not isinstance(source, str):
        return None
    source = source.encode("utf-8", "replace").decode("utf-8")  # JSON may hold lone surrogates: not text
    return source.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _python_cell(lines: list[str]) -> tuple[list[str], int]:
    """The cell as Python, same line count; and how many lines were replaced."""
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in KEEP_BODY_MAGICS:
            return ["" for _ in lines], 1  # %%bash, %%writefile, %%html: not Python at all
    out, dropped, continued = [], 0, False
    for line in lines:
        if continued or _is_magic(line):
            out.append("" if continued else _replacement(line))
            dropped += not continued
            continued = line.rstrip().endswith("\\")
        else:
            out.append(line)
    return out, dropped


def _load_json(name: str, data: bytes) -> object:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise Unusable(f"{name} is not UTF-8 text ({decode_detail(exc)})") from None
    except RecursionError:
        raise Unusable(f"{name} is not a Jupyter notebook (its JSON is nested too deeply)") from None
    except ValueError as exc:
        raise Unusable(f"{name} is not a Jupyter notebook (invalid JSON: {decode_detail(exc)})") from None


def _cells(nb: object, name: str) -> list:
    """The notebook's cells; nbformat 4, and 3's worksheets."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if cells is None and isinstance(nb, dict) and isinstance(nb.get("worksheets"), list) and nb["worksheets"]:
        cells = nb["worksheets"][0].get("cells") if isinstance(nb["worksheets"][0], dict) else None
    if not isinstance(cells, list):
        raise Unusable(f"{name} is not a Jupyter notebook (no cells)")
    return cells


def read_notebook(name: str, data: bytes, unit: str = "notebook") -> Notebook:
    """The code cells of the notebook `name` (its origin, as the report names it) as a unit."""
    pieces, notes, dropped, size = [], [], 0, 0
    for number, cell in enumerate(_cells(_load_json(name, data), name), start=1):
        if not (isinstance(cell, dict) and cell.get("cell_type") == "code"):
            continue
        lines = _cell_lines(cell.get("source", cell.get("input", "")))
        if lines is None:
            notes.append(f"{name}: cell {number} was not read: its source is not text")
            continue
        body, n = _python_cell(lines)
        dropped, size = dropped + n, size + sum(len(ln) + 1 for ln in body)
        if len(pieces) >= MAX_CELLS or size > MAX_CODE:
            raise Unusable(f"{name} has more code than gradegrad reads ({MAX_CELLS} code cells, "
                           f"{MAX_CODE >> 20} MB of code)")
        pieces.append(Piece(name, tuple(body), number))
    if not any(ln.strip() and not ln.lstrip().startswith("#") and ln.strip() != DROPPED
               for piece in pieces for ln in piece.lines):
        raise Unusable(f"{name} has no code")
    return Notebook(Unit(unit, tuple(pieces)), dropped, tuple(notes))


def notebook_module(name: str, data: bytes) -> tuple[str, tuple[Segment, ...], Notebook]:
    """A notebook on its own as the generated module: (text, segments, what was read)."""
    notebook = read_notebook(name, data)
    code, segments = build([notebook.unit])
    return code, segments, notebook


def dropped_note(dropped: int) -> tuple[str, ...]:
    return (f"{dropped} shell/magic line(s) of the notebook not run",) if dropped else ()
