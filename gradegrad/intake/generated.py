"""The generated module: the student's code (notebook cells, a folder's modules) carried in one file
with a small runtime that runs it piece by piece, so that one piece that fails loses only itself.

The sandbox lets the child read the one file it loads, so everything travels inside it: each
piece after a marker line `#|> graded cell lab 3` (or `#|> library module helpers -`), as lines
that start with `#| `. The runtime at the top of the file reads them back and
- runs every `graded` unit (a notebook, or a module of a folder) in a module of its own name,
  a notebook cell after cell; a piece that raises (or calls `sys.exit()`) is recorded in
  `_GG_PROBLEMS` with the line it starts on, and the next piece runs;
- makes every unit importable by its name (`from helpers import x`), `library` ones (a folder's
  other modules, when `--module` picked one) running only when imported;
- gives notebook units the usual notebook built-ins: `display`, `get_ipython()` (a stub that does
  nothing), `input()` that fails politely, and an `IPython` stub when IPython is not installed;
- when the evaluator's load time limit interrupts a piece (`_GG_TIMEOUT`, put in the module's
  namespace by the evaluator before it runs the file), runs only the imports, classes and
  functions of the pieces left, within `_GG_GRACE` seconds;
- exports the classes and functions the graded units defined (even if one of them raised) as
  the submission's own, which the evaluator lists.
Lines keep their numbers in this file, and `Segment`s map them back to the student's files and
cells, for tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradegrad.intake.sources import BUNDLE_PREFIX, Segment

MARKER = "#|> "

RUNTIME = '''\
import ast as _gg_ast
import importlib.abc as _gg_abc
import importlib.util as _gg_util
import signal as _gg_signal
import sys as _gg_sys
import types as _gg_types

_GG_PIECES = []  # [role, kind, unit, cell, first line, last line], in the order they run
_GG_PROBLEMS = []  # (first line of the piece, exception): read by the evaluator
_GG_DONE = {}  # unit name: its module, once it ran (or runs)
_GG_DEFINITIONS = (_gg_ast.Import, _gg_ast.ImportFrom, _gg_ast.ClassDef, _gg_ast.FunctionDef,
                   _gg_ast.AsyncFunctionDef)
_gg_state = {"late": False}  # late: the time limit was reached, pieces left run their definitions only
_GG_TIMEOUT = globals().get("_GG_TIMEOUT", ())
_GG_GRACE = globals().get("_GG_GRACE", 0)
try:  # from the loader: it may hold the bytes, read before the evaluator gave up root
    _gg_lines = __loader__.get_data(__file__).decode("utf-8").split("\\n")
except (AttributeError, OSError):
    with open(__file__, encoding="utf-8") as _gg_file:
        _gg_lines = _gg_file.read().split("\\n")
for _gg_number, _gg_line in enumerate(_gg_lines, start=1):
    if _gg_line.startswith("#|> "):
        _GG_PIECES.append(_gg_line[4:].split(" ")[:4] + [_gg_number + 1, _gg_number])
    elif _gg_line.startswith("#|") and _GG_PIECES:
        _GG_PIECES[-1][5] = _gg_number
_GG_UNITS = {piece[2]: piece[1] for piece in _GG_PIECES}
_GG_GRADED = list(dict.fromkeys(piece[2] for piece in _GG_PIECES if piece[0] == "graded"))


class _GGStub:
    """IPython's objects here: calling one, or anything on it, does nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _GGStub()

    def __repr__(self):
        return ""


def _gg_input(prompt=""):
    raise EOFError("input() is not available while grading: the notebook runs without a keyboard")


def _gg_code(piece):
    first, last = piece[4], piece[5]
    tree = _gg_ast.parse("\\n".join(line[3:] for line in _gg_lines[first - 1:last]) + "\\n", __file__)
    if _gg_state["late"]:
        tree.body = [node for node in tree.body if isinstance(node, _GG_DEFINITIONS)]
    _gg_ast.increment_lineno(tree, first - 1)
    return compile(tree, __file__, "exec")


def _gg_late():
    """The time limit was reached: what is left runs its definitions only, within the grace."""
    _gg_state["late"] = True
    if _GG_GRACE:
        _gg_signal.setitimer(_gg_signal.ITIMER_REAL, _GG_GRACE)


