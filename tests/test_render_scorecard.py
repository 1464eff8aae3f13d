"""The Rich scorecard as a student reads it: every failing check with its own reason, at 80 columns."""

import io

from rich.console import Console

from gradegrad.render.scorecard import render_scorecard
from gradegrad.report import CheckResult, ExerciseResult, Report
from render_samples import non_finite_report, partial_report


def shown(report: Report, width: int = 80) -> str:
    out = io.StringIO()
    render_scorecard(report, Console(file=out, width=width, no_color=True, highlight=False, soft_wrap=False))
    return out.getvalue()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_each_failing_check_has_its_own_reason_with_its_points_and_code():
    text = flat(shown(non_finite_report()))
    assert "softmax (Softmax) 10/12" in text
    assert "✗ stability 0/1: case 'large': the output has 7 nan/inf value(s) [not_finite]" in text
    assert "✗ efficiency 0/1: backward allocates memory that grows as n^2.00 [inefficient_backward]" in text
    assert "Subtract the maximum." in text


def test_readable_at_80_columns_without_trailing_spaces():
    for report in (non_finite_report(), partial_report()):
        text = shown(report)
        details = text.split("sandbox:")[0].splitlines()[5:]
        assert all(len(line) <= 80 for line in text.splitlines()), text
        assert all(line == line.rstrip() for line in details), details


def test_flags_notes_hints_and_missing_classes():
    text = flat(shown(partial_report()))
    assert "flag hand_written (no points): backward asks autograd for the gradient [uses_autograd]" in text
    assert "conv1d: did you mean Conv? rename it Conv1d" in text
    assert "! gradcheck 0/2: backward raised ValueError: <oops> | bad" in text
    note = CheckResult("float32", "passed", 1, 1, "the gradient of `x` is float64 for a float32 input", "wrong_dtype")
    ex = ExerciseResult("exp", "Exp", "passed", 1, 1, (note,))
    assert "note float32: the gradient of `x` is float64 for a float32 input [wrong_dtype]" in \
        flat(shown(Report("s.py", "cpu", 0, "all", 1, 1, (ex,))))


def test_checks_failing_for_the_same_reason_share_a_line():
    why = "not run: time limit: backward did not finish"
    checks = (CheckResult("found", "passed", 1, 1), CheckResult("backward", "error", 0, 3, why),
              CheckResult("gradcheck", "error", 0, 2, why), CheckResult("float32", "error", 0, 1, why))
    ex = ExerciseResult("exp", "Exp", "timeout", 1, 7, checks)
    text = shown(Report("s.py", "cpu", 0, "all", 1, 7, (ex,)))
    assert "! backward, gradcheck, float32 0/6: not run: time limit" in text and text.count("not run") == 1


def test_gradegrads_own_traceback_is_not_called_the_students():
    crash = CheckResult("gradcheck", "error", 0, 2, "internal error in gradegrad's gradcheck check (KeyError: 1)",
                        traceback='  File "gradegrad/checks/gradcheck.py", line 1\nKeyError: 1\n')
    ex = ExerciseResult("exp", "Exp", "error", 0, 2, (crash,))
    text = shown(Report("s.py", "cpu", 0, "all", 0, 2, (ex,)), width=100)
    assert "gradegrad's traceback, please report it" in text and "your traceback" not in text
