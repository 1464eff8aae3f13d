"""report.html: one self-contained page, hostile text escaped, rendered by a real headless browser."""

from html.parser import HTMLParser

from browser import dump_dom, screenshot
from gradegrad.batch import BatchResult, Graded
from gradegrad.course import Gradebook
from gradegrad.render.gradebook import html_report
from gradegrad.render.html_report import report_page
from gradegrad.report import CheckResult, ExerciseResult, Report, StudentOutput
from gradegrad.roster import match, parse_roster
from render_samples import graded, partial_report, sample_batch

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Tags(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags, self.attrs, self.students = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]
        self.students.extend((tag, value) for name, value in attrs if name == "data-student")


def hostile_report() -> Report:
    check = CheckResult("backward", "failed", 0, 4, f"bad {HOSTILE}", "sign_error", traceback=f"File \"{HOSTILE}\"")
    ex = ExerciseResult("sigmoid", f"Sig{HOSTILE}", "failed", 0, 4, (check,), teaches=HOSTILE, hint=HOSTILE)
    return Report(HOSTILE, "cpu", 0, "lab1", 0, 4, (ex,), StudentOutput(f"{HOSTILE}\x1b[31m\x00", HOSTILE),
                  (HOSTILE,), error=None, gradegrad_version="0.1.0")


def hostile_book() -> Gradebook:
    batch = sample_batch()
    batch = BatchResult(batch.folder, batch.rubric, batch.exercises,
                        (*batch.graded, graded(HOSTILE, hostile_report())), seconds=1.0)
    roster = match(parse_roster(f"id,name,email\nu1,{HOSTILE.replace(',', ' ')},ann@uni.edu\n"), [g.name for g in batch.graded])
    return Gradebook(batch, 17, "Lab 1", roster)


def test_text_from_submissions_cannot_add_markup():
    for page in (html_report(hostile_book()), report_page(hostile_report())):
        parsed = Tags(page)
        assert parsed.tags.count("script") == 1 and "img" not in parsed.tags  # only the page's own script
        assert "onerror" not in parsed.attrs and "\x1b" not in page and "\x00" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_the_page_is_self_contained():
    page = html_report(hostile_book())
    for remote in ("<link", "src=\"http", "href=\"http", "@import", "url(", "<script src"):
        assert remote not in page


def test_the_gradebook_renders_in_headless_chromium_with_every_student(tmp_path):
    book = hostile_book()
    path = tmp_path / "report.html"
    path.write_text(html_report(book), encoding="utf-8")
    dom = dump_dom(path)
    parsed = Tags(dom)
    names = [g.name for g in book.batch.graded]  # each student's row and scorecard, as the browser built them
    assert [v for tag, v in parsed.students if tag == "tr"] == names
    assert [v for tag, v in parsed.students if tag == "details"] == names
    assert "img" not in parsed.tags and "onerror" not in parsed.attrs
    for section in ('id="exercise-rates"', 'id="check-rates"', 'id="diagnoses"', 'aria-label="score histogram"'):
        assert section in dom
    png = screenshot(path, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_a_link_opens_the_students_scorecard(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(html_report(hostile_book()), encoding="utf-8")
    dom = dump_dom(path.with_name("report.html"))
    assert '<details class="student" id="s-2"' in dom and "open" not in dom.split('id="s-2"')[1].split(">")[0]
    opened = tmp_path / "open.html"  # the same page, asked for #s-2 as a click on the name does
    opened.write_text(html_report(hostile_book()).replace("location.hash", "'#s-2'"), encoding="utf-8")
    assert 'open=""' in dump_dom(opened).split('id="s-2"')[1].split(">")[0]


def test_check_html_is_the_same_view_for_one_student(tmp_path):
    path = tmp_path / "me.html"
    path.write_text(report_page(partial_report()), encoding="utf-8")
    dom = dump_dom(path)
    assert "sign_error" in dom and "Total 8/17" in dom and "three backticks above" in dom
