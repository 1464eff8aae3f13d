"""Find the submissions in a folder and say what the child must load for each; never run them.

A submission is one entry of the folder, named after it (`alice.py` -> alice):
- a `.py` file, loaded as it is;
- a Jupyter notebook (`.ipynb`): its code cells, read as JSON data, become one generated module;
  shell and magic lines (`! pip install`, `%timeit`) become `pass`, so line numbers still match;
- a folder (a student's repository): the `--module` file inside, else the only top-level module
  (tests and `setup.py` aside), else a generated bundle of every top-level module.

A generated module is text (`SubmissionSource.code`) that `batch` writes to a scratch file for
the child to load. The sandbox lets the child read that one file only, so a bundle carries its
modules inside it, as comment lines that a small import hook compiles under their own names
(`from helpers import x` works between them). `Segment`s map the generated file's lines back to
the student's files and cells, for tracebacks and annotations.

Files that cannot be graded (empty, unreadable, not UTF-8, not a notebook) are sources with a
`problem`; duplicates, stray files and links are `Skipped`. Nothing here raises for a student's
file: only a missing or unreadable folder given on the command line is a `SubmissionError`.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import stat
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping

from gradegrad.errors import SubmissionError

Kind = Literal["file", "notebook", "folder"]

MAX_BYTES = {".py": 5 << 20, ".ipynb": 50 << 20}  # larger files are reported, not read
NOT_MODULES = re.compile(r"^(test_.*|.*_test|conftest|setup|__init__|__main__)$")
KEEP_BODY_MAGICS = ("time", "timeit", "capture", "prun")  # cell magics whose body is Python
BUNDLE_PREFIX = "#| "
DROPPED = "pass  # gradegrad: dropped"  # what a shell or magic line of a notebook becomes
KIND_ORDER = {"folder": 0, "file": 1, "notebook": 2}  # which entry wins when two share a name


@dataclass(frozen=True)
class Segment:
    """Lines `first`..`first + count - 1` of a generated module came from `origin`."""

    first: int
    count: int
    origin: str  # the student's file, relative to the submissions folder: "dave/helpers.py"
    origin_first: int = 1  # the line in `origin` (or in the cell) of the segment's first line
    cell: int | None = None  # the notebook cell, counted from 1 over every cell
    prefix: int = 0  # characters before the student's text on each line (a bundle's "#| ")

    def holds(self, line: int) -> bool:
        return self.first <= line < self.first + self.count

    def origin_line(self, line: int) -> int:
        return self.origin_first + line - self.first


@dataclass(frozen=True)
class SubmissionSource:
    """One student's submission and what the child loads for it."""

    name: str  # the student: the file's stem or the folder's name
    origin: Path  # what the student handed in
    kind: Kind
    load: Path | None = None  # the student's own file, loaded as it is
    code: str | None = None  # else the generated module to load (notebook, bundle)
    segments: tuple[Segment, ...] = ()  # for `code`: where its lines came from
    problem: str | None = None  # why it cannot be graded; then nothing is loaded
    digest: str = ""  # sha256 of what the child loads (or of the problem)
    notes: tuple[str, ...] = ()  # e.g. "2 shell/magic lines dropped"

    @property
    def display(self) -> str:
        return self.origin.name + ("/" if self.kind == "folder" else "")


@dataclass(frozen=True)
class Skipped:
    """An entry of the folder that is not a student's submission."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Discovery:
    folder: Path
    sources: tuple[SubmissionSource, ...]  # one per student, by name
    skipped: tuple[Skipped, ...] = ()


# --------------------------------------------------------------------------- reading files


class _Unusable(Exception):
    """A student's file cannot be graded; the message says why, for the gradebook."""


