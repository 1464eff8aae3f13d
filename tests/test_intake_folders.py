"""A student's folder: which modules are graded, the generated module that carries them, `--module`
with its siblings still importable, and the limits on what a folder may hold."""

from conftest import FIXTURES
from gradegrad.intake import discover, generated_code, source_for
from gradegrad.intake import folders
from intake_helpers import notebook, run_generated

BATCH = FIXTURES / "batch"


def _folder(tmp_path, files, name="st"):
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def test_a_folder_with_several_modules_is_generated_without_its_tests():
    dave = next(s for s in discover(BATCH).sources if s.name == "dave")
    assert dave.generated and dave.load is None
    assert "graded dave/helpers.py, dave/lab.py" in dave.notes
    code = generated_code(dave)
    assert "test_lab" not in code and "#|> graded module helpers -" in code and "#|> graded module lab -" in code


def test_the_modules_import_each_other_by_name_and_their_classes_are_the_submissions(tmp_path):
    folder = _folder(tmp_path, {"helpers.py": "def twice(x):\n    return 2 * x\n",
                                "lab.py": "from helpers import twice\n\n\nclass Doubler:\n    value = twice(21)\n"})
    ran = run_generated(generated_code(source_for(folder)), tmp_path)
    assert ran["names"] == ["Doubler", "twice"] and ran["problems"] == []


def test_module_option_grades_that_file_and_keeps_its_siblings_importable(tmp_path):
    folder = _folder(tmp_path, {"lab2.py": "from helpers import twice\n\n\nclass Lab2:\n    value = twice(2)\n",
                                "helpers.py": "def twice(x):\n    return 2 * x\n\n\nclass Helper:\n    pass\n",
                                "scratch.py": "raise RuntimeError('never imported')\n",
                                "test_lab2.py": "import pytest\n"})
    source = source_for(folder, "lab2.py")
    assert source.generated and "graded st/lab2.py" in source.notes
    assert "importable by them: st/helpers.py, st/scratch.py" in source.notes
    ran = run_generated(generated_code(source), tmp_path)
    assert ran["names"] == ["Lab2"] and ran["problems"] == []  # helpers' classes are not graded
    assert source_for(folder, "LAB2").notes == source.notes


def test_module_option_on_a_folder_without_siblings_loads_the_file_itself(tmp_path):
    folder = _folder(tmp_path, {"lab2.py": "x = 1\n", "test_lab2.py": "import pytest\n"})
    assert source_for(folder, "lab2.py").load == folder / "lab2.py"


def test_a_missing_module_option_falls_back_with_a_note(tmp_path):
    folder = _folder(tmp_path, {"lab2.py": "x = 1\n", "scratch.py": "y = 2\n"})
    missing = source_for(folder, "lab3.py")
    assert missing.generated and "lab3.py not found in st/: searched its top-level modules instead" in missing.notes


def test_a_folder_with_one_module_loads_it_directly(tmp_path):
    folder = _folder(tmp_path, {"lab.py": "x = 1\n", "test_lab.py": "import pytest\n"})
    src = source_for(folder)
    assert src.load == folder / "lab.py" and src.kind == "folder" and not src.generated


def test_a_folder_without_python_is_a_problem(tmp_path):
    folder = _folder(tmp_path, {"README.md": "hi"})
    assert source_for(folder).problem == "st/ has no .py or .ipynb file at its top level"


def test_a_module_that_cannot_be_read_is_left_out_with_a_note(tmp_path):
    folder = _folder(tmp_path, {"lab.py": "class Lab:\n    pass\n", "latin.py": b"x = '\xe9'\n"})
    source = source_for(folder)
    assert source.problem is None and "graded st/lab.py" in source.notes
    assert any(n.startswith("st/latin.py is not UTF-8 text") for n in source.notes)


def test_a_module_that_raises_loses_only_itself(tmp_path):
    folder = _folder(tmp_path, {"a.py": "class A:\n    pass\nraise ValueError('leftover')\n",
                                "b.py": "class B:\n    pass\n", "c.ipynb": notebook("class C:\n    pass", "1 / 0")})
    ran = run_generated(generated_code(source_for(folder)), tmp_path)
    assert ran["names"] == ["A", "B", "C"]
    assert [kind for _, kind, _ in ran["problems"]] == ["ValueError", "ZeroDivisionError"]


def test_a_folder_is_read_up_to_its_limits_and_says_what_was_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "MAX_FILES", 3)
    monkeypatch.setattr(folders, "MAX_BYTES", 100)
    folder = _folder(tmp_path, {f"m{i}.py": f"class M{i}:\n    pass\n" for i in range(5)})
    (folder / "m2.py").write_text("x = 1\n" * 50)  # 300 bytes: past the folder's limit
    source = source_for(folder)
    assert "2 module(s) of st/ left out (m3.py, m4.py, ...): a folder is read up to 3 modules" in source.notes
    assert "st/m2.py left out: a folder is read up to 0 MB" in source.notes
    assert "graded st/m0.py, st/m1.py" in source.notes


def test_module_option_in_the_sandbox_still_imports_its_siblings(tmp_path, catalog):
    """The sandbox lets the child read one file: --module lab2.py once lost every point this way."""
    from gradegrad.batch import grade_source
    from gradegrad.catalog import resolve_rubric, select_exercises
    from gradegrad.options import Options

    alice = (BATCH / "alice.py").read_text()
    helpers, lab = alice.split("class MatVec")
    folder = _folder(tmp_path, {"helpers.py": helpers, "lab2.py": "import torch\nfrom torch.autograd import Function\n"
                                "from helpers import Sigmoid\n\n\nclass MatVec" + lab,
                                "notes.py": "raise SystemExit('never imported')\n"})
    rubric = select_exercises(resolve_rubric("lab1", catalog), ["sigmoid", "matvec"], catalog)
    report = grade_source(source_for(folder, "lab2.py"), rubric, catalog, Options())
    assert report.error is None and report.load_problems == ()
    statuses = {e.id: e.status for e in report.exercises}
    assert statuses == {"sigmoid": "missing", "matvec": "passed"}  # only lab2's own classes are graded
