"""`validate`: every problem as file:line: field: what is wrong; references pass their own checks."""

import os

import yaml

from conftest import FIXTURES
from gradegrad.validate import line_of, validate

BROKEN = FIXTURES / "instructor" / "broken"
COURSE = FIXTURES / "instructor" / "course"


def lines(result):
    return [str(p).replace(str(BROKEN) + "/", "") for p in result.problems]


def test_every_builtin_manifest_and_rubric_is_valid_and_every_reference_passes():
    result = validate()
    assert result.ok, lines(result)
    assert {"sigmoid", "param_relu_module", "vjp_dot", "backward_diff_chain", "backprop_formula"} <= set(result.exercises)
    assert {"all", "lab1", "modules", "autodiff"} <= set(result.rubrics)
    from gradegrad.catalog import load_catalog
    from gradegrad.kinds import extras

    unavailable = sum(1 for ex in load_catalog().values() if extras.missing(ex))  # an optional extra is missing
    assert result.references == len(result.exercises) - 1 - unavailable  # all but the formula, which runs no code


def test_problems_name_file_line_and_field():
    result = validate([BROKEN], run=False)
    assert not result.ok
    assert lines(result) == [
        "not_yaml.yaml:3: not valid YAML: expected ',' or ']', but got '<stream end>'",
        "rubric.yaml:2: points.stablity: unknown field (did you mean 'stability'?)",
        "rubric.yaml:4: exercises[0].id: unknown exercise 'sigmoidd' (did you mean 'sigmoid'?)",
        "rubric.yaml:6: exercises[1].points.stability: stability does not apply to matvec (it has no stability "
        "case): these points are not counted",
        "rubric.yaml:7: exercises[2].points.backward: points must not be negative",
        "rubric.yaml:8: exercises[3].id: backprop_formula is a formula exercise: it is graded by "
        "`gradegrad formula`, not by a rubric",
        "rubric.yaml:9: total: the exercises' points add up to 6, not 20 (matvec 6)",
        "tanh_typos.yaml:2: clas: unknown field (did you mean 'class'?)",
        "tanh_typos.yaml:4: refrence: unknown field (did you mean 'reference'?)",
        "tanh_typos.yaml:8: inputs[0].domian: unknown field (did you mean 'domain'?)",
        "wrong_types.yaml:7: inputs[0].shape: expected a list of non-negative integers, e.g. [3, 4], got 'four'",
    ]


def test_a_reference_that_fails_its_own_checks_is_a_problem():
    result = validate([BROKEN / "random_reference.yaml"])
    assert result.references == 1
    assert all(p.field == "reference" and p.line == 4 for p in result.problems)
    assert "the reference answer fails its own forward check" in result.problems[0].message


def test_the_references_folder_is_a_scratch_folder_that_a_sweep_removes_once_its_maker_is_gone(monkeypatch):
    """A `validate` killed while it grades its references leaves its folder of reference answers:
    named as the grader's other scratch folders (its maker's boot, namespace, pid and start), so
    that the next run's sweep removes it once that process is gone."""
    import gradegrad.grading
    from gradegrad.sandbox import scratch

    folders = []

    def grading(path, *args, **kwargs):
        folders.append(path.parent)
        raise KeyboardInterrupt  # killed here: what is left is tested below, not cleaned up

    monkeypatch.setattr(gradegrad.grading, "grade", grading)
    try:
        validate([BROKEN / "random_reference.yaml"])
    except KeyboardInterrupt:
        pass
    name = folders[0].name
    assert name.startswith(scratch.prefix("validate")) and scratch.owner(), name
    here = scratch._here()
    assert not scratch.stale(name, here)  # its maker (this process) still runs
    gone = name.replace(f".{os.getpid()}.", ".999999999.", 1)  # a maker that is gone
    assert scratch.stale(gone, here)


def test_a_course_folder_validates_with_its_rubric():
    result = validate([COURSE / "exercises", COURSE / "rubrics"])
    assert result.ok, lines(result)
    assert result.exercises == ("tanh",) and result.rubrics == ("course",)


