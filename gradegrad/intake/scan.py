"""A submissions folder scanned into sources: one per student, named after the entry.

Files that cannot be graded (empty, unreadable, not UTF-8, not a notebook) are sources with a
`problem`; duplicates, stray files and links are `Skipped`. Nothing here raises for a student's
file: only a missing or unreadable folder given on the command line is a `SubmissionError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from gradegrad.errors import SubmissionError
from gradegrad.intake.files import python_text, read_bytes
from gradegrad.intake.folders import folder_source, is_regular
from gradegrad.intake.notebooks import notebook_module
from gradegrad.intake.sources import Discovery, Kind, Skipped, SubmissionSource, Unusable, sha

KIND_ORDER = {"folder": 0, "file": 1, "notebook": 2}  # which entry wins when two share a name


def _file_source(path: Path, name: str) -> SubmissionSource:
    if path.suffix.lower() == ".ipynb":
        code, segments, dropped = notebook_module(path.name, read_bytes(path))
        notes = (f"{dropped} shell/magic line(s) of the notebook not run",) if dropped else ()
        return SubmissionSource(name, path, "notebook", code=code, segments=segments, digest=sha(code), notes=notes)
    text = python_text(path.name, read_bytes(path))
    return SubmissionSource(name, path, "file", load=path, digest=sha(text))


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
            return folder_source(path, name, module)
        return _file_source(path, name)
    except Unusable as exc:
        return SubmissionSource(name, path, _kind(path), problem=str(exc), digest=sha(f"problem:{exc}"))


def _stray_reason(path: Path) -> str | None:
    """Why an entry of the folder is not a submission; None when it is one."""
    if path.is_symlink():
        return "a symbolic link (not followed)"
    if path.is_dir():
        return None
    if not is_regular(path):
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
