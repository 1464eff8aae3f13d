"""One maximum per rubric and device: list, show, check, grade and every writer agree on it."""

import json
import re

import pytest
from typer.testing import CliRunner

from conftest import EXAMPLES, SUBMISSIONS
from gradegrad.catalog import load_catalog, load_rubric
from gradegrad.cli import app
from gradegrad.points import maximum, rubric_maximum

RUBRIC = """\
name: devices
points: {found: 1, forward: 2, backward: 4, gradcheck: 2, stability: 1, device: 3, hand_written: 0}
exercises: [sigmoid, {id: matvec, points: {device: 5}}]
"""


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "200"})


def points_column(listing: str) -> dict:
    """id -> points, from `gradegrad list`'s table (columns are two spaces apart)."""
    rows = [re.split(r"\s{2,}", line) for line in listing.splitlines()[1:-1]]
    return {row[0]: float(row[3]) for row in rows}


@pytest.fixture(scope="module")
def rubric(tmp_path_factory):
    path = tmp_path_factory.mktemp("rubric") / "devices.yaml"
    path.write_text(RUBRIC)
    return path


def test_device_points_count_only_on_cuda(rubric):
    catalog = load_catalog()
    r = load_rubric(rubric, catalog)
    assert rubric_maximum(r, catalog, "cpu") == (10 + 9) and rubric_maximum(r, catalog, "cuda") == (13 + 14)
    assert maximum(catalog["matvec"], r.items[1], "cpu") == 9  # no stability case: those points never count


def test_list_show_check_and_grade_agree_on_cpu(rubric, tmp_path):
    listed = run("list", "--rubric", rubric)
    assert listed.exit_code == 0 and listed.output.splitlines()[-1].startswith("total 19 points on cpu (27 on cuda")
    assert points_column(listed.output) == {"sigmoid": 10, "matvec": 9}
    shown = run("show", "sigmoid", "--rubric", rubric)
    assert "(rubric devices; 10 points on cpu)" in shown.output and "device            (3)  skipped on cpu" in shown.output
    cuda = run("show", "sigmoid", "--rubric", rubric, "--device", "cuda")
    assert "(rubric devices; 13 points on cuda)" in cuda.output
    report = tmp_path / "r.json"
    checked = run("check", EXAMPLES / "complete.py", "--rubric", rubric, "--json", report)
    assert checked.exit_code == 0 and json.loads(report.read_text())["max_score"] == 19
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, source in (("ok", EXAMPLES / "complete.py"), ("raises", SUBMISSIONS / "raises_at_import.py"),
                         ("near", SUBMISSIONS / "near_miss.py"), ("empty", None)):
        (subs / f"{name}.py").write_text(source.read_text() if source else "")
    graded = run("grade", subs, "--rubric", rubric, "--out", tmp_path / "out", "-j", "1")
    assert graded.exit_code == 1, graded.output
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert {d["max_score"] for d in data} == {19}  # loaded, not importable, class not found, not gradable
    for d in data:
        for e in d["exercises"]:
            device = next(c for c in e["checks"] if c["id"] == "device")
            assert device["status"] == "skipped" and device["max_points"] == 0


def test_the_builtin_lab2_total_is_what_check_gives(graded):
    listed = run("list", "--rubric", "lab2")
    column = points_column(listed.output)
    total = float(listed.output.splitlines()[-1].split()[1])
    assert sum(column.values()) == total
    report = graded(EXAMPLES / "complete.py", rubric="lab2")
    assert report.max_score == total and {e.id: e.max_score for e in report.exercises} == column
