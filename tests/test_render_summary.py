"""The summary a TA reads after `gradegrad grade`, from a hand-built batch."""

import io
from pathlib import Path

from rich.console import Console

from gradegrad.render.summary import render_summary
from gradegrad.stats import histogram, summarize
from gradegrad.intake import Skipped
from render_samples import sample_batch


def test_histogram_bins_by_percent():
    bins = dict(histogram([0, 9.9, 10, 55, 100]))
    assert bins["0-10%"] == 2 and bins["10-20%"] == 1 and bins["50-60%"] == 1 and bins["90-100%"] == 1


def test_summary_numbers():
    s = summarize(sample_batch())
    assert s.students == 4 and s.passed_all == 1
    sigmoid = s.rates[0]
    assert sigmoid.exercise == "sigmoid" and (sigmoid.overall.passed, sigmoid.overall.total) == (0, 2)  # cy did not load
    assert dict(sigmoid.checks)["found"].passed == 2 and dict(sigmoid.checks)["backward"].passed == 0
    assert [(m.exercise, m.check, m.diagnosis, m.students) for m in s.mistakes] == [
        ("matvec", "hand_written", "uses_autograd", ("ann", "=cmd|' /C calc'!A0")),  # a flag counts too
        ("conv1d", "found", "missing", ("=cmd|' /C calc'!A0",)),
        ("sigmoid", "backward", "sign_error", ("=cmd|' /C calc'!A0",))]
    assert [(t.name, t.status) for t in s.troubles] == [("cy", "error"), ("dee", "timeout")]
    assert "sigmoid: time limit" in s.troubles[1].reason


def render(result):
    out = io.StringIO()
    render_summary(result, summarize(result), [Path("grades/grades.csv")], Console(file=out, width=100))
    return out.getvalue()


def test_rendered_summary_reads_well():
    text = render(sample_batch())
    assert "gradegrad grade subs  rubric lab1 · 3 exercise(s) · 4 student(s)" in text
    assert "Scores (percent of the maximum)" in text and "mean" in text and "1 of 4 passed every check" in text
    assert "Pass rates, among the students whose code loaded" in text
    assert "sign_error: the result has the wrong sign" in text
    assert "cy" in text and "importing the submission raised RuntimeError: no" in text
    assert "Wrote grades/grades.csv" in text and "1 of 4 student(s) passed every check" in text


def test_each_common_mistake_a_manifest_names_counts_apart_in_its_own_words():
    from dataclasses import replace
    from render_samples import graded
    from gradegrad.report import CheckResult, ExerciseResult, Report

    def report(says: str) -> Report:
        backward = CheckResult("backward", "failed", 0, 4, f"the gradient of `x` is what a common mistake gives: {says}",
                               "known_mistake")
        ex = ExerciseResult("sigmoid", "Sigmoid", "failed", 1, 5, (CheckResult("found", "passed", 1, 1), backward), "")
        return Report("subs/s.py", "cpu", 0, "lab1", 1, 5, (ex,), gradegrad_version="0.1.0")

    one_plus, of_x = "y (1 + y) in place of y (1 - y)", "x (1 - x): of the output y, not the input x"
    result = replace(sample_batch(), graded=(graded("eve", report(one_plus)), graded("fay", report(of_x)),
                                             graded("gus", report(one_plus))))
    assert [(m.exercise, m.diagnosis, m.says, m.students) for m in summarize(result).mistakes] == [
        ("sigmoid", "known_mistake", one_plus, ("eve", "gus")), ("sigmoid", "known_mistake", of_x, ("fay",))]
    text = render(result)
    assert f"known_mistake: {one_plus}" in text and "known_mistake: x (1 - x)" in text


def test_skipped_entries_and_identical_submissions_are_listed():
    from dataclasses import replace
    result = replace(sample_batch(), skipped=(Skipped(Path("subs/notes.txt"), "stray file"),),
                     identical=(("ann", "bea"),))
    text = render(result)
    assert "notes.txt: stray file" in text and "Identical submissions: ann, bea" in text