def test_line_of_maps_a_field_path_to_its_line():
    root = yaml.compose("id: a\ninputs:\n  - name: x\n    shape: [1]\n  - name: y\n    domain: {kind: normal}\n")
    assert line_of(root, "inputs[1].domain.kind") == 6
    assert line_of(root, "inputs[0].shape") == 4
    assert line_of(root, "inputs[0].missing") == 3  # the deepest part that exists
    assert line_of(root, "top level") == 1 and line_of(root, "line 9") == 9


def test_the_rubric_example_of_the_docs_is_valid_and_adds_up(tmp_path):
    text = (FIXTURES.parent.parent / "docs" / "rubrics.md").read_text()
    example = text.split("```yaml\n")[1].split("```")[0]
    (tmp_path / "lab3.yaml").write_text(example)
    result = validate([tmp_path / "lab3.yaml"], exercise_folders=[COURSE / "exercises"], run=False)
    assert result.ok, lines(result)


def test_the_catalog_doc_lists_every_builtin_exercise(catalog):
    text = (FIXTURES.parent.parent / "docs" / "catalog.md").read_text()
    assert [ex_id for ex_id in catalog if f"| `{ex_id}` |" not in text] == []


def test_include_mistakes_name_file_line_and_field(tmp_path):
    path = tmp_path / "sig.yaml"
    path.write_text("id: sig\nclass: Sig\nteaches: t\nreference: torch.sigmoid(x)\ninputs:\n  - name: x\n    shape: [3]\n"
                    "cases:\n  - name: default\n  - name: large\n    stability: true\n"
                    "    inputs: {x: {include: [-1000, 1000, -750, 750]}}\n")
    result = validate([path], run=False)
    assert [str(p).replace(str(tmp_path) + "/", "") for p in result.problems] == [
        "sig.yaml:12: cases[1].inputs.x: 4 values to include, but shape [3] holds 3"]


def test_a_common_mistake_must_fit_and_differ_from_the_reference(tmp_path):
    path = tmp_path / "sig.yaml"
    path.write_text("id: sig\nclass: Sig\nteaches: t\nreference: torch.sigmoid(x)\ninputs:\n  - name: x\n    shape: [3]\n"
                    "mistakes:\n"
                    "  - {says: fine, gradient: {x: grad_output * out * (1 + out)}}\n"
                    "  - {says: the right one, gradient: {x: grad_output * out * (1 - out)}}\n"
                    "  - {says: a sum, gradient: {x: grad_output.sum()}}\n"
                    "  - {says: fails, output: 'torch.mv(x, x)'}\n"
                    "  - {says: no chain rule, gradient: {x: out * (1 - out)}}\n"
                    "  - {says: a minus, gradient: {x: -grad_output * out * (1 - out)}}\n"
                    "  - {says: fine again, gradient: {x: grad_output * (1 + out) * out}}\n")
    result = validate([path], run=False)
    shown = [str(p).replace(str(tmp_path) + "/", "") for p in result.problems]
    assert shown[:2] == [
        "sig.yaml:10: mistakes[1]: gives the reference's own numbers on every case: it would never be named "
        "(is the expression the right one?)",
        "sig.yaml:11: mistakes[2].gradient.x: case 'default': the expression's shape is not that of x, (3,)"]
    assert len(shown) == 6 and shown[2].startswith("sig.yaml:12: mistakes[3].output: case 'default': evaluating "
                                                   "'torch.mv(x, x)' failed: ")  # torch's own words follow
    assert shown[3:] == [
        "sig.yaml:13: mistakes[4]: gives what ignoring grad_output gives on every case: gradegrad names that "
        "ignores_grad_output in its own words, never these",
        "sig.yaml:14: mistakes[5]: gives minus the reference on every case: gradegrad names that sign_error in its "
        "own words, never these",
        "sig.yaml:15: mistakes[6]: gives the numbers of mistakes[0] on every case: only mistakes[0] is ever named"]