def _printable(text: str) -> str:
    """A file name fit for a comment line of generated code."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        limit = MAX_BYTES.get(path.suffix.lower(), MAX_BYTES[".py"])
        if size > limit:
            raise _Unusable(f"{path.name} is too large ({size >> 20} MB; the limit is {limit >> 20} MB)")
        return path.read_bytes()
    except OSError as exc:
        raise _Unusable(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def _python_text(name: str, data: bytes) -> str:
    """Decode as Python does: UTF-8, or the encoding the file declares."""
    if not data.strip():
        raise _Unusable(f"{name} is empty")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # undecodable first lines, or an unknown declared encoding
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise _Unusable(f"{name} is not UTF-8 text ({_decode_detail(exc)}): save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_detail(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        line = exc.object[: exc.start].count(b"\n") + 1
        return f"byte 0x{exc.object[exc.start]:02x} on line {line}"
    return str(exc).split("\n")[0][:80]


# --------------------------------------------------------------------------- notebooks


_ASSIGNED_MAGIC = re.compile(r"^\s*[\w.,\s]+=\s*[!%]")


def _is_magic(line: str) -> bool:
    """A shell (`!ls`), magic (`%timeit`), help (`torch.mv?`) or `x = !ls` line: not Python."""
    s = line.strip()
    return bool(s) and (s[0] in "!%" or (s.endswith("?") and not s.startswith("#"))
                        or bool(_ASSIGNED_MAGIC.match(line)))


def _cell_lines(source: object) -> list[str]:
    text = "".join(source) if isinstance(source, list) else source if isinstance(source, str) else ""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _python_cell(lines: list[str]) -> tuple[list[str], int]:
    """The cell as Python, same line count; and how many lines were replaced by `pass`."""
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in KEEP_BODY_MAGICS:
            return ["" for _ in lines], 1  # %%bash, %%writefile, %%html: not Python at all
    out, dropped, continued = [], 0, False
    for line in lines:
        if continued or _is_magic(line):
            indent = line[: len(line) - len(line.lstrip())] if not continued else ""
            out.append(indent + DROPPED if not continued else "")
            dropped += not continued
            continued = line.rstrip().endswith("\\")
        else:
            out.append(line)
    return out, dropped


def _notebook_cells(name: str, data: bytes) -> list[tuple[int, list[str]]]:
    """(cell number, lines) of each code cell; nbformat 4, and 3's worksheets."""
    try:
        nb = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _Unusable(f"{name} is not UTF-8 text ({_decode_detail(exc)})") from None
    except ValueError as exc:
        raise _Unusable(f"{name} is not a Jupyter notebook (invalid JSON: {str(exc)[:80]})") from None
    if not isinstance(nb, dict):
        raise _Unusable(f"{name} is not a Jupyter notebook (no cells)")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list) and nb["worksheets"]:
        cells = nb["worksheets"][0].get("cells") if isinstance(nb["worksheets"][0], dict) else None
    if not isinstance(cells, list):
        raise _Unusable(f"{name} is not a Jupyter notebook (no cells)")
    found = []
    for number, cell in enumerate(cells, start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            found.append((number, _cell_lines(cell.get("source", cell.get("input", "")))))
    return found


def notebook_module(name: str, data: bytes) -> tuple[str, tuple[Segment, ...], int]:
    """The code cells as one module: (text, segments, number of lines dropped)."""
    lines = [f"# Generated by gradegrad from {_printable(name)}: its code cells, in order. Shell and magic",
             "# lines are replaced by `pass`; the segments map these lines back to the cells."]
    segments, dropped = [], 0
    for number, cell in _notebook_cells(name, data):
        body, n = _python_cell(cell)
        dropped += n
        lines += ["", f"# %% cell {number}"]
        segments.append(Segment(len(lines) + 1, len(body), name, 1, number))
        lines += body
    if not any(ln.strip() and not ln.lstrip().startswith("#") and ln.strip() != DROPPED for seg in segments
               for ln in lines[seg.first - 1: seg.first - 1 + seg.count]):
        raise _Unusable(f"{name} has no code")
    return "\n".join(lines) + "\n", tuple(segments), dropped


# --------------------------------------------------------------------------- folders


_BUNDLE_HEAD = '''\
# Generated by gradegrad from the folder {folder}: each of its top-level modules ({names})
# is importable by its own name, as when that folder is the working directory, and the classes
# of the graded ones ({graded}) are graded. The sandbox lets the child read this one file, so the modules travel
# inside it: each below, after a "#|> name" line, as lines that start with "#|".
import importlib.abc as _gg_abc
import importlib.util as _gg_util
import sys as _gg_sys

_GG_MODULES = {{}}  # name: [first line, last line] of its source in this file
_GG_GRADED = {graded_list}  # the modules whose classes are graded (the others load when imported)
with open(__file__, encoding="utf-8") as _gg_file:
    _gg_lines = _gg_file.read().split("\\n")
for _gg_number, _gg_line in enumerate(_gg_lines, start=1):
    if _gg_line.startswith("#|> "):
        _gg_current = _gg_line[4:]
        _GG_MODULES[_gg_current] = [_gg_number + 1, _gg_number]
    elif _gg_line.startswith("#|") and _GG_MODULES:
        _GG_MODULES[_gg_current][1] = _gg_number


class _GGLoader(_gg_abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        first, last = _GG_MODULES[module.__name__]
        body = [line[3:] for line in _gg_lines[first - 1:last]]
        module.__file__ = __file__
        exec(compile("\\n" * (first - 1) + "\\n".join(body) + "\\n", __file__, "exec"), module.__dict__)


class _GGFinder(_gg_abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        return _gg_util.spec_from_loader(name, _GGLoader()) if name in _GG_MODULES else None


_gg_sys.meta_path.insert(0, _GGFinder())
for _gg_name in _GG_GRADED:
    _gg_module = __import__(_gg_name)
    if getattr(_gg_module, "__file__", None) != __file__:  # a module of that name was already imported
        _gg_module = _gg_util.module_from_spec(_gg_util.spec_from_loader(_gg_name, _GGLoader()))
        _GGLoader().exec_module(_gg_module)
    for _gg_key, _gg_value in list(vars(_gg_module).items()):
        if isinstance(_gg_value, type) and _gg_value.__module__ in _GG_MODULES:
            _gg_value.__module__ = __name__  # graded as classes of the submission
            globals()[_gg_key] = _gg_value
'''


def bundle_module(folder: str, modules: Mapping[str, tuple[str, str, tuple[Segment, ...]]],
                  graded: Iterable[str] | None = None) -> tuple[str, tuple[Segment, ...]]:
    """One module that carries several: {name: (origin, text, its segments)} -> (text, segments).

    The classes of the `graded` modules (default: all) are graded, with those they import from
    the others; the others are only importable (a `--module` and its sibling helpers).
    """
    origins = ", ".join(origin for origin, _, _ in modules.values())
    graded = list(modules) if graded is None else list(graded)
    lines = _BUNDLE_HEAD.format(folder=_printable(folder), names=_printable(origins),
                                graded=_printable(", ".join(graded)), graded_list=repr(graded)).split("\n")[:-1]
    segments: list[Segment] = []
    for name, (origin, text, inner) in modules.items():
        body = text.split("\n")
        if body and body[-1] == "":
            body.pop()
        lines += ["", f"#|> {name}"]
        start = len(lines) + 1
        segments += _shift(inner, start) if inner else [Segment(start, len(body), origin, prefix=len(BUNDLE_PREFIX))]
        lines += [BUNDLE_PREFIX + ln if ln else BUNDLE_PREFIX.rstrip() for ln in body]
    return "\n".join(lines) + "\n", tuple(segments)


def _shift(segments: Iterable[Segment], start: int) -> list[Segment]:
    return [Segment(start + s.first - 1, s.count, s.origin, s.origin_first, s.cell, len(BUNDLE_PREFIX))
            for s in segments]


def _module_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in (".py", ".ipynb") and _regular(p)),
                  key=lambda p: p.name.lower())


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _candidates(folder: Path, module: str | None) -> tuple[list[Path], list[str]]:
    """The files of a folder submission to load, and notes on the choice."""
    files = _module_files(folder)
    if module:
        wanted = module.lower()
        chosen = [p for p in files if wanted in (p.name.lower(), p.stem.lower())]
        if chosen:
            return chosen[:1], []
        note = f"{module} not found in {folder.name}/: searched its top-level modules instead"
    else:
        note = ""
    stems = {p.stem for p in files if p.suffix == ".py"}
    picked = [p for p in files if not NOT_MODULES.match(p.stem)
              and not (p.suffix.lower() == ".ipynb" and p.stem in stems)]
    return picked, [note] if note else []


