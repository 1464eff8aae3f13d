"""Progress while a batch runs: a bar on a terminal, plain lines in a log."""

import io

from rich.console import Console

from gradegrad.batch import ProgressEvent
from gradegrad.render.progress import progress_reporter


def events():
    return [ProgressEvent(1, 2, "ann", "passed", 5, 5, True), ProgressEvent(2, 2, "bob", "failed", 3, 9, False)]


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with progress_reporter(Console(file=out, force_terminal=False), 2) as report:
        for e in events():
            report(e)
    assert out.getvalue() == "[1/2] ann: passed 5/5 (cached)\n[2/2] bob: failed 3/9\n"


def test_a_bar_with_counts_on_a_terminal():
    out = io.StringIO()
    with progress_reporter(Console(file=out, force_terminal=True, width=100), 2) as report:
        for e in events():
            report(e)
    text = out.getvalue()
    assert "grading" in text and "2/2" in text and "/min" in text and "left" in text
