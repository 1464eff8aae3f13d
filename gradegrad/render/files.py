"""Writing output files atomically: a reader (a TA, Gradescope, a CI job) never sees half a file.

Files get the permissions an ordinary `open()` would give (0666 less the umask: 0644 usually),
not mkstemp's 0600, so that the course's group can read the gradebook. CSV files start with a
UTF-8 byte order mark, which Excel needs to read them as UTF-8 (`José`, not `JosÃ©`).
"""

from __future__ import annotations

import hashlib
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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gradegrad-", suffix=".tmp")  # short: the name may be long
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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gradegrad-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


NAME_BYTES = 240  # of a file name made from a student's name (the file system's limit is 255 bytes)


def file_name(name: str, suffix: str = "") -> str:
    """`name + suffix` as a file name: a student's name (a submission's file or folder name, up to 255
    bytes itself) cut to fit with the suffix, and made unique by a digest of the whole when cut."""
    data = name.encode("utf-8", "replace")
    if len(data) + len(suffix.encode()) <= NAME_BYTES:
        return name + suffix
    digest = hashlib.sha256(data).hexdigest()[:10]
    head = data[:NAME_BYTES - len(suffix.encode()) - 11].decode("utf-8", "ignore")
    return f"{head}-{digest}{suffix}"


def make_folder(path: Path) -> Path:
    """Create an output folder (and its parents); a file in the way is a usage error."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"cannot write into {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {path}: {exc.strerror or exc}") from None
    return path
