"""Finding submissions in a folder: names, kinds, notebooks, student folders, files that cannot be graded.

Nothing here starts a child: discovery reads files and never runs them.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES
from gradegrad.errors import SubmissionError
from gradegrad.intake import (Segment, SubmissionSource, bundle_module, discover, identical, method_locations,
                                   notebook_module, relabel_traceback, source_for)

BATCH = FIXTURES / "batch"


def notebook(*cells, nbformat=4):
    return json.dumps({"cells": [{"cell_type": kind, "source": src, "metadata": {}} for kind, src in cells],
                       "nbformat": nbformat}).encode()


@pytest.fixture(scope="module")
def found():
    return discover(BATCH)


def by_name(found, name):
    return next(s for s in found.sources if s.name == name)


def test_one_source_per_student_named_after_the_file_or_folder(found):
    assert [s.name for s in found.sources] == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
                                                "ivan"]
    kinds = {s.name: s.kind for s in found.sources}
    assert kinds["alice"] == "file" and kinds["carol"] == "notebook" and kinds["dave"] == "folder"
    assert by_name(found, "alice").load == BATCH / "alice.py" and by_name(found, "alice").code is None


def test_empty_and_non_utf8_files_are_problems_not_crashes(found):
    assert by_name(found, "grace").problem == "grace.py is empty"
    heidi = by_name(found, "heidi").problem
    assert "not UTF-8" in heidi and "byte 0xe9 on line 1" in heidi and "save it as UTF-8" in heidi
    assert by_name(found, "erin").problem is None  # a syntax error is the child's to report


def test_stray_files_and_duplicates_are_skipped_with_a_reason(found):
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["notes.txt"].startswith("stray file")
    assert reasons["bob.ipynb"] == "duplicate: bob.py is graded for bob"
    assert "dave" not in reasons


def test_a_folder_with_several_modules_is_bundled_without_its_tests(found):
    dave = by_name(found, "dave")
    assert dave.code is not None and dave.load is None
    assert "graded dave/helpers.py, dave/lab.py" in dave.notes
    assert "test_lab" not in dave.code and "#|> helpers" in dave.code and "#|> lab" in dave.code


def test_the_bundle_imports_its_modules_by_name_and_exposes_their_classes(tmp_path):
    code, _ = bundle_module("st/", {"helpers": ("st/helpers.py", "def twice(x):\n    return 2 * x\n", ()),
                                    "lab": ("st/lab.py", "from helpers import twice\n\n\nclass Doubler:\n"
                                            "    value = twice(21)\n", ())})
    path = tmp_path / "bundle.py"
    path.write_text(code)
    probe = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('submission', sys.argv[1]); "
             "m = importlib.util.module_from_spec(spec); sys.modules['submission'] = m; spec.loader.exec_module(m); "
             "print(m.Doubler.value, m.Doubler.__module__)")
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(path)], capture_output=True, text=True)
    assert out.stdout.split() == ["42", "submission"], out.stderr


def test_module_option_picks_the_file_and_falls_back_with_a_note(tmp_path):
    (tmp_path / "st").mkdir()
    for name in ("lab2.py", "scratch.py"):
        (tmp_path / "st" / name).write_text("x = 1\n")
    assert source_for(tmp_path / "st", "lab2.py").load == tmp_path / "st" / "lab2.py"
    assert source_for(tmp_path / "st", "LAB2").load == tmp_path / "st" / "lab2.py"
    missing = source_for(tmp_path / "st", "lab3.py")
    assert missing.code is not None and "lab3.py not found in st/: searched its top-level modules instead" in missing.notes


def test_a_folder_with_one_module_loads_it_directly(tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "lab.py").write_text("x = 1\n")
    (tmp_path / "st" / "test_lab.py").write_text("import pytest\n")
    src = source_for(tmp_path / "st")
    assert src.load == tmp_path / "st" / "lab.py" and src.kind == "folder" and src.code is None


def test_a_folder_without_python_is_a_problem(tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "README.md").write_text("hi")
    assert source_for(tmp_path / "st").problem == "st/ has no .py or .ipynb file at its top level"


def test_notebook_magics_become_pass_and_lines_still_match():
    data = notebook(("markdown", "# Lab"), ("code", ["!pip install torch\n", "import torch\n", "%matplotlib inline"]),
                    ("code", "%%bash\necho hi"), ("code", "%%time\nx = 1\ntorch.mv?\nfiles = !ls \\\n  -la\ny = 2"))
    code, segments, dropped = notebook_module("nb.ipynb", data)
    lines = code.split("\n")
    assert [s.cell for s in segments] == [2, 3, 4]
    first = segments[0]
    assert lines[first.first - 1: first.first + 2] == ["pass  # gradegrad: dropped", "import torch",
                                                       "pass  # gradegrad: dropped"]
    assert "echo hi" not in code and "x = 1" in code and "y = 2" in code and "-la" not in code
    compile(code, "nb.py", "exec")  # what is left is Python
    assert dropped == 6


@pytest.mark.parametrize("data,problem", [
    (b"{not json", "not a Jupyter notebook (invalid JSON"),
    (b'{"nbformat": 4}', "not a Jupyter notebook (no cells)"),
    (notebook(("markdown", "# only words"), ("code", "   ")), "has no code"),
    (notebook(("code", "!pip install torch\n%load_ext autoreload")), "has no code"),
])
def test_broken_notebooks_are_problems(tmp_path, data, problem):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(data)
    assert problem in source_for(path).problem


def test_nbformat_3_worksheets_are_read(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\n"]}]}]}))
    assert "x = 1" in source_for(path).code


def test_links_archives_and_the_output_folder_are_not_submissions(tmp_path):
    shutil.copy(BATCH / "alice.py", tmp_path / "alice.py")
    (tmp_path / "mallory.py").symlink_to("/etc/hostname")
    (tmp_path / "export.zip").write_bytes(b"PK")
    (tmp_path / "grades").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"")
    found = discover(tmp_path, exclude=[tmp_path / "grades"])
    assert [s.name for s in found.sources] == ["alice"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons == {"export.zip": "an archive: extract it into the folder to grade it",
                       "mallory.py": "a symbolic link (not followed)"}


def test_missing_or_empty_folders_are_usage_errors(tmp_path):
    with pytest.raises(SubmissionError, match="submissions folder not found"):
        discover(tmp_path / "nope")
    with pytest.raises(SubmissionError, match="no submission found"):
        discover(tmp_path)
    with pytest.raises(SubmissionError, match="submission not found"):
        source_for(tmp_path / "nope.py")


def test_identical_submissions_are_grouped(tmp_path):
    for name in ("ann", "ben"):
        shutil.copy(BATCH / "alice.py", tmp_path / f"{name}.py")
    shutil.copy(BATCH / "bob.py", tmp_path / "cat.py")
    assert identical(discover(tmp_path).sources) == [("ann", "ben")]


def test_method_locations_parse_files_cells_and_bundles(found):
    partial = method_locations(source_for(EXAMPLES / "partial.py"))
    text = (EXAMPLES / "partial.py").read_text().split("\n")
    line = partial["Sigmoid"]["backward"].line
    assert text[line - 1].strip() == "def backward(ctx, grad_output):"
    assert text[partial["Sigmoid"]["class"].line - 1].startswith("class Sigmoid")
    carol = method_locations(by_name(found, "carol"))["MatVec"]["backward"]
    assert (carol.file, carol.cell, carol.line) == (str(BATCH / "carol.ipynb"), 5, 8)
    dave = method_locations(by_name(found, "dave"))["MatVec"]["backward"]
    assert dave.file == str(BATCH / "dave" / "lab.py")
    assert (BATCH / "dave" / "lab.py").read_text().split("\n")[dave.line - 1].strip().startswith("def backward")
    assert method_locations(by_name(found, "erin")) == {}  # a syntax error: nothing to point at


def test_tracebacks_name_the_students_cells_and_files():
    source = SubmissionSource("carol", Path("carol.ipynb"), "notebook", code="x\n" * 20,
                              segments=(Segment(5, 4, "carol.ipynb", 1, 3),))
    trace = 'Traceback:\n  File "/tmp/s/carol.py", line 7, in backward\n    return y\nValueError: (carol.py, line 6)'
    fixed = relabel_traceback(trace, "/tmp/s/carol.py", source, "carol.ipynb")
    assert 'File "carol.ipynb", cell 3, line 3, in backward' in fixed and "(carol.ipynb, cell 3, line 2)" in fixed
    bundle = SubmissionSource("dave", Path("dave"), "folder", code="x\n" * 20,
                              segments=(Segment(10, 5, "dave/lab.py", prefix=3),))
    trace = ('  File "/tmp/s/dave.py", line 2, in <module>\n    _gg_module = __import__(_gg_name)\n'
             '                 ^^^^^^^^^^^^^^^^^^^^\n'
             '  File "/tmp/s/dave.py", line 12, in f\n    #|     return 1 / 0\n           ^^^^^\nZeroDivisionError')
    assert relabel_traceback(trace, "/tmp/s/dave.py", bundle, "dave/") == \
        '  File "dave/lab.py", line 3, in f\n    return 1 / 0\n       ^^^^^\nZeroDivisionError'  # glue dropped
