"""Notebooks: code cells read as data, magics dropped, and the generated module that runs them one by
one, so that a cell that raises loses only itself.

The first tests read notebooks; the `run_generated` ones import the generated module in a fresh
interpreter, as the evaluator does (without the sandbox).
"""

import pytest

from conftest import EXAMPLES, FIXTURES, exercise
from gradegrad.batch import grade_source
from gradegrad.catalog import resolve_rubric
from gradegrad.intake import generated_code, notebook_module, source_for
from gradegrad.intake.notebooks import read_notebook
from gradegrad.options import Options
from gradegrad.sandbox.process import Limits
from intake_helpers import notebook, run_generated


def _cell(code, segments, n):
    """The generated lines of the n-th segment, without the carrying prefix."""
    lines, seg = code.split("\n"), segments[n]
    return [ln[seg.prefix:] for ln in lines[seg.first - 1: seg.first - 1 + seg.count]]


def test_notebook_magics_become_pass_and_lines_still_match():
    data = notebook(("markdown", "# Lab"), ("code", ["!pip install torch\n", "import torch\n", "%matplotlib inline"]),
                    ("code", "%%bash\necho hi"), ("code", "%%time\nx = 1\ntorch.mv?\nfiles = !ls \\\n  -la\ny = 2"))
    code, segments, read = notebook_module("nb.ipynb", data)
    assert [s.cell for s in segments] == [2, 3, 4]
    assert _cell(code, segments, 0) == ["pass  # gradegrad: dropped", "import torch", "pass  # gradegrad: dropped"]
    assert _cell(code, segments, 2) == ["pass  # gradegrad: dropped", "x = 1", "pass  # gradegrad: dropped",
                                        "files = []  # gradegrad: not run", "", "y = 2"]
    assert "echo hi" not in code and "-la" not in code
    compile(code, "nb.py", "exec")  # what is left is Python
    assert read.dropped == 6


def test_shell_results_assigned_to_a_name_become_empty_values(tmp_path):
    code, _, _ = notebook_module("nb.ipynb", notebook("files = !ls\nt = %timeit -o sum([])\nn = len(files)"))
    assert "files = []  # gradegrad: not run" in code and "t = None  # gradegrad: not run" in code
    assert run_generated(code, tmp_path)["problems"] == []


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
    path.write_bytes(b'{"worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\\n"]}]}]}')
    source = source_for(path)
    assert source.problem is None and len(source.segments) == 1


