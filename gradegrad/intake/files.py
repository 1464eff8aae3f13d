"""Reading a student's file: size limits, bytes, and Python text decoded as Python decodes it."""

from __future__ import annotations

import codecs
import io
import tokenize
from pathlib import Path

from gradegrad.intake.sources import Unusable, printable

MAX_BYTES = {".py": 5 << 20, ".ipynb": 50 << 20}  # larger files are reported, not read
NOT_SOURCE_ENCODINGS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"}


def read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        limit = MAX_BYTES.get(path.suffix.lower(), MAX_BYTES[".py"])
        if size > limit:
            raise Unusable(f"{path.name} is too large ({size >> 20} MB; the limit is {limit >> 20} MB)")
        return path.read_bytes()
    except OSError as exc:
        raise Unusable(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def python_text(name: str, data: bytes) -> str:
    """Decode as Python does: UTF-8, or the encoding the file declares (a text encoding, not a
    transform such as punycode or unicode_escape)."""
    if not data.strip():
        raise Unusable(f"{name} is empty")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # undecodable first lines, or an unknown declared encoding
        encoding = "utf-8"
    codec = codecs.lookup(encoding)
    if not codec._is_text_encoding or codec.name in NOT_SOURCE_ENCODINGS:
        raise Unusable(f"{name} declares the encoding {codec.name!r}, which gradegrad does not read: save it as UTF-8")
    try:
        text = data.decode(encoding)
    except Exception as exc:  # noqa: BLE001 - UnicodeError, LookupError, or any codec's own failure
        raise Unusable(f"{name} is not UTF-8 text ({decode_detail(exc)}): save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_detail(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        line = exc.object[: exc.start].count(b"\n") + 1
        return f"byte 0x{exc.object[exc.start]:02x} on line {line}"
    return printable(str(exc).split("\n")[0][:80])
