"""Text from a submission, made safe to print in a file a person opens (HTML, CSV for an LMS).

The one place the course writers (html_report, lms, csv_report) clean such text: colour codes
and control characters other than newline and tab are dropped, and it is capped. Escaping for
the target format (html.escape, CSV quoting) is each writer's own job, after this.
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # incl. bidi overrides
LIMIT = 20_000  # characters of one piece of text


def plain(text: str | None, limit: int = LIMIT) -> str:
    """`text` without colour codes or control characters, at most `limit` characters."""
    if not text:
        return ""
    text = CONTROL.sub("", ANSI.sub("", text[: limit * 2].replace("\r\n", "\n").replace("\r", "\n")))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str | None, limit: int = 300) -> str:
    """`plain`, on one line (for a CSV cell or a table)."""
    return re.sub(r"\s*\n\s*", " ", plain(text, limit * 2)).strip()[:limit]
