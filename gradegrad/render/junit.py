"""`--junit FILE`: one testcase per check, for GitLab, Jenkins and GitHub test reporters.

A failed check is a `<failure>`, a check the student's code crashed or hung in is an `<error>`,
a check that does not apply here (device on cpu) or a failed flag worth no points is
`<skipped>`: the XML agrees with the exit code, which only counts checks worth points.

The layout is pytest's `junit_family=xunit2`, which the common xunit schema (Jenkins' junit-10.xsd)
accepts: a testcase has only `classname`, `name` and `time` (no `file`), `<testsuites>` has no
`skipped`, times are seconds with three decimals (what each check took in the grader). The
submission's path and the score are properties of the suite. tests/schemas/xunit2.xsd checks it.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from gradegrad.render.files import write_text_atomic
from gradegrad.report import CheckResult, ExerciseResult, Report

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def xml_text(text: str | None) -> str:
    """Text XML 1.0 can hold: colour codes and control characters from the student's output dropped."""
    return _NOT_XML.sub("", ANSI.sub("", text or ""))


def _verdict(check: CheckResult) -> tuple[str, str] | None:
    """(element, type) for a check that did not pass, None when it passed."""
    if check.status == "passed":
        return None
    if check.status == "skipped" or (check.status == "failed" and check.max_points == 0):
        return "skipped", ""
    return ("error" if check.status == "error" else "failure"), check.diagnosis or check.status


def _details(ex: ExerciseResult, check: CheckResult) -> str:
    parts = [check.message]
    if check.diagnosis:
        parts.append(f"diagnosis: {check.diagnosis}")
    if check.worst is not None:
        w = check.worst
        parts.append(f"worst element: {w.input}{list(w.index)} got {w.got:.6g}, expected {w.expected:.6g}")
    if ex.hint:
        parts.append(ex.hint)
    if check.traceback:
        parts.append(check.traceback)
    return "\n".join(p for p in parts if p)


def _testcase(report: Report, ex: ExerciseResult, check: CheckResult) -> ET.Element:
    case = ET.Element("testcase", classname=f"gradegrad.{ex.id}", name=check.id, time=seconds(check.seconds))
    verdict = _verdict(check)
    if verdict is not None:
        kind, type_ = verdict
        label = "flag, worth no points: " if kind == "skipped" and check.status == "failed" else ""
        points = f"{check.points:g}/{check.max_points:g} points: " if kind != "skipped" else ""
        attrs = {"message": xml_text(points + label + (check.message or check.status))[:1000]}
        if type_:
            attrs["type"] = type_
        ET.SubElement(case, kind, attrs).text = xml_text(_details(ex, check)) if kind != "skipped" else None
    return case


def _load_case(report: Report) -> ET.Element:
    """A submission that could not be loaded, shown as one failing testcase."""
    case = ET.Element("testcase", classname="gradegrad", name="load", time=seconds(0.0))
    if report.error is not None:
        ET.SubElement(case, "error", message=xml_text(report.error)[:1000], type="load").text = \
            xml_text(report.error_traceback or report.error)
    elif not report.exercises:
        ET.SubElement(case, "failure", message=xml_text("; ".join(report.notes) or "nothing was graded"))
    return case


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    for kind, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(c.find(kind) is not None for c in cases)))
    suite.set("tests", str(len(cases)))


def seconds(value: float) -> str:
    """Seconds as the xunit schema wants them: a plain decimal with at most three digits after the point."""
    return f"{max(0.0, value):.3f}"


def to_junit(report: Report, timestamp: datetime | None = None, hostname: str | None = None) -> str:
    took = seconds(sum(c.seconds for ex in report.exercises for c in ex.checks))
    when = (timestamp or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    suite = ET.Element("testsuite", name=xml_text(f"gradegrad {report.submission}"), errors="0", failures="0",
                       skipped="0", tests="0", time=took, timestamp=when,
                       hostname=xml_text(hostname if hostname is not None else socket.gethostname()))
    props = ET.SubElement(suite, "properties")
    for key, value in (("submission", report.submission), ("score", f"{report.score:g}"),
                       ("max_score", f"{report.max_score:g}"), ("rubric", report.rubric), ("device", report.device),
                       ("seed", str(report.seed)), ("not_graded", " ".join(report.not_graded))):
        if value:
            ET.SubElement(props, "property", name=key, value=xml_text(value))
    if report.error is not None or not report.exercises:
        suite.append(_load_case(report))
    for ex in report.exercises:
        for check in ex.checks:
            suite.append(_testcase(report, ex, check))
    if report.load_problems:  # code that raised while what it defined was graded: the suite's stderr
        ET.SubElement(suite, "system-err").text = xml_text("\n".join(
            f"{p.where}: {p.message}" + (f"\n{p.traceback.rstrip()}" if p.traceback else "")
            for p in report.load_problems))
    _count(suite)
    root = ET.Element("testsuites", name="gradegrad")
    root.append(suite)
    for attr in ("tests", "failures", "errors", "time"):
        root.set(attr, suite.get(attr))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: Report, path: Path) -> None:
    write_text_atomic(path, to_junit(report))
