"""Where things are in the student's own files: method lines found by parsing (never running), lines
of a generated module mapped back to files and cells, tracebacks relabelled."""

from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES
from gradegrad.intake import Segment, SubmissionSource, discover, method_locations, relabel_traceback, source_for

BATCH = FIXTURES / "batch"


@pytest.fixture(scope="module")
def found():
    return {s.name: s for s in discover(BATCH).sources}


def test_method_locations_parse_files_cells_and_folders(found):
    partial = method_locations(source_for(EXAMPLES / "partial.py"))
    text = (EXAMPLES / "partial.py").read_text().split("\n")
    line = partial["Sigmoid"]["backward"].line
    assert text[line - 1].strip() == "def backward(ctx, grad_output):"
    assert text[partial["Sigmoid"]["class"].line - 1].startswith("class Sigmoid")
    carol = method_locations(found["carol"])["MatVec"]["backward"]
    assert (carol.file, carol.cell, carol.line) == (str(BATCH / "carol.ipynb"), 5, 8)
    dave = method_locations(found["dave"])["MatVec"]["backward"]
    assert dave.file == str(BATCH / "dave" / "lab.py")
    assert (BATCH / "dave" / "lab.py").read_text().split("\n")[dave.line - 1].strip().startswith("def backward")
    assert method_locations(found["erin"]) == {}  # a syntax error: nothing to point at


@pytest.mark.parametrize("text", ["x = " + "(" * 100_000 + ")" * 100_000, "x = " + "-" * 1_000_000 + "1",
                                  "def f(:\n"], ids=["parentheses", "memory", "syntax"])
def test_source_that_python_cannot_parse_has_no_locations_and_never_raises(tmp_path, text):
    path = tmp_path / "deep.py"
    path.write_text(text + "\nclass Late:\n    pass\n")
    assert method_locations(source_for(path)) == {}


def test_tracebacks_name_the_students_cells_and_files():
    cell = Segment(5, 4, "carol.ipynb", 1, 3, 3)
    source = SubmissionSource("carol", Path("carol.ipynb"), "notebook", segments=(cell,))
    trace = ('Traceback:\n  File "/tmp/s/carol.py", line 7, in backward\n    #| return y\n'
             'ValueError: (carol.py, line 6)')
    fixed = relabel_traceback(trace, "/tmp/s/carol.py", source, "carol.ipynb")
    assert 'File "carol.ipynb", cell 3, line 3, in backward\n    return y' in fixed
    assert "(carol.ipynb, cell 3, line 2)" in fixed
    bundle = SubmissionSource("dave", Path("dave"), "folder", segments=(Segment(10, 5, "dave/lab.py", prefix=3),))
    trace = ('  File "/tmp/s/dave.py", line 2, in <module>\n    _gg_module(_gg_name)\n'
             '                 ^^^^^^^^^^^^^^^^^^^^\n'
             '  File "/tmp/s/dave.py", line 12, in f\n    #|     return 1 / 0\n           ^^^^^\nZeroDivisionError')
    assert relabel_traceback(trace, "/tmp/s/dave.py", bundle, "dave/") == \
        '  File "dave/lab.py", line 3, in f\n    return 1 / 0\n       ^^^^^\nZeroDivisionError'  # runtime dropped
