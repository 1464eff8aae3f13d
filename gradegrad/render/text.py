"""Text from a submission, made safe to print in a file a person opens (HTML, CSV for an LMS).

The course writers (html_report, lms, csv_report) call these; the cleaning itself is
`gradegrad.hygiene`'s (escape sequences and control characters removed, capped, linear time).
Escaping for the target format (html.escape, CSV quoting) is each writer's own job, after this.
"""

from __future__ import annotations

from gradegrad import hygiene

LIMIT = 20_000  # characters of one piece of text


def plain(text: str | None, limit: int = LIMIT) -> str:
    """`text` without escape sequences or control characters (newlines and tabs kept), capped."""
    return hygiene.clean_text(text or "", limit)


def one_line(text: str | None, limit: int = 300) -> str:
    """`plain`, on one line (for a CSV cell or a table)."""
    return hygiene.one_line(text or "", limit)
