"""The red team's TA: a batch with hostile text, odd names and a roster; every output file is written,
nothing is a traceback, a cached rerun gives the same reports, and no spreadsheet cell is a formula."""

import csv
import io
import json
import shutil

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES
from gradegrad.cli import app

QA = FIXTURES / "qa"
ESCAPED = "eve\x1b[2J"
LONG = "é" * 120 + "ok"
ROSTER = "id,name,email,section\nmallory,Mallory,+mallory@uni.edu,-A\nalice,=HYPERLINK(\"x\"),alice@uni.edu,A\n"


def grade(*args):
    return CliRunner().invoke(app, ["grade", *map(str, args)], env={"NO_COLOR": "1", "COLUMNS": "120"})


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_course")
    subs = root / "subs"
    subs.mkdir()
    shutil.copy(QA / "surrogates.py", subs / "mallory.py")
    shutil.copy(QA / "right_einsum.py", subs / "alice.py")
    shutil.copy(QA / "lab_notebook.ipynb", subs / "alice.ipynb")  # a duplicate: the .py is graded
    shutil.copy(QA / "mistakes_a.py", subs / f"{ESCAPED}.py")
    shutil.copy(QA / "right_einsum.py", subs / f"{LONG}.py")  # 252 bytes: the longest name a file system takes
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    args = (subs, "--rubric", "lab1", "-e", "sigmoid", "-e", "dot", "--roster", root / "roster.csv",
            "--gradescope", "--jobs", "2", "--out")
    first = grade(*args, root / "out")
    cached = grade(*args, root / "out")
    return root, first, cached


def test_a_lone_surrogate_costs_no_report_file(course):
    root, first, cached = course
    assert first.exit_code == 1 and "Traceback" not in first.output, first.output
    out = root / "out"
    for name in ("grades.csv", "grades.json", "report.html", "canvas.csv", "moodle.csv"):
        (out / name).read_text(encoding="utf-8")  # written, and valid UTF-8
    assert {p.stem for p in (out / "feedback").iterdir()} >= {"mallory", "alice"}
    assert (out / "gradescope" / "mallory" / "results.json").is_file()
    mallory = next(r for r in json.loads((out / "grades.json").read_text()) if r["submission"].endswith("mallory.py"))
    dot = next(e for e in mallory["exercises"] if e["id"] == "dot")
    assert dot["score"] < dot["max_score"] and "\ufffd" in json.dumps(dot, ensure_ascii=False)
    assert "surrogate" in mallory["output"]["stdout"] and "\x1b" not in mallory["output"]["stdout"]


def test_check_writes_html_for_a_lone_surrogate(tmp_path):
    args = ["check", str(QA / "surrogates.py"), "-e", "dot", "--html", str(tmp_path / "r.html"),
            "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")]
    result = CliRunner().invoke(app, args, env={"NO_COLOR": "1"})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "\ufffd" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_a_cached_report_is_cleaned_like_a_fresh_one(course):
    root, first, cached = course
    assert "reused 4 from the cache" in cached.output
    reports = json.loads((root / "out" / "grades.json").read_text())
    assert not any("\x1b" in r["submission"] for r in reports)


def test_no_csv_cell_is_a_formula(course):
    root, *_ = course
    for name in ("grades.csv", "canvas.csv", "moodle.csv"):
        text = (root / "out" / name).read_text(encoding="utf-8-sig")
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t")), (name, row)
                assert not cell.startswith("-") or cell.lstrip("-").replace(".", "").isdigit(), (name, row)
    assert "'+mallory@uni.edu" in (root / "out" / "moodle.csv").read_text(encoding="utf-8-sig")


def test_the_longest_file_name_still_gets_its_feedback(course):
    """A 252-byte name used to crash `grade` when the feedback's temporary file name passed 255 bytes."""
    root, first, _ = course
    feedback = root / "out" / "feedback"
    long = [p for p in feedback.iterdir() if p.name.startswith("é" * 50)]
    assert len(long) == 1 and len(long[0].name.encode()) <= 255 and "ok" in first.output
    assert long[0].read_text(encoding="utf-8").startswith("# gradegrad: ")
    assert len(list((root / "out" / "gradescope").iterdir())) == 4


def test_the_page_says_what_was_not_graded(course):
    """A duplicate may be a student's real work: the terminal's summary named it, report.html did not."""
    root, *_ = course
    page = (root / "out" / "report.html").read_text(encoding="utf-8")
    assert "not graded: alice.ipynb: duplicate: alice.py is graded for alice" in page
