"""`report.html`: the gradebook as one self-contained web page (and `check --html`: one student's).

No network: the CSS and the few lines of JavaScript are inline, the histogram is inline SVG.
It shows the score histogram, the pass rate of each exercise and check, the most common
diagnoses, and every student's scorecard and feedback one click away (a `<details>` per
student, opened by its row's link). Every piece of text from a submission or the grader goes
through `_e` (cleaned by `render.text.plain`, then `html.escape`), so it cannot add markup.
"""

from __future__ import annotations

import html
from typing import Iterable, Sequence

from gradegrad.batch import Graded
from gradegrad.diagnosis import CODES
from gradegrad.render.markdown import verdict
from gradegrad.render.text import plain
from gradegrad.report import CheckResult, ExerciseResult, Report
from gradegrad.stats import Rate, Summary

MARKS = {"passed": "✓", "failed": "✗", "error": "!", "timeout": "⏱", "missing": "·", "skipped": "–",
         "invalid": "✗", "absent": "·"}
OUTPUT_CHARS = 8_000  # of what the student printed, per stream

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --err: #8250df; --warn: #9a6700; --dim: #57606a; --line: #d0d7de;
        --bg: #f6f8fa; --bar: #0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: #1f2328;
       margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta, .dim { color: var(--dim); } .meta { margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.passed { color: var(--ok); } .failed, .invalid { color: var(--bad); } .error { color: var(--err); }
.timeout { color: var(--warn); } .missing, .skipped, .absent { color: var(--dim); }
.status { white-space: nowrap; }
.rate { display: inline-block; height: 10px; background: var(--bar); border-radius: 2px; vertical-align: middle; }
.track { display: inline-block; width: 120px; background: var(--bg); border: 1px solid var(--line); border-radius: 3px;
         margin-right: 6px; line-height: 0; }
code, .code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.code-chip { background: #ddf4ff; color: #0550ae; border-radius: 4px; padding: 0 4px; white-space: nowrap; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow: auto;
      max-height: 24em; white-space: pre-wrap; word-break: break-word; }
details.student { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
details.student > summary { cursor: pointer; padding: 8px 12px; background: var(--bg); font-weight: 600; }
details.student[open] > summary { border-bottom: 1px solid var(--line); }
details.student > .body { padding: 4px 12px 12px; }
.hint { color: var(--warn); } .teaches { color: var(--dim); font-style: italic; }
.adjust { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 10px; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
"""

SCRIPT = """
function openStudent(id) {
  var d = document.getElementById(id);
  if (d && d.tagName === 'DETAILS') { d.open = true; d.scrollIntoView({block: 'start'}); }
}
document.addEventListener('click', function (ev) {
  var a = ev.target.closest ? ev.target.closest('a[href^="#s-"]') : null;
  if (a) { openStudent(a.getAttribute('href').slice(1)); }
});
if (location.hash.indexOf('#s-') === 0) { openStudent(location.hash.slice(1)); }
"""


def _e(text: object, limit: int = 20_000) -> str:
    """Any text, cleaned and escaped for HTML: the one way text enters the page."""
    return html.escape(plain(str(text) if text is not None else "", limit), quote=True)


def _pts(x: float) -> str:
    return f"{x:g}"


def _status(status: str) -> str:
    return f'<span class="status {_e(status)}">{MARKS.get(status, "")} {_e(status)}</span>'


def _page(title: str, body: Sequence[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f"<title>{_e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", *body,
                      f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])


# --------------------------------------------------------------------------- one student's scorecard


def _diagnosis(check: CheckResult) -> str:
    if not check.diagnosis:
        return ""
    meaning = CODES.get(check.diagnosis, "")
    return (f' <span class="code code-chip" title="{_e(meaning)}">{_e(check.diagnosis)}</span>'
            + (f' <span class="dim">({_e(meaning)})</span>' if meaning else ""))


def _feedback(ex: ExerciseResult) -> str:
    parts = []
    if ex.hint:
        parts.append(f'<span class="hint">{_e(ex.hint)}</span>')
    problem = ex.first_problem
    if problem is not None and ex.status != "missing":
        flag = "flag (no points) " if problem.max_points == 0 and problem.status == "failed" else ""
        parts.append(f"<b>{flag}{_e(problem.id)}</b>: {_e(problem.message)}{_diagnosis(problem)}")
    elif ex.status == "missing" and not ex.hint:
        parts.append('<span class="dim">class not found</span>')
    return "<br>".join(parts)


def _score_table(report: Report) -> list[str]:
    rows = ['<table class="scorecard"><thead><tr><th>Exercise</th><th>Class</th><th>Status</th>'
            '<th class="num">Points</th><th>Feedback</th></tr></thead><tbody>']
    for ex in report.exercises:
        rows.append(f'<tr data-exercise="{_e(ex.id)}"><td><code>{_e(ex.id)}</code></td><td>{_e(ex.class_name or "-")}</td>'
                    f"<td>{_status(ex.status)}</td><td class=\"num\">{_pts(ex.score)}/{_pts(ex.max_score)}</td>"
                    f"<td>{_feedback(ex)}</td></tr>")
    return rows + ["</tbody></table>"]


def _worst(check: CheckResult) -> str:
    w = check.worst
    if w is None:
        return ""
    index = ", ".join(str(i) for i in w.index)
    return f" Largest difference at <code>{_e(w.input)}[{_e(index)}]</code>: got {w.got:.6g}, expected {w.expected:.6g}."


def _exercise_details(ex: ExerciseResult) -> list[str]:
    if ex.status == "passed" and not any(c.status == "failed" for c in ex.checks):
        return []
    out = [f"<h3><code>{_e(ex.id)}</code> {_status(ex.status)} {_pts(ex.score)}/{_pts(ex.max_score)}</h3>", "<ul>"]
    for c in ex.checks:
        if c.status == "skipped":
            continue
        text = f": {_e(c.message)}{_diagnosis(c)}{_worst(c)}" if c.status != "passed" and c.message else ""
        flag = " (a flag: worth no points)" if c.max_points == 0 and c.status == "failed" else ""
        out.append(f"<li>{_status(c.status)} <code>{_e(c.id)}</code> {_pts(c.points)}/{_pts(c.max_points)}{flag}{text}</li>")
    out.append("</ul>")
    shown = next((c for c in ex.checks if c.traceback), None)
    if shown is not None:
        out += [f"<p>Your traceback ({_e(shown.id)}):</p>", f"<pre>{_e(shown.traceback)}</pre>"]
    if ex.teaches:
        out.append(f'<p class="teaches">{_e(ex.teaches)}</p>')
    return out


def _adjustments(report: Report) -> list[str]:
    if not report.adjustments:
        return []
    items = "".join(f"<li>{'+' if a.points >= 0 else ''}{_pts(a.points)} point(s)"
                    f"{' on <code>' + _e(a.exercise) + '</code>' if a.exercise else ''}"
                    f"{': ' + _e(a.comment) if a.comment else ''}</li>" for a in report.adjustments)
    return [f'<div class="adjust"><b>Adjusted by your teacher</b> (included in the points above)<ul>{items}</ul></div>']


def _output(report: Report) -> list[str]:
    out = report.output
    if out.empty:
        return []
    parts = ["<h3>What your code printed</h3>"]
    for name, text in (("stdout", out.stdout), ("stderr", out.stderr)):
        if text.strip():
            parts += [f'<p class="dim">{name}</p>', f"<pre>{_e(text, OUTPUT_CHARS)}</pre>"]
    return parts + (['<p class="dim">(output truncated)</p>'] if out.truncated else [])


def scorecard(report: Report) -> list[str]:
    """One student's scorecard and feedback, as HTML lines."""
    out = [f'<p><b>Total {_pts(report.score)}/{_pts(report.max_score)}</b>: {_e(verdict(report))} '
           f'<span class="dim">· rubric {_e(report.rubric)} · device {_e(report.device)} · seed {report.seed}</span></p>']
    out += _adjustments(report)
    if report.error:
        out += ["<h3>Your submission could not be loaded</h3>", f"<p>{_e(report.error)}</p>"]
        if report.error_traceback:
            out.append(f"<pre>{_e(report.error_traceback)}</pre>")
    if report.exercises:
        out += _score_table(report)
        for ex in report.exercises if report.error is None else ():
            out += _exercise_details(ex)
    if report.not_graded:
        out.append(f'<p class="dim">Not graded (class not found): {_e(", ".join(report.not_graded))}</p>')
    out += [f'<p class="dim">{_e(note)}</p>' for note in report.notes]
    return out + _output(report)


def report_page(report: Report, name: str | None = None) -> str:
    """`check --html`: a student's own report as a page."""
    who = name or report.submission
    body = [f"<h1>gradegrad: {_e(who)}</h1>",
            f'<p class="meta">gradegrad {_e(report.gradegrad_version)} · sandbox protections: '
            f'{_e(", ".join(report.protections) or "none")}</p>',
            f'<section class="student" data-student="{_e(who)}">', *scorecard(report), "</section>"]
    return _page(f"gradegrad: {who}", body)


# --------------------------------------------------------------------------- the gradebook


def _histogram(summary: Summary) -> str:
    bars = list(summary.histogram)
    top = max((n for _, n in bars), default=0) or 1
    width, height, bar_w = 640, 180, 56
    parts = [f'<svg role="img" aria-label="score histogram" width="{width}" height="{height + 40}" '
             f'viewBox="0 0 {width} {height + 40}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, n) in enumerate(bars):
        h = round(height * n / top)
        x = 8 + i * (bar_w + 7)
        parts.append(f'<rect x="{x}" y="{height - h + 16}" width="{bar_w}" height="{h}" fill="#0969da" rx="2">'
                     f"<title>{_e(label)}: {n}</title></rect>")
        if n:
            parts.append(f'<text x="{x + bar_w / 2}" y="{height - h + 12}" text-anchor="middle">{n}</text>')
        parts.append(f'<text x="{x + bar_w / 2}" y="{height + 32}" text-anchor="middle">{_e(label)}</text>')
    return "".join(parts) + "</svg>"


def _rate(rate: Rate) -> str:
    if not rate.total:
        return '<span class="dim">-</span>'
    return (f'<span class="track"><span class="rate" style="width:{rate.percent * 1.2:.0f}px"></span></span>'
            f"{rate.percent:.0f}% <span class=\"dim\">({rate.passed}/{rate.total})</span>")


def _rates(summary: Summary) -> list[str]:
    out = ["<h2>Pass rate per exercise</h2>", '<table id="exercise-rates"><thead><tr><th>Exercise</th>'
           "<th>Passed the whole exercise</th><th>Checks that some did not pass</th></tr></thead><tbody>"]
    for r in summary.rates:
        failing = ", ".join(f"{_e(cid)} {rate.percent:.0f}%" for cid, rate in r.checks if rate.passed < rate.total)
        out.append(f"<tr><td><code>{_e(r.exercise)}</code></td><td>{_rate(r.overall)}</td>"
                   f"<td>{failing or '<span class=passed>every check passed</span>'}</td></tr>")
    out += ["</tbody></table>", "<h2>Pass rate per check</h2>",
            '<table id="check-rates"><thead><tr><th>Check</th><th>Passed</th></tr></thead><tbody>']
    out += [f"<tr><td><code>{_e(cid)}</code></td><td>{_rate(rate)}</td></tr>" for cid, rate in summary.checks]
    return out + ["</tbody></table>"]


def _mistakes(summary: Summary, anchors: dict[str, str]) -> list[str]:
    out = ["<h2>Most common diagnoses</h2>"]
    if not summary.mistakes:
        return out + ['<p class="dim">No diagnosed mistake.</p>']
    out.append('<table id="diagnoses"><thead><tr><th class="num">Students</th><th>Exercise</th><th>Check</th>'
               "<th>Diagnosis</th><th>Who</th></tr></thead><tbody>")
    for m in summary.mistakes:
        who = ", ".join(f'<a href="#{anchors[n]}">{_e(n)}</a>' if n in anchors else _e(n) for n in m.students)
        out.append(f'<tr><td class="num">{len(m.students)}</td><td><code>{_e(m.exercise)}</code></td>'
                   f"<td><code>{_e(m.check)}</code></td><td><span class=\"code code-chip\">{_e(m.diagnosis)}</span> "
                   f"{_e(m.says or CODES.get(m.diagnosis, ''))}</td><td>{who}</td></tr>")
    return out + ["</tbody></table>"]


def _student_rows(graded: Sequence[Graded], anchors: dict[str, str], people: dict[str, tuple[str, ...]],
                  columns: tuple[str, ...]) -> list[str]:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    out = ["<h2>Students</h2>", f'<table id="students"><thead><tr><th>Submission</th>{head}'
           '<th class="num">Points</th><th class="num">%</th><th>Status</th></tr></thead><tbody>']
    for g in graded:
        r = g.report
        pct = 100 * r.score / r.max_score if r.max_score else 0.0
        extra = "".join(f"<td>{_e(v)}</td>" for v in people.get(g.name, ("",) * len(columns)))
        out.append(f'<tr data-student="{_e(g.name)}"><td><a href="#{anchors[g.name]}">{_e(g.name)}</a></td>{extra}'
                   f'<td class="num">{_pts(r.score)}/{_pts(r.max_score)}</td><td class="num">{pct:.0f}</td>'
                   f"<td>{_status(g.status)}</td></tr>")
    return out + ["</tbody></table>"]


def _cards(summary: Summary, maximum: float, troubles: int) -> str:
    cards = [("students", str(summary.students)), ("maximum", _pts(maximum)), ("mean", f"{summary.mean:.0f}%"),
             ("median", f"{summary.median:.0f}%"), ("passed every check", str(summary.passed_all)),
             ("errored, timed out or invalid", str(troubles))]
    return '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards) + "</div>"


def gradebook_page(title: str, meta: str, graded: Sequence[Graded], summary: Summary, maximum: float,
                   people: dict[str, tuple[str, ...]] | None = None, columns: tuple[str, ...] = (),
                   notes: Iterable[str] = ()) -> str:
    """The TA's page. `people`: submission name -> the roster's columns (`columns`) for that row."""
    anchors = {g.name: f"s-{i + 1}" for i, g in enumerate(graded)}
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(meta)}</p>',
            _cards(summary, maximum, len(summary.troubles)), "<h2>Scores</h2>", _histogram(summary),
            f'<p class="dim">percent of the maximum ({_pts(maximum)} points); mean {summary.mean:.0f}%, '
            f"median {summary.median:.0f}%</p>"]
    body += [f'<p class="hint">{_e(n)}</p>' for n in notes]
    body += _rates(summary) + _mistakes(summary, anchors)
    body += _student_rows(graded, anchors, people or {}, columns)
    body.append('<h2>Scorecards</h2><p class="dim">Click a name to open its scorecard and feedback.</p>')
    for g in graded:
        r = g.report
        body += [f'<details class="student" id="{anchors[g.name]}" data-student="{_e(g.name)}">',
                 f"<summary>{_e(g.name)} — {_pts(r.score)}/{_pts(r.max_score)} {_status(g.status)}</summary>",
                 '<div class="body">', *scorecard(r), "</div></details>"]
    return _page(title, body)
