"""Manual adjustments: read, matched to submissions (or through the roster), applied after grading."""

import pytest

from gradegrad.adjustments import apply, assign, parse_adjustments
from gradegrad.errors import ConfigError
from gradegrad.roster import match, parse_roster
from render_samples import partial_report

EXERCISES = ("sigmoid", "matvec", "conv1d")


def test_rows_are_applied_to_the_exercise_and_the_total():
    rows = parse_adjustments("student,exercise,points,comment\nann,sigmoid,2,regrade\nann,,-1.5,late\n", EXERCISES)
    applied = assign(rows, ["ann", "bo"], None)
    report = apply(partial_report(), applied.by_submission["ann"])
    assert report.score == 8 + 2 - 1.5 and [a.comment for a in report.adjustments] == ["regrade", "late"]
    assert next(e for e in report.exercises if e.id == "sigmoid").score == 3 + 2
    assert report.max_score == 17 and report.passed == partial_report().passed  # maxima and verdicts unchanged
    again = report.from_dict(report.to_dict())
    assert again == report  # adjustments travel in grades.json


def test_students_are_found_through_the_roster_and_absent_ones_reported():
    roster = match(parse_roster("id,name,email\nu1,Ann,ann@uni.edu\nu2,Zed,zed@uni.edu\n"), ["ann"])
    rows = parse_adjustments("student,points,comment\nu1,1,bonus\nzed@uni.edu,3,excused\n", EXERCISES)
    applied = assign(rows, ["ann"], roster)
    assert [a.points for a in applied.by_submission["ann"]] == [1.0]
    assert applied.not_applied == (("zed@uni.edu", "no submission"),)


@pytest.mark.parametrize("text,words", [
    ("student,points\n,1\n", "adjustments.csv:2: student: empty"),
    ("student,exercise,points\nann,sigmod,1\n", "adjustments.csv:2: exercise: 'sigmod' is not graded by this rubric "
                                                "(did you mean 'sigmoid'?"),
    ("student,points\nann,two\n", "adjustments.csv:2: points: expected a number"),
    ("student,points\nann,nan\n", "adjustments.csv:2: points: expected a finite number"),
    ("who,points\nann,1\n", "adjustments.csv:1: missing column 'student'"),
])
def test_mistakes_name_the_file_and_line(text, words):
    with pytest.raises(ConfigError) as info:
        parse_adjustments(text, EXERCISES)
    assert words in str(info.value)


def test_a_student_who_is_nobody_is_an_error_with_a_guess():
    rows = parse_adjustments("student,points\nanne,1\n", EXERCISES)
    with pytest.raises(ConfigError, match=r"adjustments.csv:2: student: 'anne' is neither a submission nor a student "
                                          r"of the roster \(did you mean 'ann'\?\)"):
        assign(rows, ["ann"], None)


def test_a_spreadsheets_semicolons_and_decimal_commas_are_read():
    rows = parse_adjustments("\ufeffstudent;exercise;points;comment\r\nann;sigmoid;1,5;regrade, accepted\r\n", EXERCISES)
    assert [(r.student, r.adjustment.points, r.adjustment.comment) for r in rows] == [("ann", 1.5, "regrade, accepted")]


def test_reading_a_missing_binary_or_huge_adjustments_file_is_one_line(tmp_path):
    from gradegrad.adjustments import read_adjustments

    with pytest.raises(ConfigError, match="adjustments file not found"):
        read_adjustments(tmp_path / "none.csv", ["add"])
    (tmp_path / "a.csv").write_bytes(b"student,exercise,points\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8 text: save the adjustments file as CSV UTF-8"):
        read_adjustments(tmp_path / "a.csv", ["add"])
    with open(tmp_path / "big.csv", "wb") as fh:
        fh.truncate(11 << 20)
    with pytest.raises(ConfigError, match="larger than 10 MiB: is this the adjustments file"):
        read_adjustments(tmp_path / "big.csv", ["add"])