def _module_text(path: Path, origin: str) -> tuple[str, tuple[Segment, ...], int]:
    data = _read_bytes(path)
    if path.suffix.lower() == ".ipynb":
        return notebook_module(origin, data)
    return _python_text(origin, data), (), 0


def _identifier(stem: str) -> str:
    name = re.sub(r"\W", "_", stem)
    return name if name and not name[0].isdigit() else f"_{name}"


def _siblings(folder: Path, chosen: Path) -> list[Path]:
    """The other top-level .py files of a folder, importable by the chosen `--module`."""
    return [p for p in _module_files(folder) if p.suffix.lower() == ".py" and p != chosen
            and p.stem.isidentifier()]


def _folder_source(folder: Path, name: str, module: str | None) -> SubmissionSource:
    picked, notes = _candidates(folder, module)
    if not picked:
        raise _Unusable(f"{folder.name}/ has no .py or .ipynb file at its top level")
    graded = None
    if module and len(picked) == 1 and _siblings(folder, picked[0]):  # --module: the others stay importable
        graded = [_identifier(picked[0].stem)]
        picked = [picked[0], *_siblings(folder, picked[0])]
    elif len(picked) == 1 and picked[0].suffix.lower() == ".py":
        text = _python_text(f"{folder.name}/{picked[0].name}", _read_bytes(picked[0]))
        return SubmissionSource(name, folder, "folder", load=picked[0], digest=_sha(text),
                                notes=(*notes, f"graded {folder.name}/{picked[0].name}"))
    modules, dropped = {}, 0
    for path in picked:
        origin = f"{folder.name}/{path.name}"
        text, segments, n = _module_text(path, origin)
        modules[_identifier(path.stem)] = (origin, text, segments)
        dropped += n
    if len(modules) == 1:
        (origin, code, segments), = modules.values()
    else:
        code, segments = bundle_module(f"{folder.name}/", modules, graded)
    shown = [o for key, (o, _, _) in modules.items() if graded is None or key in graded]
    notes.append(f"graded {', '.join(shown)}" + (" (its sibling modules importable)" if graded else ""))
    if dropped:
        notes.append(f"{dropped} shell/magic line(s) of the notebook not run")
    return SubmissionSource(name, folder, "folder", code=code, segments=segments, digest=_sha(code),
                            notes=tuple(notes))


