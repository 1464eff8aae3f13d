"""grades.csv: the gradebook a TA imports into a spreadsheet or an LMS."""

import csv
import io

from gradegrad.render.csv_report import cell, to_csv
from render_samples import sample_batch


def test_one_row_per_student_with_a_column_per_exercise():
    rows = list(csv.reader(io.StringIO(to_csv(sample_batch()))))
    assert rows[0] == ["name", "total", "max", "sigmoid", "matvec", "conv1d", "status", "detail"]
    assert rows[1] == ["ann", "5", "5", "0", "5", "0", "passed", ""]
    assert rows[2][1:7] == ["8", "17", "3", "5", "0", "failed"]
    assert rows[3][6:] == ["error", "importing the submission raised RuntimeError: no"]
    assert rows[4][6] == "timeout" and len(rows) == 5


def test_names_a_spreadsheet_would_run_stay_text():
    rows = list(csv.reader(io.StringIO(to_csv(sample_batch()))))
    assert rows[2][0] == "'=cmd|' /C calc'!A0"
    assert cell("-1") == "'-1" and cell("bob") == "bob"
