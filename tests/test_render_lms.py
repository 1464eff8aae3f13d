"""canvas.csv and moodle.csv from the roster; grades.csv as Excel reads it; files the group can read."""

import csv
import io
import stat

from gradegrad.course import Gradebook
from gradegrad.render.csv_report import to_csv
from gradegrad.render import files
from gradegrad.render.files import write_text_atomic
from gradegrad.render.lms import CANVAS_COLUMNS, MOODLE_COLUMNS, to_canvas, to_moodle
from gradegrad.roster import match, parse_roster
from render_samples import sample_batch

ROSTER = "id,name,email,section,canvas_id,login\nu1,Ann Lee,ann@uni.edu,A,1001,alee\nu3,José Ñúñez,cy@uni.edu,B,1003,jn\n" \
         "u4,Dee Dee,dee@uni.edu,B,1004,dd\nu9,Absent Abe,abe@uni.edu,A,1009,aa\n"


def book() -> Gradebook:
    batch = sample_batch()
    roster = match(parse_roster(ROSTER), [g.name for g in batch.graded])
    return Gradebook(batch, 17, "Lab 1 (4242)", roster)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_import_has_its_columns_a_points_possible_row_and_every_student():
    table = rows(to_canvas(book()))
    assert table[0] == [*CANVAS_COLUMNS, "Lab 1 (4242)"] == ["Student", "ID", "SIS User ID", "SIS Login ID",
                                                             "Section", "Lab 1 (4242)"]
    assert table[1][0].strip() == "Points Possible" and table[1][-1] == "17"
    by_id = {r[2]: r for r in table[2:]}
    assert by_id["u1"] == ["Ann Lee", "1001", "u1", "alee", "A", "5"]
    assert by_id["u4"][-1] == "1" and by_id["u9"][-1] == ""  # no submission: left empty, the LMS keeps its grade
    assert by_id["u3"][0] == "José Ñúñez"  # cy@uni.edu: matched by the email's local part


def test_moodle_import_has_an_identifier_the_grade_item_and_feedback():
    table = rows(to_moodle(book()))
    assert table[0] == [*MOODLE_COLUMNS, "Lab 1 (4242)", "Feedback"]
    ann = next(r for r in table if r[0] == "u1")
    assert ann[1:4] == ["ann@uni.edu", "Ann Lee", "5"] and ann[4].startswith("gradegrad: 5/5")
    cy = next(r for r in table if r[0] == "u3")
    assert cy[3] == "0" and "RuntimeError" in cy[4]
    assert next(r for r in table if r[0] == "u9")[3:] == ["", ""]


def test_grades_csv_lists_roster_columns_and_absent_students():
    table = rows(to_csv(book().batch, book().roster, 17))
    assert table[0][:6] == ["name", "id", "student", "email", "section", "total"]
    assert table[1][:5] == ["ann", "u1", "Ann Lee", "ann@uni.edu", "A"]
    assert table[2][1:5] == ["", "", "", ""]  # a submission on no one's roster row keeps its line
    assert table[-1][:2] == ["", "u9"] and table[-1][-2:] == ["absent", "no submission"]


def test_csv_files_are_utf8_with_a_bom_for_excel_and_readable_by_the_group(tmp_path, monkeypatch):
    path = tmp_path / "grades.csv"
    monkeypatch.setattr(files, "UMASK", 0o022)  # the usual umask (read once, when gradegrad starts)
    write_text_atomic(path, "name\nJosé\n", bom=True)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "José".encode() in data  # Excel reads UTF-8 only after a BOM
    assert rows(data.decode("utf-8-sig"))[1] == ["José"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp's 0600 would hide it from the course's group
