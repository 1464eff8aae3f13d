"""A submissions folder scanned into sources: one per student, named after the entry.

Files that cannot be graded (empty, unreadable, not UTF-8, not a notebook, or anything else that
fails while they are read) are sources with a `problem`; duplicates, stray files, links and
entries past `MAX_SUBMISSIONS` are `Skipped`, with the reason. Nothing here raises for a student's
file: only a missing or unreadable folder, or a file gradegrad cannot grade given on the command
line, is a `SubmissionError`. A generated module's text is built again when it is needed
(`generated_code`), never kept for the whole batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from gradegrad.errors import SubmissionError
from gradegrad.intake.files import python_text, read_bytes
from gradegrad.intake.folders import is_regular, read_folder
from gradegrad.intake.notebooks import dropped_note, notebook_module
from gradegrad.intake.sources import Discovery, Kind, Skipped, SubmissionSource, Unusable, printable, sha

KIND_ORDER = {"folder": 0, "file": 1, "notebook": 2}  # which entry wins when two share a name
SUFFIXES = (".py", ".ipynb")
MAX_SUBMISSIONS = 5000  # entries of a submissions folder graded; the rest are listed as skipped


def _read_file(path: Path, name: str) -> tuple[SubmissionSource, str | None]:
    if path.suffix.lower() == ".ipynb":
        code, segments, notebook = notebook_module(printable(path.name), read_bytes(path))
        return SubmissionSource(name, path, "notebook", segments=segments, digest=sha(code),
                                notes=(*notebook.notes, *dropped_note(notebook.dropped))), code
    text = python_text(printable(path.name), read_bytes(path))
    return SubmissionSource(name, path, "file", load=path, digest=sha(text)), None


def _kind(path: Path) -> Kind:
    if path.is_dir():
        return "folder"
    return "notebook" if path.suffix.lower() == ".ipynb" else "file"


def read_source(path: Path, module: str | None = None) -> tuple[SubmissionSource, str | None]:
    """The submission at `path` (a .py, a .ipynb or a folder) and, when the child loads a generated
    module, its text; a student's file that cannot be read is a source with a problem."""
    if not path.exists():
        raise SubmissionError(f"submission not found: {path}")
    if not path.is_dir() and path.suffix.lower() not in SUFFIXES:
        raise SubmissionError(f"cannot grade {path}: give a .py file, an .ipynb notebook or a folder")
    name = printable(path.name if path.is_dir() else path.stem)
    try:
        if path.is_dir():
            return read_folder(path, name, module)
        return _read_file(path, name)
    except Unusable as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file does to the reader, it stays its problem
        problem = f"gradegrad could not read {printable(path.name)} ({type(exc).__name__}: {printable(str(exc))[:200]})"
    return SubmissionSource(name, path, _kind(path), problem=problem, digest=sha(f"problem:{problem}"),
                            module=module), None


def source_for(path: Path, module: str | None = None) -> SubmissionSource:
    """The submission at `path`; a problem with the student's files never raises."""
    return read_source(path, module)[0]


def generated_code(source: SubmissionSource) -> str:
    """The text of the module generated for `source`, built again from the student's files."""
    again, code = read_source(source.origin, source.module)
    if code is None or again.segments != source.segments:
        raise SubmissionError(f"{source.display} changed while it was being graded: grade it again")
    return code


def _stray_reason(path: Path) -> str | None:
    """Why an entry of the folder is not a submission; None when it is one."""
    if path.is_symlink():
        return "a symbolic link (not followed)"
    if path.is_dir():
        return None
    if not is_regular(path):
        return "not a regular file"
    if path.suffix.lower() in SUFFIXES:
        return None
    if path.suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar"):
        return "an archive: extract it into the folder to grade it"
    return "stray file: not a .py, a .ipynb or a folder"


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in ("__pycache__", ".ipynb_checkpoints")


def _entries(folder: Path, exclude: Iterable[Path]) -> list[Path]:
    if not folder.exists():
        raise SubmissionError(f"submissions folder not found: {folder}")
    if not folder.is_dir():
        raise SubmissionError(f"not a folder: {folder} (give the folder that holds one submission per student)")
    skip = {os.path.realpath(p) for p in exclude}
    try:
        names = sorted((n for n in os.listdir(folder) if not _ignored(n)), key=str.lower)
    except OSError as exc:
        raise SubmissionError(f"cannot read the submissions folder {folder}: {exc.strerror or exc}") from None
    return [folder / n for n in names if os.path.realpath(folder / n) not in skip]


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
        try:
            reason = _stray_reason(path)
        except OSError as exc:
            reason = f"cannot be read ({exc.strerror or exc})"
        if reason is None and len(sources) >= MAX_SUBMISSIONS:
            reason = f"not graded: a folder is graded up to {MAX_SUBMISSIONS} submissions (split it)"
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