# --------------------------------------------------------------------------- discovery


def _file_source(path: Path, name: str) -> SubmissionSource:
    if path.suffix.lower() == ".ipynb":
        code, segments, dropped = notebook_module(path.name, _read_bytes(path))
        notes = (f"{dropped} shell/magic line(s) of the notebook not run",) if dropped else ()
        return SubmissionSource(name, path, "notebook", code=code, segments=segments, digest=_sha(code), notes=notes)
    text = _python_text(path.name, _read_bytes(path))
    return SubmissionSource(name, path, "file", load=path, digest=_sha(text))


def _kind(path: Path) -> Kind:
    if path.is_dir():
        return "folder"
    return "notebook" if path.suffix.lower() == ".ipynb" else "file"


def source_for(path: Path, module: str | None = None) -> SubmissionSource:
    """The submission at `path` (a .py, a .ipynb or a folder); a problem never raises."""
    if not path.exists():
        raise SubmissionError(f"submission not found: {path}")
    name = path.name if path.is_dir() else path.stem
    try:
        if path.is_dir():
            return _folder_source(path, name, module)
        return _file_source(path, name)
    except _Unusable as exc:
        return SubmissionSource(name, path, _kind(path), problem=str(exc), digest=_sha(f"problem:{exc}"))


def _stray_reason(path: Path) -> str | None:
    """Why an entry of the folder is not a submission; None when it is one."""
    if path.is_symlink():
        return "a symbolic link (not followed)"
    if path.is_dir():
        return None
    if not _regular(path):
        return "not a regular file"
    if path.suffix.lower() in (".py", ".ipynb"):
        return None
    if path.suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar"):
        return "an archive: extract it into the folder to grade it"
    return "stray file: not a .py, a .ipynb or a folder"


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name in ("__pycache__", ".ipynb_checkpoints")


