"""The result model with numbers that are not finite (nan, ±inf): every writer still writes, and
every reader gets the same numbers back."""

import io
import json
import math
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from gradegrad.batch import BatchResult
from gradegrad.cache import ResultCache
from gradegrad.course import Gradebook
from gradegrad.render.csv_report import to_csv
from gradegrad.render.github import annotations, publish
from gradegrad.render.gradebook import write_gradebook
from gradegrad.render.gradescope import to_gradescope_json
from gradegrad.render.json_report import to_json, write_json
from gradegrad.render.junit import to_junit
from gradegrad.render.markdown import to_markdown
from gradegrad.render.scorecard import render_scorecard
from gradegrad.report import Report, json_safe, number
from gradegrad.workers import _line, _parse
from render_samples import graded, load_error_report, non_finite_report, partial_report


def worsts(report: Report) -> list[tuple[float, float]]:
    return [(c.worst.got, c.worst.expected) for e in report.exercises for c in e.checks if c.worst]


def same_numbers(a: Report, b: Report) -> bool:
    """nan != nan, so compare what the JSON says."""
    return json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_non_finite_numbers_are_written_as_strings_and_read_back_as_floats():
    report = non_finite_report()
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert '"got": "nan"' in text and '"got": "inf"' in text and '"got": "-inf"' in text
    back = Report.from_dict(json.loads(text))
    got = [g for g, _ in worsts(back)]
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf
    assert same_numbers(report, back) and back.score == 19


def test_helpers_map_every_non_finite_number_and_only_those():
    assert json_safe({"a": [1.5, float("nan"), (float("-inf"),)], "b": "inf"}) == {"a": [1.5, "nan", ["-inf"]], "b": "inf"}
    assert number("inf") == math.inf and number(2) == 2 and number(0.5) == 0.5
    with pytest.raises(ValueError):
        number("lots")


def test_check_json_writes_standard_json(tmp_path):
    path = tmp_path / "report.json"
    write_json(non_finite_report(), path)
    assert json.loads(path.read_text())["exercises"][0]["checks"][2]["worst"]["got"] == "nan"
    assert to_json(non_finite_report()).count('"inf"') == 1


def test_gradebook_writes_every_file(tmp_path):
    result = BatchResult("subs", "lab2", ("softmax", "sigmoid"), (graded("ann", non_finite_report()),))
    write_gradebook(Gradebook(result, 22.0, "lab2"), tmp_path, gradescope=True)
    assert json.loads((tmp_path / "grades.json").read_text())[0]["score"] == 19
    assert "ann,19,22" in (tmp_path / "grades.csv").read_text()
    assert "got nan, expected 0.25" in (tmp_path / "feedback" / "ann.md").read_text()
    scored = json.loads((tmp_path / "gradescope" / "ann" / "results.json").read_text())
    assert scored["score"] == 19 and any("got inf" in t["output"] for t in scored["tests"])
    assert to_csv(result).splitlines()[1].startswith("ann,19,22,10,9,")


def test_markdown_junit_and_gradescope_show_the_values():
    report = non_finite_report()
    md = to_markdown(report)
    assert "got nan, expected 0.25" in md and "a flag" in md
    suite = ET.fromstring(to_junit(report)).find("testsuite")
    failures = [c.find("failure") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert any("got inf, expected 0" in f.text for f in failures)
    assert "got nan" in to_gradescope_json(report) and "got -inf, expected 1.5" in to_gradescope_json(report)


def test_github_annotations_and_summary(tmp_path):
    report = non_finite_report()
    lines = annotations(report, {}, "subs/unstable.py")
    assert len(lines) == 2 and "not_finite" in lines[0]
    summary = tmp_path / "summary.md"
    out = io.StringIO()
    publish(report, {}, "subs/unstable.py", out, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert "::error" in out.getvalue() and "got nan" in summary.read_text()


def test_worker_json_lines_carry_the_report_across():
    report = non_finite_report()
    line = _line(3, report, True, 1.25)
    assert line.endswith(b"\n") and b"NaN" not in line
    index, done = _parse([None] * 4, line.rstrip(b"\n"))
    assert index == 3 and done.keep and same_numbers(done.report, report)


def test_cache_keeps_the_report(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put("k", non_finite_report())
    back = cache.get("k")
    assert back is not None and same_numbers(back, non_finite_report())


def test_scorecard_renders(monkeypatch):
    out = io.StringIO()
    render_scorecard(non_finite_report(), Console(file=out, width=100, no_color=True))
    assert "not_finite" in out.getvalue() and "19/22" in out.getvalue()


@pytest.mark.parametrize("name", ["complete", "sign_error", "not_finite", "prints", "raises_at_import", "wrong_shape"])
def test_a_report_s_json_line_is_the_one_its_copy_in_another_grading_process_writes(graded, name):
    """A grading process sends a report as its `json_line`; the grader writes that very text to the
    cache and grades.json. It is the text the grader would have made itself: reading it back and
    writing it again changes nothing, whatever the report holds."""
    from conftest import EXAMPLES, SUBMISSIONS

    report = graded(EXAMPLES / "complete.py" if name == "complete" else SUBMISSIONS / f"{name}.py")
    back = Report.from_json_line(report.json_line)
    assert back == report or same_numbers(back, report)  # (nan != nan)
    assert Report.from_dict(json.loads(report.json_line)).json_line == report.json_line
    assert json.loads(report.json_line) == json.loads(json.dumps(report.to_dict(), allow_nan=False, default=str))


@pytest.mark.parametrize("report", [non_finite_report(), partial_report(), load_error_report()])
def test_a_grading_process_s_line_gives_the_gradebook_and_the_cache_the_report_s_own_text(tmp_path, report):
    from pathlib import Path

    from gradegrad.intake import SubmissionSource

    sources = [SubmissionSource("ann", Path("ann.py"), "file")]
    index, done = _parse(sources, _line(0, report, True, 0.5).rstrip(b"\n"))
    assert (index, done.keep) == (0, True) and same_numbers(done.report, report)
    assert done.report.json_line == json.dumps(report.to_dict(), allow_nan=False, default=str)
    ResultCache(tmp_path).put("k", done.report)
    write_gradebook(Gradebook(BatchResult("subs", "lab", ("sigmoid",), (graded("ann", done.report),)), 22.0, "lab"),
                    tmp_path / "out")
    assert (tmp_path / "k.json").read_text() == done.report.json_line
    assert json.loads((tmp_path / "out" / "grades.json").read_text()) == [json.loads(done.report.json_line)]
