"""The Markdown scorecard: what a student reads in feedback/<name>.md, a job summary or Gradescope."""

from gradegrad.render.markdown import code_block, inline, to_markdown
from render_samples import load_error_report, partial_report, passed_report


def test_title_total_and_table():
    md = to_markdown(partial_report(), "ann")
    assert md.startswith("# gradegrad: ann\n")
    assert "**Total 8/17**: some checks did not pass" in md and "rubric `lab1` · device cpu · seed 0" in md
    assert "| sigmoid | Sigmoid | ❌ failed | 3/9 |" in md and "| conv1d | - | ➖ missing | 0/3 |" in md


def test_failing_exercise_has_diagnosis_worst_element_traceback_and_lesson():
    md = to_markdown(partial_report())
    assert "### sigmoid: ❌ failed, 3/9" in md
    assert "- ❌ failed `backward` 0/4: the gradient of `x` has the wrong sign" in md
    assert "**Diagnosis** `sign_error`: the result has the wrong sign. Largest difference at `x[3]`: got -0.25, " \
           "expected 0.25." in md
    assert "Your traceback (gradcheck):" in md and "return -grad_output * y" in md
    assert "> y (1 - y) is the derivative." in md
    assert "device" not in md.split("### sigmoid")[1].split("###")[0]  # a skipped check is not listed


def test_a_flag_and_a_missing_class_read_as_such():
    md = to_markdown(partial_report())
    assert "`hand_written` 0/0 (a flag: worth no points): backward asks autograd for the gradient" in md
    section = md.split("### conv1d")[1]
    assert "**Hint**: did you mean Conv? rename it Conv1d" in section and "no class Conv1d in the submission" in section
    assert section.count("no class Conv1d") == 1


def test_student_text_cannot_break_the_page():
    md = to_markdown(partial_report())
    assert "backward raised ValueError: &lt;oops&gt; \\| bad" in md  # escaped in a list item
    fence = "````"  # longer than the three backticks the student printed
    assert f"{fence}text\nhello <b>|x|</b>\n```\nthree backticks above\n{fence}" in md
    assert inline("a\n  b | <i>") == "a b \\| &lt;i&gt;"
    assert code_block("x ````` y").startswith("``````\n")


def test_load_error_shows_the_traceback_and_no_exercise_details():
    md = to_markdown(load_error_report())
    assert "## Your submission could not be loaded" in md and "importing the submission raised RuntimeError" in md
    assert "boom()" in md and "### sigmoid" not in md and "| sigmoid | - | 💥 error | 0/9 |" in md


def test_a_passed_report_says_so_and_notes_follow():
    assert "**Total 5/5**: all checks passed" in to_markdown(passed_report())
    assert "_a note from the grader_" in to_markdown(partial_report())


def test_each_failing_check_says_its_reason_and_code():
    from render_samples import non_finite_report

    md = to_markdown(non_finite_report())
    assert "- ❌ failed `stability` 0/1: case 'large': the output has 7 nan/inf value(s) `not_finite`" in md
    assert "- ❌ failed `efficiency` 0/1: backward allocates memory that grows as n^2.00 `inefficient_backward`" in md


def test_a_note_on_a_passed_check_is_shown():
    from gradegrad.report import CheckResult, ExerciseResult, Report

    note = CheckResult("float32", "passed", 1, 1, "the gradient of `x` is float64 for a float32 input", "wrong_dtype")
    md = to_markdown(Report("s.py", "cpu", 0, "all", 1, 1, (ExerciseResult("exp", "Exp", "passed", 1, 1, (note,)),)))
    assert "- ✅ passed `float32` 1/1 (note: the gradient of `x` is float64 for a float32 input `wrong_dtype`)" in md
