"""A student's folder (a repository): which of its modules to load, and the bundle that carries them.

The `--module` file inside, else the only top-level module (tests and `setup.py` aside), else
every top-level module. The sandbox lets the child read one file only, so unless one module is
loaded as it is, the child loads a generated module that carries them (`generated.py`): each is
importable by its own name (`from helpers import x`), and with `--module` the other modules stay
importable without being graded. A folder is read up to `MAX_FILES` modules and `MAX_BYTES`
bytes; what is left out is said in the report's notes.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import replace
from pathlib import Path

from gradegrad.intake.files import python_text, read_bytes
from gradegrad.intake.generated import Piece, Unit, build
from gradegrad.intake.notebooks import dropped_note, read_notebook
from gradegrad.intake.sources import SubmissionSource, Unusable, printable, sha

NOT_MODULES = re.compile(r"^(test_.*|.*_test|conftest|setup|__init__|__main__)$")
MAX_ENTRIES = 10_000  # entries of a student's folder looked at
MAX_FILES = 100  # top-level modules read from a student's folder
MAX_BYTES = 20 << 20  # bytes read from a student's folder, all its modules together


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _module_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The folder's top-level .py and .ipynb files, by name, within the limits; notes on the rest."""
    files, notes = [], []
    with os.scandir(folder) as entries:
        for seen, entry in enumerate(entries, start=1):
            if seen > MAX_ENTRIES:
                notes.append(f"{printable(folder.name)}/ holds more than {MAX_ENTRIES} entries: the rest were not "
                             "looked at")
                break
            path = Path(entry.path)
            if path.suffix.lower() in (".py", ".ipynb") and is_regular(path):
                files.append(path)
    files.sort(key=lambda p: p.name.lower())
    if len(files) > MAX_FILES:
        left = ", ".join(printable(p.name) for p in files[MAX_FILES:MAX_FILES + 5])
        notes.append(f"{len(files) - MAX_FILES} module(s) of {printable(folder.name)}/ left out ({left}, ...): "
                     f"a folder is read up to {MAX_FILES} modules")
        files = files[:MAX_FILES]
    return files, notes


def _candidates(folder: Path, module: str | None) -> tuple[list[Path], list[Path], list[str]]:
    """(modules to grade, modules only importable by them, notes on the choice)."""
    files, notes = _module_files(folder)
    graded: list[Path] = []
    if module:
        wanted = module.lower()
        graded = [p for p in files if wanted in (p.name.lower(), p.stem.lower())][:1]
        if not graded:
            notes.append(f"{module} not found in {printable(folder.name)}/: searched its top-level modules instead")
    if not graded:
        stems = {p.stem for p in files if p.suffix == ".py"}
        graded = [p for p in files if not NOT_MODULES.match(p.stem)
                  and not (p.suffix.lower() == ".ipynb" and p.stem in stems)]
    library = [p for p in files if p not in graded and p.suffix.lower() == ".py" and not NOT_MODULES.match(p.stem)]
    return graded, library, notes


def _identifier(stem: str) -> str:
    name = re.sub(r"\W", "_", stem)
    return name if name and not name[0].isdigit() else f"_{name}"


def _unit(path: Path, origin: str, graded: bool) -> tuple[Unit, int, tuple[str, ...]]:
    """The file as a unit of the generated module: (unit, magic lines dropped, notes)."""
    data = read_bytes(path)
    if path.suffix.lower() == ".ipynb":
        notebook = read_notebook(origin, data, _identifier(path.stem))
        return replace(notebook.unit, graded=graded), notebook.dropped, notebook.notes
    text = python_text(origin, data)
    return Unit(_identifier(path.stem), (Piece(origin, tuple(text.split("\n"))),), graded), 0, ()


def _units(folder: Path, graded: list[Path], library: list[Path], notes: list[str]) -> tuple[list[Unit], int]:
    """Every module that can be read, within the folder's byte limit; the others are noted (and
    when none of the modules to grade can be read, that is the folder's problem)."""
    units, dropped, total, failed = [], 0, 0, []
    for path in graded + library:
        origin = printable(f"{folder.name}/{path.name}")
        try:
            size = path.stat().st_size
            if total + size > MAX_BYTES:
                raise Unusable(f"{origin} left out: a folder is read up to {MAX_BYTES >> 20} MB")
            unit, n, more = _unit(path, origin, path in graded)
            total += size
        except (Unusable, OSError) as exc:
            failed.append(str(exc) if isinstance(exc, Unusable) else f"{origin} cannot be read")
            continue
        if unit.name in {u.name for u in units}:
            failed.append(f"{origin} left out: another module of the folder has the same name")
            continue
        units.append(unit)
        dropped += n
        notes.extend(more)
    if not any(u.graded for u in units):
        raise Unusable("; ".join(failed))
    notes.extend(failed)
    return units, dropped


def read_folder(folder: Path, name: str, module: str | None) -> tuple[SubmissionSource, str | None]:
    """The folder's submission, and the generated module's text (None: one module loaded as it is)."""
    graded, library, notes = _candidates(folder, module)
    if not graded:
        raise Unusable(f"{printable(folder.name)}/ has no .py or .ipynb file at its top level")
    if len(graded) == 1 and not library and graded[0].suffix.lower() == ".py":
        origin = printable(f"{folder.name}/{graded[0].name}")
        text = python_text(origin, read_bytes(graded[0]))
        return SubmissionSource(name, folder, "folder", load=graded[0], digest=sha(text), module=module,
                                notes=(*notes, f"graded {origin}")), None
    units, dropped = _units(folder, graded, library, notes)
    code, segments = build(units)
    origins = [u.pieces[0].origin for u in units if u.graded and u.pieces]
    notes.append(f"graded {', '.join(origins)}")
    if any(not u.graded for u in units):
        notes.append("importable by them: " + ", ".join(u.pieces[0].origin for u in units if not u.graded and u.pieces))
    return SubmissionSource(name, folder, "folder", segments=segments, digest=sha(code), module=module,
                            notes=(*notes, *dropped_note(dropped))), code
