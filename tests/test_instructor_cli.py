"""list, show, template, validate and formula as a user meets them: words on screen, exit codes."""

import yaml
from typer.testing import CliRunner

from conftest import FIXTURES
from gradegrad.catalog import load_catalog
from gradegrad.cli import app
from gradegrad.formula import gradient, make_formula

COURSE = FIXTURES / "instructor" / "course"
runner = CliRunner()


def run(*args, env=None):
    result = runner.invoke(app, list(map(str, args)), env={"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    return result, result.output


def test_list_shows_id_kind_class_points_and_what_it_teaches():
    result, out = run("list")
    assert result.exit_code == 0
    assert out.splitlines()[0].split() == ["id", "kind", "class", "(aliases)", "points", "teaches"]
    row = next(line for line in out.splitlines() if line.startswith("matvec "))
    assert row.split()[:6] == ["matvec", "function", "MatVec", "(MyMatVec,", "Mv)", "12"]  # device: a 0-point flag
    assert "outer product" in row
    for words in (["vjp_dot", "vjp", "dot"], ["param_relu_module", "module", "ParamReLUModule"],
                  ["backward_diff_chain", "chain"], ["backprop_formula", "formula", "-", "-"]):
        assert any(line.split()[:len(words)] == words for line in out.splitlines()), words


def test_list_with_a_rubric_shows_its_exercises_and_points():
    result, out = run("list", "--rubric", "modules")
    lines = out.splitlines()
    rows = [line.split()[0] for line in lines[1:-1]]
    assert result.exit_code == 0 and rows == ["leaky_relu", "param_relu", "leaky_relu_module", "param_relu_module"]
    points = {line.split()[0]: line for line in lines[1:-1]}
    assert " 8 " in points["leaky_relu"] and " 6 " in points["leaky_relu_module"]  # wraps_function: a 0-point flag
    assert lines[-1] == "total 28 points on cpu"


def test_show_prints_statement_formula_inputs_cases_and_checks():
    result, out = run("show", "sigmoid", "--rubric", "lab1")
    assert result.exit_code == 0
    for words in ("sigmoid  (function; class Sigmoid)", "formula    y = 1 / (1 + exp(-x))",
                  "reference  torch.sigmoid(x)", "x: float tensor of shape (6,)", "large (stability): x.shape=[10], x.domain=uniform",
                  "checks     (rubric lab1; 11 points on cpu)", "backward            4  each gradient matches",
                  "forbidden  aten::sigmoid_backward", "mistakes   named when a student's numbers match:",
                  "  y (1 + y) in place of y (1 - y), the derivative of the sigmoid\n      grad x = grad_output * out * (1 + out)"):
        assert words in out, words


def test_show_a_students_variant_and_a_typo():
    result, out = run("show", "param_relu_module", "--student", "Ada Lovelace")
    assert result.exit_code == 0 and "inputs     (student Ada Lovelace: variant" in out
    result, out = run("show", "sigmod")
    assert result.exit_code == 2 and "did you mean 'sigmoid'" in out and "Traceback" not in out


def test_template_prints_a_starter_file_and_will_not_overwrite(tmp_path):
    result, out = run("template", "--rubric", "autodiff")
    assert result.exit_code == 0
    compile(result.stdout, "starter.py", "exec")
    assert "def dot_make_vjp(x, W):" in out and "dot.make_vjp = dot_make_vjp" in out
    assert "gradegrad check my_answers.py --rubric autodiff" in out
    target = tmp_path / "lab.py"
    assert run("template", "-r", "lab1", "-o", target)[0].exit_code == 0
    assert "class MatVec(Function):" in target.read_text()
    result, out = run("template", "-r", "lab1", "-o", target)
    assert result.exit_code == 2 and "pass --force" in out


def test_validate_exits_1_on_problems_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nclass: Bad\nteaches: t\nreference: x\ninputs:\n  - name: x\n    shap: [3]\n")
    result, out = run("validate", bad, "--no-run")
    assert result.exit_code == 1
    assert f"{bad}:7: inputs[0].shap: unknown field (did you mean 'shape'?)" in out
    assert "1 problem(s)" in out
    result, out = run("validate", "--no-run")
    assert result.exit_code == 0 and "no problems" in out


def test_an_exercise_added_as_one_yaml_file_is_listed_validated_templated_and_graded(tmp_path):
    """The tanh example: a course folder with one manifest and one rubric, no Python change."""
    folders = ["--exercises", COURSE / "exercises", "--rubrics", COURSE / "rubrics"]
    result, out = run("list", "--rubric", "course", *folders)
    assert result.exit_code == 0 and out.splitlines()[1].split()[:5] == ["tanh", "function", "Tanh", "(MyTanh)", "9"]
    result, out = run("show", "tanh", *folders)
    assert result.exit_code == 0 and "formula    y = tanh(x)" in out
    result, out = run("validate", COURSE / "exercises", COURSE / "rubrics", *folders)
    assert result.exit_code == 0 and "1 reference answer(s) graded; no problems" in out
    starter = tmp_path / "starter.py"
    assert run("template", "--rubric", "course", "-o", starter, *folders)[0].exit_code == 0
    assert "class Tanh(Function):" in starter.read_text()

    env = {"GRADEGRAD_EXERCISES": str(COURSE / "exercises"), "GRADEGRAD_RUBRICS": str(COURSE / "rubrics")}
    result, out = run("check", starter, "--rubric", "course", env=env)
    assert result.exit_code == 1 and "Total 0/19" in out
    result, out = run("check", COURSE / "tanh_right.py", "--rubric", "course", env=env)
    assert result.exit_code == 0 and "Total 19/19" in out
    result, out = run("check", COURSE / "tanh_wrong.py", "--rubric", "course", env=env)
    assert result.exit_code == 1 and "the gradient of `x` is what a common mistake gives: 1 - x^2" in out


def test_formula_prints_a_students_formula_and_grades_the_answer(tmp_path):
    result, out = run("formula", "--student", "Ada Lovelace")
    ex = load_catalog()["backprop_formula"]
    formula = make_formula(ex, "Ada Lovelace")
    assert result.exit_code == 0 and f"= {formula.text}" in out and "gradient: [df/dx1," in out
    answer = tmp_path / "ada.yaml"
    answer.write_text(yaml.safe_dump({"student": "Ada Lovelace", "gradient": gradient(formula)}))
    result, out = run("formula", "--answer", answer, "--student", "Ada Lovelace", "--json", tmp_path / "r.json")
    assert result.exit_code == 0 and "Total 5/5" in out and (tmp_path / "r.json").exists()
    assert "graded for student 'ada lovelace' (from --student); the name written in an answer file is never used" in out
    result, out = run("formula")
    assert result.exit_code == 2 and "pass --student NAME" in out


def test_formula_grades_for_the_name_the_grader_gives_never_the_one_in_the_answer(tmp_path):
    ex = load_catalog()["backprop_formula"]
    ada = make_formula(ex, "Ada Lovelace")
    answer = tmp_path / "alan_turing.yaml"  # Alan hands in Ada's (correct) answer and claims to be Ada
    answer.write_text(yaml.safe_dump({"student": "Ada Lovelace", "gradient": gradient(ada)}))
    result, out = run("formula", "--answer", answer)
    assert result.exit_code == 1 and "student: alan turing" in out and "Total 5/5" not in out
    assert ("graded for student 'alan turing' (from the answer file's name); the name written in an answer file "
            "is never used: this one says it is for 'Ada Lovelace'") in out
    result, out = run("formula", "--answer", answer, "--student", "Alan Turing")
    assert result.exit_code == 1 and "student: alan turing" in out and "(from --student)" in out
    result, out = run("formula", "--answer", answer, "--student", "Ada Lovelace")
    assert result.exit_code == 0 and "Total 5/5" in out  # the grader says whose it is