def test_a_cell_that_is_not_text_is_left_out_with_a_note(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(notebook("x = 1", ["y = ", 2], "z = 3"))
    source = source_for(path)
    assert source.problem is None and [s.cell for s in source.segments] == [1, 3]
    assert "nb.ipynb: cell 2 was not read: its source is not text" in source.notes


def test_lone_surrogates_in_a_cell_become_question_marks(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(b'{"cells": [{"cell_type": "code", "source": "s = \'\\ud800\'"}]}')  # valid JSON, not text
    source = source_for(path)
    code = generated_code(source)
    assert source.problem is None and "#| s = '?'" in code
    assert run_generated(code, tmp_path)["problems"] == []


def test_magic_detection_is_linear_on_long_lines():
    line = "a" + " " * 200_000 + "=x"  # a regular expression with overlapping classes would take minutes
    read = read_notebook("nb.ipynb", notebook(line + "\nb = 1"))
    assert read.dropped == 0


# --------------------------------------------------------------------------- the generated module, run


def test_a_cell_that_raises_loses_only_itself(tmp_path):
    code, segments, _ = notebook_module("nb.ipynb", notebook(
        "import math", "class Before:\n    pass", "print(undefined)", "def f():\n    return 1 / 0", "f()",
        "def broken(:\n    pass", "import sys\nsys.exit(2)", "class After:\n    pass"))
    ran = run_generated(code, tmp_path)
    assert ran["names"] == ["After", "Before", "f"]
    starts = {s.first: s.cell for s in segments}
    assert [(starts[at], kind) for at, kind, _ in ran["problems"]] == [
        (3, "NameError"), (5, "ZeroDivisionError"), (6, "SyntaxError"), (7, "SystemExit")]


def test_cells_get_the_notebook_builtins(tmp_path):
    code, _, _ = notebook_module("nb.ipynb", notebook(
        "display('hello')\nip = get_ipython()\nip.run_line_magic('matplotlib', 'inline')\nip.system('ls')",
        "class Model:\n    pass", "name = input('your name? ')", "EXTRA = 'after input'"))
    ran = run_generated(code, tmp_path)
    assert ran["names"] == ["Model"]
    assert ran["problems"] == [[ran["problems"][0][0], "EOFError",
                                "input() is not available while grading: the notebook runs without a keyboard"]]


def test_ipython_is_a_stub_when_it_is_not_installed(tmp_path):
    code, _, _ = notebook_module("nb.ipynb", notebook(
        "from IPython.display import display, HTML, clear_output\nclear_output(wait=True)\ndisplay(HTML('<b>x</b>'))",
        "import IPython\nIPython.get_ipython().run_line_magic('load_ext', 'autoreload')", "class Ok:\n    pass"))
    ran = run_generated(code, tmp_path, site=False)  # no installed packages: no IPython
    assert ran["problems"] == [] and ran["names"] == ["Ok"]


def test_the_runtime_lists_none_of_its_own_names_as_the_students(tmp_path):
    code, _, _ = notebook_module("nb.ipynb", notebook("x = 1"))
    assert run_generated(code, tmp_path)["names"] == []


# --------------------------------------------------------------------------- graded, in the sandbox


NOTEBOOKS = FIXTURES / "notebooks"


def _graded(catalog, path, rubric=None, **limits):
    options = Options(limits=Limits(**{"timeout": 30.0, **limits}))
    return grade_source(source_for(path), resolve_rubric(rubric, catalog), catalog, options)


def test_seed_000_a_raising_gradcheck_cell_costs_only_the_placeholder(catalog):
    """Without the ode extra, the cell importing torchdiffeq fails too, and its class is not found."""
    from gradegrad.catalog import EXTRAS
    from gradegrad.kinds import extras

    has_ode = all(extras._found(m) for m in EXTRAS["ode"])
    report = _graded(catalog, NOTEBOOKS / "seed000_backprop_seminar.ipynb")
    assert {e.id: e.status for e in report.exercises} == {"matvec": "passed", "softmax": "failed",
                                                           "dropout": "passed", **({"ode_field": "passed"} if has_ode
                                                                                   else {})}
    assert exercise(report, "softmax").first_problem.diagnosis == "placeholder"
    missing = [p for p in report.load_problems if "No module named 'torchdiffeq'" in p.message]
    assert len(missing) == (0 if has_ode else 1)
    problem, = [p for p in report.load_problems if p not in missing]
    assert (problem.file, problem.cell) == ("seed000_backprop_seminar.ipynb", 16)
    assert problem.message.startswith("GradcheckError: Jacobian mismatch")
    assert 'File "seed000_backprop_seminar.ipynb", cell 16, line 25' in problem.traceback


def test_seed_003_the_right_param_relu_earns_its_points_after_a_broken_cell(catalog):
    report = _graded(catalog, NOTEBOOKS / "seed003_lab2_autograd.ipynb", "modules")
    scores = {e.id: (e.status, e.score, e.max_score) for e in report.exercises}
    assert scores["param_relu"] == ("passed", 8, 8) and scores["param_relu_module"] == ("passed", 6, 6)
    assert report.max_score == 28 and scores["leaky_relu"][1] < 8  # its own backward is wrong (a tuple)
    problem, = report.load_problems
    assert problem.cell == 25 and problem.message.startswith("TypeError: ones_like()")
    assert "cell 24, line 11, in backward" in problem.traceback


def test_a_name_error_in_a_late_cell_keeps_the_classes_of_the_earlier_ones(catalog, tmp_path):
    path = tmp_path / "lab.ipynb"
    path.write_bytes(notebook("import torch", (EXAMPLES / "complete.py").read_text(), "model.fit(data)",
                              "import matplotlib_that_is_not_installed", "display(model)", "files = !ls"))
    report = _graded(catalog, path, "lab1")
    assert report.passed and report.score == report.max_score
    assert [(p.cell, p.message) for p in report.load_problems] == [
        (3, "NameError: name 'model' is not defined"),
        (4, "ModuleNotFoundError: No module named 'matplotlib_that_is_not_installed'"),
        (5, "NameError: name 'model' is not defined")]


def test_a_training_cell_longer_than_the_load_limit_keeps_every_class(catalog, tmp_path):
    path = tmp_path / "lab.ipynb"
    complete = (EXAMPLES / "complete.py").read_text()
    first, second = complete[:complete.index("class MatVec")], complete[complete.index("class MatVec"):]
    path.write_bytes(notebook(first, "import time\nfor epoch in range(10_000):\n    time.sleep(0.01)",
                              "print('after training')\n" + second))
    report = _graded(catalog, path, "lab1", load_timeout=2.0)
    assert exercise(report, "matvec").status == "passed" and exercise(report, "sigmoid").status == "passed"
    problem, = report.load_problems
    assert problem.cell == 2 and problem.kind == "timeout"
    assert problem.message == "import/top-level code took too long: it did not finish within --load-timeout 2 s"
    assert "after training" not in report.output.stdout  # later cells ran their definitions only


def test_a_nul_byte_in_one_cell_costs_only_that_cell(tmp_path):
    """Python refuses a NUL byte anywhere in a file, comments included: one pasted into a cell used to
    make the whole generated module unloadable (0 points, no cell named)."""
    path = tmp_path / "nb.ipynb"
    path.write_bytes(notebook("class A:\n    pass", "x = 'a\x00b'\ny = 2", "class B:\n    pass"))
    ran = run_generated(generated_code(source_for(path)), tmp_path)
    assert ran["names"] == ["A", "B"]
    assert [p[1:] for p in ran["problems"]] == [["SyntaxError", "source code cannot contain null bytes"]]


def test_a_syntax_errors_message_names_the_cell_not_the_generated_file(catalog, tmp_path):
    path = tmp_path / "lab.ipynb"
    path.write_bytes(notebook("import torch", "y = 1 \u2028 z = 2", "def (:\n    pass"))
    report = _graded(catalog, path, "lab1")
    messages = [p.message for p in report.load_problems]
    assert messages == ["SyntaxError: invalid non-printable character U+2028 (lab.ipynb, cell 2, line 1)",
                        "SyntaxError: invalid syntax (lab.ipynb, cell 3, line 1)"], messages
