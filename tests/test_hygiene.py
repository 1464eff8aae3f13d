"""Text from a submission is capped and stripped of control characters where it enters the report,
and every writer handles adversarial text in time linear in its size."""

import io
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from gradegrad.hygiene import MESSAGE, NAME, OUTPUT, TRACEBACK, cap, clean_error, clean_report, clean_text, one_line
from gradegrad.report import CheckResult, ExerciseResult, LoadProblem, Report, StudentOutput, Worst

ESCAPES = "\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4=\x07\x1bP1$r\x1b\\\x9b31m\u202eevil\x00\x08\x7f"


def test_escape_sequences_and_control_characters_are_removed():
    assert clean_text(ESCAPES + "ok") == "evilok"
    assert clean_text("a\tb\nc") == "a\tb\nc"  # tabs and newlines stay in multi-line text
    assert clean_text("line\r\nnext\rforged") == "line\nnext\nforged"  # \r cannot overwrite a line
    assert one_line("name\n\twith\r" + ESCAPES + "  spaces ") == "name with evil spaces"


def test_text_without_anything_to_remove_is_returned_as_it_is():
    """The shortcut for printable text (`str.isprintable`) gives what the full cleaning gives: no
    printable character is one it removes or changes, and the only printable whitespace is the space."""
    from gradegrad.hygiene import _ESCAPE, _MULTILINE, _ONE_LINE

    printable = "".join(chr(c) for c in range(0x110000) if chr(c).isprintable())
    assert _ESCAPE.sub("", printable).translate(_MULTILINE) == printable
    assert _ESCAPE.sub("", printable).translate(_ONE_LINE) == printable
    assert [c for c in printable if c.isspace()] == [" "]
    assert clean_text("a \u00e9\u4e2d b") == "a \u00e9\u4e2d b" and one_line("a  b ") == "a b"
    assert clean_text("x" * 3000, 1000) != "x" * 3000 and one_line(" a") == "a"


def test_text_is_capped_keeping_its_start_and_end():
    text = "start " + "x" * 100_000 + " end"
    capped = clean_text(text, 1000)
    assert capped.startswith("start ") and capped.endswith(" end") and len(capped) < 1100
    assert "[99060 characters cut]" in capped
    assert one_line(text, 100).startswith("start ") and "\n" not in one_line(text, 100)
    assert cap("short", 10) == "short"


def test_a_childs_error_description_is_cleaned_where_it_enters():
    error = clean_error({"kind": "exception", "type": "Value\nError" + "x" * 1000, "message": "m" * 10**6,
                         "traceback": ESCAPES * 10, "line": 3})
    assert "\n" not in error["type"] and len(error["type"]) < NAME + 50 and error["line"] == 3
    assert len(error["message"]) < MESSAGE + 50 and "\x1b" not in error["traceback"]


def _report(text: str) -> Report:
    check = CheckResult("backward", "failed", 0.0, 3.0, text, text, Worst(text, (1, 2), 1.0, 2.0), text)
    exercise = ExerciseResult("sigmoid", text, "failed", 0.0, 3.0, (check,), text, text)
    return Report(text, "cpu", 0, "lab1", 0.0, 3.0, (exercise,), StudentOutput(text, text, True), (text,) * 3,
                  text, text, (text,), "0", load_problems=(LoadProblem(text, 3, 2, "exception", text, text),))


def test_every_text_field_of_a_report_is_capped_and_cleaned():
    text = (ESCAPES + "x" * 1000 + "\n") * 1000
    report = clean_report(_report(text))
    ex, check, problem = report.exercises[0], report.exercises[0].checks[0], report.load_problems[0]
    assert len(report.submission) < 1100 and "\n" not in report.submission
    assert len(check.message) < MESSAGE + 50 and len(check.traceback) < TRACEBACK + 50
    assert "\n" not in ex.class_name and "\n" not in check.worst.input and len(ex.class_name) < NAME + 50
    assert len(report.output.stdout) < OUTPUT + 50 and len(problem.traceback) < TRACEBACK + 50
    assert "\x1b" not in repr(report) and "\x07" not in repr(report)
    assert clean_report(report) == report  # idempotent
    assert clean_report(report).score == 0.0 and check.worst.index == (1, 2)


# Every writer, on a report whose fields hold a megabyte of what makes naive text code slow: runs of
# spaces (a regex such as \s*\n\s* backtracks over them), newlines, backticks (code fences), table
# pipes, HTML, percent signs and colons (workflow commands), frames ("File \"), escape sequences.
WRITERS = textwrap.dedent('''
    import io, sys
    from rich.console import Console
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from test_hygiene import _report, adversarial
    from gradegrad.batch import BatchResult, Graded
    from gradegrad.render.csv_report import to_csv
    from gradegrad.render.github import annotations
    from gradegrad.render.gradebook import grades_json
    from gradegrad.render.gradescope import to_gradescope_json
    from gradegrad.render.json_report import to_json
    from gradegrad.render.junit import to_junit
    from gradegrad.render.markdown import inline, to_markdown
    from gradegrad.render.scorecard import render_scorecard
    from gradegrad.intake import SubmissionSource, relabel_traceback
    from pathlib import Path

    text = adversarial()
    report = _report(text)
    batch = BatchResult("f", "lab1", ("sigmoid",), (Graded(text, "file", report, "failed"),))
    inline(text)
    to_json(report), to_markdown(report, text), to_junit(report), to_gradescope_json(report, text)
    from gradegrad.course import Gradebook
    from gradegrad.render.gradebook import html_report
    from gradegrad.render.html_report import report_page

    book = Gradebook(batch, 5.0, text)
    to_csv(batch), grades_json(book), html_report(book), report_page(report), annotations(report, {}, text)
    relabel_traceback(text, "/x.py", SubmissionSource("x", Path("x.py"), "file", load=Path("x.py")), "x.py")
    render_scorecard(report, Console(file=io.StringIO(), width=100))
    print("done")
''')


def adversarial(size: int = 1 << 20) -> str:
    pieces = [" " * 50_000 + "x", "\n" * 1000, "`" * 5000, "|" * 5000, "<&>" * 2000, "%:," * 2000,
              'File "' * 2000, ESCAPES * 500, " \n" * 5000, "a " * 20_000]
    text = "".join(pieces)
    return (text * (size // len(text) + 1))[:size]


def test_every_writer_finishes_on_a_megabyte_of_adversarial_text():
    """In a child process with a generous limit: a quadratic transform would take hours here (it took
    36 s on 50 KB before), a linear one takes seconds."""
    out = subprocess.run([sys.executable, "-c", WRITERS, str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("done"), out.stderr[-3000:]


@pytest.mark.parametrize("size", [1 << 20])
def test_cleaning_a_megabyte_of_adversarial_text(size):
    text = adversarial(size)
    assert len(clean_text(text, size)) <= size and "\x1b" not in one_line(text, size)
    assert io.StringIO(clean_text(text, size)).read().count("\x07") == 0


def test_lone_surrogates_become_replacement_characters():
    """A lone surrogate (a JSON string from the child, an undecodable file name) cannot be written
    in UTF-8: it used to crash every report file after grades.json."""
    assert clean_text("bad \udcff x") == "bad \ufffd x"
    assert one_line("n\udc80me\ud800") == "n\ufffdme\ufffd"
    clean_text("\udcff" * 10).encode("utf-8")


def test_a_cap_never_cuts_less_than_its_marker():
    just_over = "a" * (MESSAGE + 12)
    assert clean_text(just_over) == just_over  # not "... [12 characters cut] ...", longer than the 12
    assert "characters cut" in clean_text("a" * (MESSAGE * 2))
