"""Submissions, rubrics, exercises and options as plain data (what a Dask worker receives): each
comes back equal to what was sent, and nothing in the data is a path the worker would need."""

import json
import pickle
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from gradegrad.batch import grade_source
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.options import Options
from gradegrad.portable import (from_context, from_plain, grading_context, pack_submission, replace_in_json, to_plain,
                                unpack_submission)
from gradegrad.report import Report
from gradegrad.sandbox.process import Limits
from gradegrad.intake import SubmissionSource, discover, generated_code

BATCH = FIXTURES / "batch"


def plain_only(value):
    """Only what any Python (or JSON, with bytes) holds: no object of gradegrad's classes."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_only(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, bytes))


@pytest.mark.parametrize("rubric", ["all", None, "lab1"])
def test_the_grading_context_comes_back_equal(catalog, rubric):
    chosen = resolve_rubric(rubric, catalog)
    if rubric == "lab1":
        chosen = select_exercises(chosen, ["sigmoid"], catalog)
    options = Options(3, "cpu", Limits(timeout=2.5, memory=None, submission_timeout=60))
    data = grading_context(chosen, catalog, options)
    assert plain_only(data)
    back_rubric, back_catalog, back_options = from_context(pickle.loads(pickle.dumps(data)))
    assert (back_rubric, back_options) == (chosen, options)
    assert list(back_catalog) == list(catalog) and back_catalog == catalog
    assert all(repr(back_catalog[k]) == repr(catalog[k]) for k in catalog)  # ints stay ints, tuples tuples


def test_every_exercise_of_the_catalog_survives_the_trip(catalog):
    from gradegrad.catalog import Exercise

    for ex in catalog.values():
        assert from_plain(Exercise, to_plain(ex)) == ex, ex.id


def test_a_file_travels_as_bytes_and_the_report_names_the_students_path(tmp_path):
    folder = shutil.copytree(BATCH, tmp_path / "subs")
    source = next(s for s in discover(folder).sources if s.name == "alice")
    data = pack_submission(source)
    assert plain_only(data) and data["file"] == {"path": "alice.py", "bytes": (folder / "alice.py").read_bytes()}
    scratch = tmp_path / "worker"
    scratch.mkdir()
    back, code, (there, here) = unpack_submission(pickle.loads(pickle.dumps(data)), scratch)
    assert code is None and back.load == scratch / "alice.py" and back.load.read_bytes() == data["file"]["bytes"]
    assert (back.name, back.kind, back.digest) == (source.name, source.kind, source.digest)
    assert str(back.origin).replace(there, here) == str(source.origin)


@pytest.mark.parametrize("name", ["carol", "dave"])
def test_a_generated_module_travels_as_its_text(name):
    source = next(s for s in discover(BATCH).sources if s.name == name)  # a notebook, a folder
    data = pickle.loads(pickle.dumps(pack_submission(source)))
    back, code, paths = unpack_submission(data, Path("/nonexistent"))
    assert back == source and code == generated_code(source) and paths is None


def test_a_vanished_file_is_an_oserror_for_the_caller(tmp_path):
    source = SubmissionSource("gone", tmp_path / "gone.py", "file", load=tmp_path / "gone.py")
    with pytest.raises(OSError):
        pack_submission(source)


def test_a_file_outside_its_folder_is_refused(tmp_path):
    data = pack_submission(next(s for s in discover(BATCH).sources if s.name == "alice"))
    data["file"]["path"] = "../escape.py"
    with pytest.raises(ValueError):
        unpack_submission(data, tmp_path)


@pytest.mark.parametrize("old, new", [
    ("/tmp/gradegrad-submission-ab12/", "subs/"),
    ("/tmp/gradegrad-submission-ab12/", ""),
    ("/tmp/caf\u00e9 \"quoted\" back\\slash\ttab/", "C:\\Users\\ta \u00e9/"),
])
def test_paths_are_replaced_in_a_report_s_json_as_in_each_of_its_strings(old, new):
    """Every string of the report, however JSON escapes it (quotes, backslashes, tabs, accents),
    and only what lies inside the strings."""
    def replaced(value):
        if isinstance(value, str):
            return value.replace(old, new)
        if isinstance(value, list):
            return [replaced(v) for v in value]
        return {k: replaced(v) for k, v in value.items()} if isinstance(value, dict) else value

    data = {"submission": old + "alice.py", "traceback": f'File "{old}alice.py", line 3\n  x = "\\{old}"',
            "notes": [old, "no path", f"{old}{old}x", "\u00e9" + old], "score": 1.5, "ok": None,
            "nested": {"cells": [{"origin": old + "nb.ipynb"}]}}
    assert json.loads(replace_in_json(json.dumps(data), old, new)) == replaced(data)


@pytest.mark.parametrize("name", ["frank", "dave"])
def test_a_report_graded_from_the_workers_copy_is_the_local_one(tmp_path, catalog, name):
    """The worker's copy lies elsewhere; after `replace_in_json` its report is the one graded here."""
    folder = shutil.copytree(BATCH, tmp_path / "subs")
    source = next(s for s in discover(folder).sources if s.name == name)  # raises at import; a folder
    rubric = select_exercises(resolve_rubric("lab1", catalog), ["sigmoid"], catalog)
    here = grade_source(source, rubric, catalog, Options())
    scratch = tmp_path / "worker"
    scratch.mkdir()
    copy, code, paths = unpack_submission(pack_submission(source), scratch)
    report = grade_source(copy, rubric, catalog, Options(), code).json_line
    there = Report.from_json_line(replace_in_json(report, *paths) if paths else report)
    if name == "frank":
        assert str(folder / "frank.py") in here.load_problems[0].traceback
    assert there == here
