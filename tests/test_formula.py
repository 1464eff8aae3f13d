"""The randomized formula homework: a formula per student, an answer file graded per component."""

import json

import pytest
import yaml

from gradegrad.errors import SubmissionError
from gradegrad.formula import Node, gradient, grade_answer, make_formula, read_answer, render


@pytest.fixture
def ex(catalog):
    return catalog["backprop_formula"]


def test_the_formula_is_deterministic_from_the_name_and_differs_between_students(ex):
    ada = make_formula(ex, "Ada Lovelace")
    assert ada == make_formula(ex, "ada_lovelace")
    assert ada.text != make_formula(ex, "Alan Turing").text
    assert len(ada.point) == 5 and all(v in (-2, -1, 1, 2, 3) for v in ada.point)
    assert all(f"x{i}" in ada.text for i in range(1, 6))


def test_every_gradient_component_is_finite_and_not_negligible(ex):
    for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
        assert all(0.05 <= abs(g) < 100 for g in gradient(make_formula(ex, name)))


def test_render_uses_only_the_parentheses_needed():
    x = [Node("var", index=i) for i in range(3)]
    assert render(Node("-", (x[0], Node("+", (x[1], x[2]))))) == "x1 - (x2 + x3)"
    assert render(Node("*", (Node("+", (x[0], x[1])), x[2]))) == "(x1 + x2) * x3"
    assert render(Node("square", (Node("exp", (Node("*", (x[0], x[1])),)),))) == "exp(x1 * x2)^2"
    assert render(Node("square", (Node("+", (x[0], x[1])),))) == "(x1 + x2)^2"


def _answer(tmp_path, ex, values, name="ans.yaml", student="Ada Lovelace"):
    path = tmp_path / name
    data = {"student": student, "gradient": values}
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def test_partial_credit_per_component(ex, tmp_path):
    formula = make_formula(ex, "Ada Lovelace")
    g = gradient(formula)
    values = [round(g[0], 3), -g[1], round(g[2], 2), "abc", g[4] * 1.004]
    path = _answer(tmp_path, ex, values)
    report = grade_answer(ex, formula, read_answer(path, 5), path)
    assert report.score == 3 and report.max_score == 5 and not report.passed
    statuses = {c.id: (c.status, c.diagnosis) for c in report.exercises[0].checks}
    assert statuses["df/dx2"] == ("failed", "sign_error") and statuses["df/dx4"] == ("failed", "missing_gradient")
    assert statuses["df/dx1"] == statuses["df/dx3"] == statuses["df/dx5"] == ("passed", None)
    assert formula.text in report.notes[0]


def test_json_answers_and_named_components(ex, tmp_path):
    formula = make_formula(ex, "Grace Hopper")
    named = {f"x{i + 1}": v for i, v in enumerate(gradient(formula))}
    path = _answer(tmp_path, ex, named, "ans.json", "Grace Hopper")
    answer = read_answer(path, 5)
    assert answer.student == "Grace Hopper"
    assert grade_answer(ex, formula, answer, path).passed


@pytest.mark.parametrize("text,words", [
    ("gradient: [1, 2", "not valid YAML"),
    ("answer: [1, 2, 3]", "expected a mapping with `gradient:"),
    ("gradient: 3", "must be a list of 5 numbers"),
])
def test_malformed_answer_files_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SubmissionError, match=words):
        read_answer(path, 5)


def test_a_student_field_that_is_no_name_is_ignored_not_expanded(tmp_path):
    """YAML aliases nest a list a billion times over in 500 bytes: turning `student:` into text used
    to take all the grader's memory (MemoryError, or the machine's OOM killer)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "ada_lovelace.yaml"
    path.write_text("\n".join(lines + ["student: *a8", "gradient: [1, 2, 3]"]) + "\n")
    answer = read_answer(path, 5)
    assert answer.student is None and answer.gradient[:3] == (1.0, 2.0, 3.0)
    path.write_text('student: "Ada\\e[2J Lovelace"\ngradient: [1]\n')  # an escape sequence, written as YAML's escape
    assert read_answer(path, 5).student == "Ada Lovelace"


def test_an_answer_that_never_ends_is_read_up_to_the_limit(tmp_path):
    """/dev/zero (a link to it in an upload) says size 0: reading it used to never end."""
    (tmp_path / "ada.yaml").symlink_to("/dev/zero")
    with pytest.raises(SubmissionError, match="at most"):
        read_answer(tmp_path / "ada.yaml", 5)