def _gg_run(piece, namespace):
    try:
        exec(_gg_code(piece), namespace)
    except SyntaxError as exc:  # the line numbers of the piece on its own: make them this file's
        if exc.lineno is not None and exc.filename == __file__ and exc.lineno < piece[4]:
            exc.lineno += piece[4] - 1
        _GG_PROBLEMS.append((piece[4], exc))
    except _GG_TIMEOUT as exc:
        _GG_PROBLEMS.append((piece[4], exc))
        if _gg_state["late"]:
            raise
        _gg_late()
    except (Exception, SystemExit) as exc:
        _GG_PROBLEMS.append((piece[4], exc))


def _gg_run_unit(module):
    name = module.__name__
    module.__file__ = __file__
    if _GG_UNITS.get(name) == "cell":
        for key, value in (("display", _GGStub), ("get_ipython", _GGStub), ("input", _gg_input)):
            module.__dict__.setdefault(key, value)
    for piece in _GG_PIECES:
        if piece[2] == name:
            _gg_run(piece, module.__dict__)


class _GGLoader(_gg_abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ in _GG_UNITS:
            _GG_DONE[module.__name__] = module
            _gg_run_unit(module)
        else:  # the IPython stub
            module.__path__ = []
            module.__getattr__ = lambda name: _GGStub


class _GGFinder(_gg_abc.MetaPathFinder):
    def __init__(self, names, packages=False):
        self.names, self.packages = names, packages

    def find_spec(self, name, path=None, target=None):
        if self.names(name):
            return _gg_util.spec_from_loader(name, _GGLoader(), is_package=self.packages)
        return None


def _gg_module(name):
    if name not in _GG_DONE:
        module = _gg_types.ModuleType(name)
        _GG_DONE[name] = module
        _gg_sys.modules.setdefault(name, module)  # never in place of a module already imported
        _gg_run_unit(module)
    return _GG_DONE[name]


def _gg_export(module):
    for key, value in list(vars(module).items()):
        if isinstance(value, (type, _gg_types.FunctionType)) and getattr(value, "__module__", None) == module.__name__:
            try:
                value.__module__ = __name__  # graded as the submission's own
            except (AttributeError, TypeError):
                continue
            globals()[key] = value


for _gg_value in list(globals().values()):  # the runtime's own classes and functions are not the student's
    if isinstance(_gg_value, (type, _gg_types.FunctionType)) and _gg_value.__module__ == __name__:
        _gg_value.__module__ = "gradegrad.intake.generated"
_gg_sys.meta_path.insert(0, _GGFinder(lambda name: name in _GG_UNITS and name not in _GG_DONE))
_gg_sys.meta_path.append(_GGFinder(lambda name: name.split(".")[0] == "IPython", True))  # if not installed
try:
    for _gg_name in _GG_GRADED:
        _gg_module(_gg_name)
finally:
    for _gg_name in _GG_GRADED:
        if _gg_name in _GG_DONE:
            _gg_export(_GG_DONE[_gg_name])
'''


@dataclass(frozen=True)
class Piece:
    """A piece of the student's code that runs on its own: a notebook cell or a whole module."""

    origin: str  # the student's file, relative to the submissions folder: "dave/lab.ipynb"
    lines: tuple[str, ...]
    cell: int | None = None  # the notebook cell (counted from 1 over every cell), None for a module


@dataclass(frozen=True)
class Unit:
    """A module of the generated file: a notebook (cells) or a `.py` file (one piece)."""

    name: str  # importable name, an identifier
    pieces: tuple[Piece, ...]
    graded: bool = True  # else only importable (a folder's other module, with --module)


def build(units: list[Unit]) -> tuple[str, tuple[Segment, ...]]:
    """The generated module's text and the segments that map its lines back to the student's files.

    The text names no file (the segments do), so two students who handed in the same code get the
    same text, and `intake.identical` sees it."""
    lines = ["# Generated by gradegrad from a student's notebook or folder: the student's code is at the end of",
             "# this file, after the runtime that runs it piece by piece (see gradegrad/intake/generated.py)."]
    lines += RUNTIME.split("\n")[:-1]
    segments: list[Segment] = []
    for unit in units:
        role = "graded" if unit.graded else "library"
        for piece in unit.pieces:
            kind, cell = ("cell", str(piece.cell)) if piece.cell is not None else ("module", "-")
            lines += ["", f"{MARKER}{role} {kind} {unit.name} {cell}"]
            body = list(piece.lines)
            while body and not body[-1].strip():
                body.pop()
            segments.append(Segment(len(lines) + 1, len(body), piece.origin, 1, piece.cell, len(BUNDLE_PREFIX)))
            lines += [BUNDLE_PREFIX + ln if ln else BUNDLE_PREFIX.rstrip() for ln in body]
    return "\n".join(lines) + "\n", tuple(segments)
