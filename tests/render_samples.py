"""Hand-built reports for the writers' tests: every status a writer must show, no child process."""

from __future__ import annotations

from gradegrad.batch import BatchResult, Graded, student_status
from gradegrad.report import CheckResult, ExerciseResult, Report, StudentOutput, Worst

SIGMOID_TRACE = '  File "lab.py", line 12, in backward\n    return -grad_output * y\n'


def sigmoid_failed() -> ExerciseResult:
    checks = (
        CheckResult("found", "passed", 1, 1),
        CheckResult("forward", "passed", 2, 2),
        CheckResult("backward", "failed", 0, 4, "the gradient of `x` has the wrong sign", "sign_error",
                    Worst("x", (3,), -0.25, 0.25)),
        CheckResult("gradcheck", "error", 0, 2, "backward raised ValueError: <oops> | bad", traceback=SIGMOID_TRACE),
        CheckResult("device", "skipped", 0, 0, "runs with --device cuda"),
    )
    return ExerciseResult("sigmoid", "Sigmoid", "failed", 3, 9, checks, "y (1 - y) is the derivative.")


def matvec_flagged() -> ExerciseResult:
    checks = (
        CheckResult("found", "passed", 1, 1),
        CheckResult("backward", "passed", 4, 4),
        CheckResult("hand_written", "failed", 0, 0, "backward asks autograd for the gradient", "uses_autograd"),
    )
    return ExerciseResult("matvec", "MyMatVec", "passed", 5, 5, checks, "An outer product.")


def conv1d_missing() -> ExerciseResult:
    checks = (CheckResult("found", "failed", 0, 1, "no class Conv1d in the submission", "missing"),
              CheckResult("forward", "failed", 0, 2, "no class Conv1d in the submission", "missing"))
    return ExerciseResult("conv1d", None, "missing", 0, 3, checks, "A correlation.", "did you mean Conv? rename it Conv1d")


def partial_report(submission: str = "subs/lab.py") -> Report:
    output = StudentOutput("hello <b>|x|</b>\n```\nthree backticks above\n", "", False)
    return Report(submission, "cpu", 0, "lab1", 8, 17, (sigmoid_failed(), matvec_flagged(), conv1d_missing()),
                  output, ("a note from the grader",), gradegrad_version="0.1.0")


def passed_report(submission: str = "subs/ok.py") -> Report:
    return Report(submission, "cpu", 0, "lab1", 5, 5, (matvec_flagged(),), gradegrad_version="0.1.0")


def load_error_report(submission: str = "subs/broken.py") -> Report:
    failed = ExerciseResult("sigmoid", None, "error", 0, 9, (
        CheckResult("found", "error", 0, 1, "not run: the submission could not be imported"),
        CheckResult("backward", "error", 0, 4, "not run: the submission could not be imported")))
    trace = f'  File "{submission}", line 7, in <module>\n    boom()\n\x1b[31mRuntimeError\x1b[0m: no\x00pe\n'
    return Report(submission, "cpu", 0, "lab1", 0, 9, (failed,), error="importing the submission raised RuntimeError: no",
                  error_traceback=trace, gradegrad_version="0.1.0")


def timeout_report(submission: str = "subs/slow.py") -> Report:
    slow = ExerciseResult("sigmoid", "Sigmoid", "timeout", 1, 9, (
        CheckResult("found", "passed", 1, 1),
        CheckResult("backward", "error", 0, 4, "time limit: backward did not finish within 3 s")))
    return Report(submission, "cpu", 0, "lab1", 1, 9, (slow,), gradegrad_version="0.1.0")


def non_finite_report(submission: str = "subs/unstable.py") -> Report:
    """Overflowing code: worst elements that are nan, inf and -inf (what `not_finite` reports)."""
    nan, inf = float("nan"), float("inf")
    softmax = ExerciseResult("softmax", "Softmax", "failed", 10, 12, (
        CheckResult("found", "passed", 1, 1),
        CheckResult("forward", "passed", 2, 2),
        CheckResult("stability", "failed", 0, 1, "case 'large': the output has 7 nan/inf value(s)", "not_finite",
                    Worst("output", (0,), nan, 0.25)),
        CheckResult("efficiency", "failed", 0, 1, "backward allocates memory that grows as n^2.00",
                    "inefficient_backward")), "Subtract the maximum.")
    sigmoid = ExerciseResult("sigmoid", "Sigmoid", "failed", 9, 10, (
        CheckResult("found", "passed", 1, 1),
        CheckResult("stability", "failed", 0, 1, "case 'large': the gradient of `x` has 2 nan/inf value(s)",
                    "not_finite", Worst("x", (2,), inf, 0.0)),
        CheckResult("backward", "failed", 0, 0, "a flag", "not_finite", Worst("x", (1,), -inf, 1.5))),
        "y (1 - y).")
    return Report(submission, "cpu", 0, "lab2", 19, 22, (softmax, sigmoid), gradegrad_version="0.1.0")


def graded(name: str, report: Report, invalid: bool = False) -> Graded:
    return Graded(name, "file", report, student_status(report, invalid))


def sample_batch() -> BatchResult:
    return BatchResult("subs", "lab1", ("sigmoid", "matvec", "conv1d"), (
        graded("ann", passed_report()),
        graded("=cmd|' /C calc'!A0", partial_report()),
        graded("cy", load_error_report()),
        graded("dee", timeout_report()),
    ), seconds=1.5)
