"""A .py whose imports fail on the grading machine is run statement by statement, as a notebook's cells:
a grade does not depend on the grading machine's packages."""

from conftest import FIXTURES, SUBMISSIONS, check, exercise
from gradegrad.batch import grade_source
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.intake import source_for
from gradegrad.intake.statements import statement_source
from gradegrad.options import Options

QA = FIXTURES / "qa"


def _graded(catalog, path, exercises=()):
    rubric = select_exercises(resolve_rubric("lab1", catalog), exercises, catalog)
    return grade_source(source_for(path), rubric, catalog, Options())


def test_a_missing_package_costs_only_its_lines(catalog):
    report = _graded(catalog, QA / "imports_missing.py", ("sigmoid", "dot"))
    assert exercise(report, "sigmoid").status == "passed"
    assert check(report, "dot", "backward").diagnosis == "sign_error"  # graded like any other class
    assert [(p.where, p.message) for p in report.load_problems] == [
        ("imports_missing.py, line 5",
         "ModuleNotFoundError: No module named 'plotting_utils_from_the_students_laptop'"),
        ("imports_missing.py, line 9", "NameError: name 'plots' is not defined")]
    assert report.error is None and any("run statement by statement" in n for n in report.notes)


def test_other_errors_before_the_classes_still_stop_the_file(catalog):
    report = _graded(catalog, SUBMISSIONS / "raises_before_classes.py", ("add",))
    assert report.error.startswith("importing the submission raised FileNotFoundError")


def test_statements_keep_their_lines_and_decorators(tmp_path):
    path = tmp_path / "lab.py"
    path.write_text("import a_missing_package\n\n@decorate\nclass A:\n    pass\n\n\ndef f():\n    return 1\n")
    split, code = statement_source(source_for(path))
    assert [(s.origin, s.origin_first) for s in split.segments] == [("lab.py", 1), ("lab.py", 3), ("lab.py", 8)]
    path.write_text("import a_missing_package\ndef (:\n")
    assert statement_source(source_for(path)) is None  # Python's own SyntaxError stands
