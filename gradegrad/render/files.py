"""Writing output files atomically: a reader (a TA, Gradescope, a CI job) never sees half a file.

Files get the permissions an ordinary `open()` would give (0666 less the umask: 0644 usually),
not mkstemp's 0600, so that the course's group can read the gradebook. CSV files start with a
UTF-8 byte order mark, which Excel needs to read them as UTF-8 (`José`, not `JosÃ©`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradegrad.errors import UsageError

BOM = "\ufeff"


def _umask() -> int:
    """The process's umask (read by setting it and putting it back; done once, at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


def write_text_atomic(path: Path, text: str, bom: bool = False) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`. A character UTF-8
    cannot hold (a lone surrogate that escaped cleaning) is written as `?`, never an exception."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="") as fh:
            fh.write((BOM if bom else "") + text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """The same for bytes (a zip archive)."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_folder(path: Path) -> Path:
    """Create an output folder (and its parents); a file in the way is a usage error."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"cannot write into {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {path}: {exc.strerror or exc}") from None
    return path
