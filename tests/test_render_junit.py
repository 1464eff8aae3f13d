"""JUnit XML for CI test reporters: one testcase per check, and `check --junit`.

The XML is validated against tests/schemas/xunit2.xsd: the common xunit layout pytest writes with
junit_family=xunit2, as a schema written for these tests from the rules of Jenkins' junit-10.xsd.
"""

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import EXAMPLES
from gradegrad.cli import app
from gradegrad.render.junit import to_junit
from render_samples import load_error_report, partial_report, passed_report

XSD = Path(__file__).resolve().parent / "schemas" / "xunit2.xsd"


def valid(xml: str) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(XSD)).validate(xml)


def cases(xml: str):
    root = ET.fromstring(xml)
    return root, {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


def test_one_testcase_per_check_with_failures_errors_and_skips():
    root, by_id = cases(to_junit(partial_report()))
    assert len(by_id) == 10 and root.get("tests") == "10"
    suite = root.find("testsuite")
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("3", "1", "2")
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("3", "1", None)  # xunit2
    failure = by_id[("gradegrad.sigmoid", "backward")].find("failure")
    assert failure.get("type") == "sign_error"
    assert failure.get("message") == "0/4 points: the gradient of `x` has the wrong sign"
    assert "worst element: x[3] got -0.25, expected 0.25" in failure.text
    error = by_id[("gradegrad.sigmoid", "gradcheck")].find("error")
    assert "ValueError: <oops>" in error.get("message") and "return -grad_output * y" in error.text
    assert by_id[("gradegrad.sigmoid", "device")].find("skipped") is not None
    flag = by_id[("gradegrad.matvec", "hand_written")].find("skipped")
    assert flag.get("message").startswith("flag, worth no points")
    assert by_id[("gradegrad.conv1d", "found")].find("failure").get("type") == "missing"
    assert by_id[("gradegrad.sigmoid", "found")].find("*") is None  # passed: an empty testcase
    assert set(by_id[("gradegrad.sigmoid", "found")].attrib) == {"classname", "name", "time"}  # no `file`
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["submission"] == "subs/lab.py"


def test_score_is_a_suite_property_and_a_passing_report_has_no_failures():
    root, _ = cases(to_junit(passed_report()))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["score"] == "5" and props["max_score"] == "5" and props["rubric"] == "lab1"
    assert root.get("failures") == "0" and root.get("errors") == "0"


def test_a_load_error_is_one_error_testcase_and_control_characters_are_dropped():
    xml = to_junit(load_error_report())  # parses although the traceback held \x00 and colours
    valid(xml)
    root, by_id = cases(xml)
    load = by_id[("gradegrad", "load")].find("error")
    assert load.get("type") == "load" and "RuntimeError: nope" in load.text and "\x1b" not in load.text
    assert root.get("errors") == "3"


@pytest.mark.parametrize("report", [partial_report(), passed_report(), load_error_report()])
def test_every_report_validates_against_the_xunit2_schema(report):
    valid(to_junit(report))


def test_times_are_the_checks_own_with_three_decimals():
    sigmoid = partial_report().exercises[0]
    timed = replace(sigmoid, checks=tuple(replace(c, seconds=0.25 * (i + 1) + 0.00041)
                                          for i, c in enumerate(sigmoid.checks)))
    xml = to_junit(replace(partial_report(), exercises=(timed,)))
    valid(xml)
    root, by_id = cases(xml)
    assert by_id[("gradegrad.sigmoid", "forward")].get("time") == "0.500"
    assert root.find("testsuite").get("time") == root.get("time") == "3.752"


def test_the_schema_refuses_what_xunit2_does_not_allow():
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(XSD))
    bad_file = '<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="t" file="x.py" time="0"/></testsuite></testsuites>'
    bad_skipped = '<testsuites skipped="0"><testsuite name="s" tests="0" failures="0" errors="0"/></testsuites>'
    bad_time = '<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="t" time="0.12345"/></testsuite></testsuites>'
    for xml in (bad_file, bad_skipped, bad_time):
        assert not schema.is_valid(xml), xml


def test_check_junit_writes_the_report(tmp_path):
    path = tmp_path / "report.xml"
    result = CliRunner().invoke(app, ["check", str(EXAMPLES / "partial.py"), "-e", "sigmoid", "-e", "conv1d",
                                      "--rubric", "all", "--junit", str(path)], env={"NO_COLOR": "1"})
    assert result.exit_code == 1, result.output
    valid(path.read_text())
    root, by_id = cases(path.read_text())
    assert any(float(c.get("time")) > 0 for c in by_id.values())  # real times, recorded where checks run
    assert by_id[("gradegrad.sigmoid", "backward")].find("failure").get("type") == "sign_error"
    assert by_id[("gradegrad.conv1d", "found")].find("failure").get("message").endswith("no class Conv1d in the submission")
    assert int(root.get("tests")) == len(by_id) > 10
    assert "::error" not in result.output  # annotations only in GitHub Actions


def test_each_failing_check_is_a_failure_with_its_own_reason():
    import xml.etree.ElementTree as ET

    from gradegrad.render.junit import to_junit
    from render_samples import non_finite_report

    suite = ET.fromstring(to_junit(non_finite_report())).find("testsuite")
    failures = {c.get("name"): c.find("failure") for c in suite.findall("testcase")
                if c.get("classname") == "gradegrad.softmax" and c.find("failure") is not None}
    assert set(failures) == {"stability", "efficiency"}
    assert failures["stability"].get("type") == "not_finite" and "nan/inf" in failures["stability"].get("message")
    assert failures["efficiency"].get("type") == "inefficient_backward" and "n^2.00" in failures["efficiency"].text


def test_code_that_raised_while_its_classes_were_graded_is_the_suites_stderr():
    """A notebook cell that raised (its classes graded all the same) shows in CI's test report."""
    from gradegrad.report import LoadProblem

    problems = (LoadProblem("lab.ipynb", 3, 9, "exception", "NameError: name 'model' is not defined",
                            '  File "lab.ipynb", cell 9, line 3, in <module>\n    model.fit()\n'),
                LoadProblem("lab.ipynb", None, 11, "timeout", "the cell ran past --load-timeout\x1b[2J"))
    xml = to_junit(replace(partial_report(), load_problems=problems))
    valid(xml)
    err = ET.fromstring(xml).find("testsuite/system-err").text
    assert "lab.ipynb, cell 9: NameError: name 'model' is not defined" in err and "model.fit()" in err
    assert "lab.ipynb, cell 11: the cell ran past --load-timeout" in err and "\x1b" not in err
    assert ET.fromstring(to_junit(partial_report())).find("testsuite/system-err") is None
