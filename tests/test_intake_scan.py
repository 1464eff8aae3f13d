"""Scanning a submissions folder: one source per student, problems for files that cannot be graded,
skipped entries with a reason, and hostile files that must never stop the scan.

Nothing here starts a child: intake reads files and never runs them.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from gradegrad.errors import SubmissionError
from gradegrad.intake import discover, generated_code, identical, read_source, source_for
from gradegrad.intake import scan
from intake_helpers import notebook

BATCH = FIXTURES / "batch"


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
    assert by_name(found, "alice").load == BATCH / "alice.py" and not by_name(found, "alice").generated
    assert by_name(found, "carol").generated and by_name(found, "carol").load is None


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


def test_links_archives_and_the_output_folder_are_not_submissions(tmp_path):
    shutil.copy(BATCH / "alice.py", tmp_path / "alice.py")
    (tmp_path / "mallory.py").symlink_to("/etc/hostname")
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")  # a link to itself
    (tmp_path / "export.zip").write_bytes(b"PK")
    (tmp_path / "grades").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"")
    found = discover(tmp_path, exclude=[tmp_path / "grades"])
    assert [s.name for s in found.sources] == ["alice"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons == {"export.zip": "an archive: extract it into the folder to grade it",
                       "loop.py": "a symbolic link (not followed)",
                       "mallory.py": "a symbolic link (not followed)"}


def test_missing_or_empty_folders_are_usage_errors(tmp_path):
    with pytest.raises(SubmissionError, match="submissions folder not found"):
        discover(tmp_path / "nope")
    with pytest.raises(SubmissionError, match="no submission found"):
        discover(tmp_path)
    with pytest.raises(SubmissionError, match="submission not found"):
        source_for(tmp_path / "nope.py")


def test_a_file_gradegrad_cannot_grade_given_on_the_command_line_is_a_usage_error(tmp_path):
    (tmp_path / "notes.txt").write_text("class Sigmoid: pass\n")
    with pytest.raises(SubmissionError, match=r"cannot grade .*notes.txt: give a .py file, an .ipynb notebook or a "
                                              r"folder"):
        source_for(tmp_path / "notes.txt")


def test_identical_submissions_are_grouped(tmp_path):
    for name in ("ann", "ben"):
        shutil.copy(BATCH / "alice.py", tmp_path / f"{name}.py")
    shutil.copy(BATCH / "bob.py", tmp_path / "cat.py")
    assert identical(discover(tmp_path).sources) == [("ann", "ben")]


# --------------------------------------------------------------------------- hostile files


def _nested(depth: int) -> bytes:
    return b'{"cells": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE = {  # file name: (content, words of its problem)
    "deep.ipynb": (_nested(100_000), "not a Jupyter notebook (its JSON is nested too deeply)"),
    "punycode.py": (b"# coding: punycode\nx = 1\n\xff\xfe", "declares the encoding 'punycode'"),
    "rot.py": (b"# -*- coding: rot13 -*-\nk = 1\n", "declares the encoding 'rot-13'"),
    "utf16.py": (b"\xff\xfex\x00", "not UTF-8 text"),
    "numbers.ipynb": (json.dumps({"cells": [{"cell_type": "code", "source": [1, 2]}]}).encode(), "has no code"),
    "nocells.ipynb": (b"[1, 2, 3]", "not a Jupyter notebook (no cells)"),
    "bignum.ipynb": (b'{"cells": [' + b"9" * 5000 + b"]}", "not a Jupyter notebook"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_a_problem_with_a_message_never_a_crash(tmp_path, name):
    data, words = HOSTILE[name]
    (tmp_path / name).write_bytes(data)
    source = source_for(tmp_path / name)
    assert source.problem is not None and words in source.problem, source.problem


def test_a_folder_of_hostile_files_is_scanned_to_the_end(tmp_path):
    for name, (data, _) in HOSTILE.items():
        (tmp_path / name).write_bytes(data)
    shutil.copy(BATCH / "alice.py", tmp_path / "zed.py")
    found = discover(tmp_path)
    assert [s.name for s in found.sources if s.problem is None] == ["zed"]
    assert len(found.sources) == len(HOSTILE) + 1


def test_anything_that_fails_while_reading_is_that_students_problem(tmp_path, monkeypatch):
    (tmp_path / "ann.py").write_text("x = 1\n")
    (tmp_path / "ben.py").write_text("x = 2\n")

    def broken(name, data):
        if name == "ann.py":
            raise MemoryError("no room")
        return data.decode()

    monkeypatch.setattr(scan, "python_text", broken)
    found = discover(tmp_path)
    ann, ben = found.sources
    assert ann.problem == "gradegrad could not read ann.py (MemoryError: no room)" and ben.problem is None


def test_names_and_origins_are_printable(tmp_path):
    (tmp_path / "eve\x1b[2J.py").write_text("x = 1\n")
    source = discover(tmp_path).sources[0]
    assert source.name == "eve?[2J" and source.display == "eve?[2J.py"


def test_past_the_submission_limit_the_rest_is_skipped_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(scan, "MAX_SUBMISSIONS", 2)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
    found = discover(tmp_path)
    assert [s.name for s in found.sources] == ["a", "b"]
    assert [(s.name, s.reason) for s in found.skipped] == [
        ("c.py", "not graded: a folder is graded up to 2 submissions (split it)")]


def test_generated_modules_are_built_again_when_needed_never_kept(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(notebook("x = 1"))
    source, code = read_source(path)
    assert not hasattr(source, "code") and generated_code(source) == code
    path.write_bytes(notebook("x = 1", "y = 2"))
    with pytest.raises(SubmissionError, match="changed while it was being graded"):
        generated_code(source)


def test_an_unreadable_entry_is_skipped_or_a_problem(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (tmp_path / "locked.py").write_text("x = 1\n")
    (tmp_path / "locked.py").chmod(0)
    source = discover(tmp_path).sources[0]
    assert "cannot be read" in source.problem


def test_a_file_with_an_uppercase_suffix_is_read(tmp_path):
    (tmp_path / "Ann.PY").write_text("x = 1\n")
    assert Path(discover(tmp_path).sources[0].load).name == "Ann.PY"


def test_identical_notebooks_and_folders_are_grouped_too(tmp_path):
    for name in ("ann", "ben"):
        (tmp_path / f"{name}.ipynb").write_bytes(notebook("x = 1", "class A:\n    pass"))
        (tmp_path / f"{name}_dir").mkdir()
        for module in ("a.py", "b.py"):
            (tmp_path / f"{name}_dir" / module).write_text("y = 2\n")
    assert sorted(identical(discover(tmp_path).sources)) == [("ann", "ben"), ("ann_dir", "ben_dir")]