def _entries(folder: Path, exclude: Iterable[Path]) -> list[Path]:
    if not folder.exists():
        raise SubmissionError(f"submissions folder not found: {folder}")
    if not folder.is_dir():
        raise SubmissionError(f"not a folder: {folder} (give the folder that holds one submission per student)")
    skip = {p.resolve() for p in exclude}
    try:
        found = list(folder.iterdir())
    except OSError as exc:
        raise SubmissionError(f"cannot read the submissions folder {folder}: {exc.strerror or exc}") from None
    return sorted((p for p in found if not _ignored(p) and p.resolve() not in skip), key=lambda p: p.name.lower())


def _dedupe(sources: list[SubmissionSource]) -> tuple[list[SubmissionSource], list[Skipped]]:
    """One source per student name: a folder before a .py before a notebook."""
    kept: dict[str, SubmissionSource] = {}
    skipped = []
    for src in sorted(sources, key=lambda s: (s.name.lower(), KIND_ORDER[s.kind], s.origin.name)):
        key = src.name.lower()
        if key in kept:
            skipped.append(Skipped(src.origin, f"duplicate: {kept[key].display} is graded for {kept[key].name}"))
        else:
            kept[key] = src
    return list(kept.values()), skipped


def discover(folder: Path, module: str | None = None, exclude: Iterable[Path] = ()) -> Discovery:
    """Every submission in `folder`, one per student; the rest is listed as skipped."""
    sources, skipped = [], []
    for path in _entries(folder, exclude):
        reason = _stray_reason(path)
        if reason:
            skipped.append(Skipped(path, reason))
        else:
            sources.append(source_for(path, module))
    kept, duplicates = _dedupe(sources)
    if not kept:
        raise SubmissionError(f"no submission found in {folder}: expected one .py file, .ipynb notebook or "
                              f"folder per student")
    return Discovery(folder, tuple(kept), tuple(skipped + duplicates))


def identical(sources: Iterable[SubmissionSource]) -> list[tuple[str, ...]]:
    """Groups of students who handed in the very same code."""
    by_digest: dict[str, list[str]] = {}
    for src in sources:
        if src.problem is None:
            by_digest.setdefault(src.digest, []).append(src.name)
    return [tuple(names) for names in by_digest.values() if len(names) > 1]


# --------------------------------------------------------------------------- source locations


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
    return next((seg for seg in source.segments if seg.holds(line)), None)


def locate(source: SubmissionSource, line: int, base: Path | None = None) -> Location:
    """Map a line of what the child loaded to the student's file (and cell).

    Files of a generated module are named relative to the submissions folder ("dave/lab.py"),
    or to `base` when given (the folder that holds the submission, for paths from the cwd).
    """
    seg = _segment(source, line)
    if seg is not None:
        return Location(str(base / seg.origin) if base else seg.origin, seg.origin_line(line), seg.cell)
    if source.code is not None:
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
    except (SyntaxError, ValueError):
        return {}


def _chunks(source: SubmissionSource) -> list[tuple[int, str]]:
    """(first line, text) of each piece of the student's own code in what the child loads."""
    if source.code is None:
        if source.load is None:
            return []
        try:
            return [(1, _python_text(source.load.name, source.load.read_bytes()))]
        except (OSError, _Unusable):
            return []
    lines = source.code.split("\n")
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
    if source.code is None:
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
