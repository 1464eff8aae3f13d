"""A course end to end, simulated: a student's Classroom repository, a TA's batch with a roster and
adjustments, and a Gradescope bundle run in a simulated container. Every output is read back by
its consumer's schema or parser, and the HTML gradebook is rendered in headless Chromium.

Kept small: four students, one two-exercise rubric.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser import chromium, dump_dom, screenshot
from conftest import EXAMPLES, FIXTURES
from gradegrad.cli import app
from gradegrad.report import Report

SCHEMAS = Path(__file__).resolve().parent / "schemas"
RUBRIC = "name: mini\ntitle: Mini lab\npoints: {found: 1, forward: 2, backward: 4, gradcheck: 2, hand_written: 0}\n" \
         "visibility: {gradcheck: after_due_date}\nexercises: [sigmoid, matvec]\n"
ROSTER = "id,name,email,section\ns1,Alice Liddell,alice@uni.edu,A\ns2,Bob Builder,bob@uni.edu,B\n" \
         "s3,José Ñúñez,jose@uni.edu,A\ns4,Dave Dir,dave@uni.edu,B\ns5,Erin Absent,erin@uni.edu,A\n"
ADJUSTMENTS = "student,exercise,points,comment\nbob@uni.edu,sigmoid,2,regrade: accepted\ns1,,-1,one day late\n"


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "120"})


def validate_junit(text: str) -> ET.Element:
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(SCHEMAS / "xunit2.xsd")).validate(text)
    return ET.fromstring(text)


def validate_results(data: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads((SCHEMAS / "gradescope_results.schema.json").read_text()))


class Students(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.rows = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr" and dict(attrs).get("data-student"):
            self.rows.append(dict(attrs)["data-student"])


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A TA's course repository: config, rubric, roster, adjustments and the students' submissions."""
    root = tmp_path_factory.mktemp("course")
    (root / ".git").mkdir()
    (root / "rubrics").mkdir()
    (root / "rubrics" / "mini.yaml").write_text(RUBRIC)
    subs = root / "submissions"
    subs.mkdir()
    shutil.copy(FIXTURES / "batch" / "alice.py", subs / "s1.py")  # right
    shutil.copy(FIXTURES / "batch" / "bob.py", subs / "bob.py")  # a sign error
    shutil.copy(EXAMPLES / "partial.py", subs / "jose.py")  # sign error, swapped gradients
    shutil.copytree(FIXTURES / "batch" / "dave", subs / "dave")  # a folder with a helper module
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    (root / "adjustments.csv").write_text(ADJUSTMENTS)
    (root / "pyproject.toml").write_text(
        '[tool.gradegrad]\nsubmissions = "submissions"\nrubric = "rubrics/mini.yaml"\nroster = "roster.csv"\n'
        'adjustments = "adjustments.csv"\nout = "grades"\nassignment = "Mini lab (77)"\njobs = 2\n')
    return root


def test_a_student_checks_their_classroom_repository(tmp_path, monkeypatch):
    repo = tmp_path / "mini-student"
    shutil.copytree(EXAMPLES / "classroom", repo)
    (repo / ".git").mkdir()
    shutil.copy(FIXTURES / "batch" / "bob.py", repo / "lab2.py")
    (repo / "gradegrad.toml").write_text('submission = "lab2.py"\nrubric = "lab1"\n')
    monkeypatch.chdir(repo)
    result = run("check", "-e", "sigmoid", "-e", "matvec", "--junit", "report.xml", "--json", "report.json",
                 "--html", "report.html")
    assert result.exit_code == 1 and "sign_error" in result.output
    suite = validate_junit((repo / "report.xml").read_text()).find("testsuite")
    assert suite.get("failures") != "0" and float(suite.get("time")) > 0
    assert Report.from_dict(json.loads((repo / "report.json").read_text())).rubric == "lab1"
    if shutil.which("chromium"):
        assert "sign_error" in dump_dom(repo / "report.html")


def test_a_ta_grades_with_a_roster_and_adjustments(course, monkeypatch):
    monkeypatch.chdir(course)
    first = run("grade")
    assert first.exit_code == 1, first.output
    out = course / "grades"
    for name in ("grades.csv", "grades.json", "report.html", "canvas.csv", "moodle.csv"):
        assert oct((out / name).stat().st_mode & 0o777) == "0o644", name
    again = run("grade")  # a regrade: every report from the cache, the adjustments applied again
    assert "reused 4 from the cache" in again.output
    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_bytes().decode("utf-8-sig"))))
    by = {g["name"] or g["id"]: g for g in grades}
    assert by["s1"]["total"] == "17" and by["s1"]["adjustments"] == "-1" and by["s1"]["student"] == "Alice Liddell"
    assert by["bob"]["sigmoid"] == str(3 + 2) and by["bob"]["id"] == "s2"
    assert by["jose"]["student"] == "José Ñúñez" and by["s5"]["status"] == "absent"
    reports = [Report.from_dict(d) for d in json.loads((out / "grades.json").read_text())]
    assert {r.max_score for r in reports} == {18}
    canvas = list(csv.reader(io.StringIO((out / "canvas.csv").read_bytes().decode("utf-8-sig"))))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Mini lab (77)"]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][-1] == "18"
    assert {r[2]: r[-1] for r in canvas[2:]} == {"s1": "17", "s2": by["bob"]["total"], "s3": by["jose"]["total"],
                                                 "s4": by["dave"]["total"], "s5": ""}
    moodle = list(csv.DictReader(io.StringIO((out / "moodle.csv").read_bytes().decode("utf-8-sig"))))
    assert {m["ID number"]: m["Mini lab (77)"] for m in moodle}["s1"] == "17"
    assert "regrade: accepted" in next(m for m in moodle if m["ID number"] == "s2")["Feedback"]
    assert "one day late" in (out / "feedback" / "s1.md").read_text()
    html = (out / "report.html").read_text()
    assert Students(html).rows == ["bob", "dave", "jose", "s1"]
    chromium()  # the rest needs the browser
    dom = dump_dom(out / "report.html")
    assert Students(dom).rows == ["bob", "dave", "jose", "s1"] and dom.count('<details class="student"') == 4
    png = screenshot(out / "report.html", course / "report.png")
    assert png.stat().st_size > 20_000


def test_a_gradescope_bundle_runs_in_a_simulated_container(course, tmp_path, monkeypatch):
    monkeypatch.chdir(course)
    made = run("gradescope", "bundle", "--module", "lab.py", "-o", tmp_path / "autograder.zip")
    assert made.exit_code == 0, made.output
    autograder = tmp_path / "autograder"
    with zipfile.ZipFile(tmp_path / "autograder.zip") as archive:
        archive.extractall(autograder / "source")
        assert "course/rubrics/mini.yaml" in archive.namelist()
    shutil.copytree(FIXTURES / "batch" / "dave", autograder / "submission")  # lab.py imports helpers.py
    env = {**os.environ, "AUTOGRADER": str(autograder), "GRADEGRAD_PYTHON": sys.executable, "NO_COLOR": "1"}
    done = subprocess.run(["bash", str(autograder / "source" / "run_autograder")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((autograder / "results" / "results.json").read_text())
    validate_results(data)
    dave = json.loads((course / "grades" / "grades.json").read_text())
    dave = next(d for d in dave if d["submission"].endswith("dave"))
    assert data["score"] == dave["score"]  # the container grades as the TA's batch did
    assert all(t["visibility"] == "after_due_date" for t in data["tests"] if t["name"].endswith(": gradcheck"))
