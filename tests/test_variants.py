"""Per-student variants: derived from the name, different between students, recorded in the report."""

import shutil

from conftest import FIXTURES, check, exercise
from gradegrad.options import Options
from gradegrad.variants import normalize, personalise, pick, variant_seed

VARIANTS = FIXTURES / "instructor" / "variants" / "variants.yaml"
STUDENTS = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Emmy Noether", "Carl Gauss", "Sophie Germain"]


def test_a_students_variant_is_deterministic_and_students_differ(catalog):
    ex = catalog["param_relu_module"]
    picks = {name: pick(ex, name)[1] for name in STUDENTS}
    assert picks["Ada Lovelace"] == pick(ex, "ada_lovelace")[1] == pick(ex, " ADA-LOVELACE ")[1]
    assert len(set(picks.values())) >= 2
    assert variant_seed(0, "Ada Lovelace") != variant_seed(0, "Alan Turing")
    assert variant_seed(0, "Ada Lovelace") != variant_seed(1, "Ada Lovelace")


def test_a_variant_changes_shapes_and_constants_but_not_the_exercise(catalog):
    ex = catalog["param_relu_module"]
    chosen = {pick(ex, name)[0].cases[0].inputs for name in STUDENTS}
    alphas = {dict((s.name, s.value) for s in inputs)["alpha"] for inputs in chosen}
    assert len(alphas) >= 2
    for name in STUDENTS:
        mine = pick(ex, name)[0]
        assert mine.id == ex.id and mine.reference == ex.reference and [c.name for c in mine.cases] == [c.name for c in ex.cases]
        assert mine.cases[2].inputs[1].value == 0.1  # a case's own override still wins


def test_exercises_without_variants_keep_their_cases(catalog):
    pairs, options, note = personalise([(catalog["sigmoid"], None)], "Ada Lovelace", Options(seed=3))
    assert pairs[0][0] is catalog["sigmoid"] and options.seed == variant_seed(3, "ada lovelace")
    assert note == f"variant of student 'ada lovelace' (--seed 3): inputs seed {options.seed}"
    assert normalize("Ada_Lovelace") == "ada lovelace"


def test_the_report_records_each_students_variant(graded, tmp_path):
    reports = {}
    for name in ("ada_lovelace", "alan_turing"):
        path = tmp_path / f"{name}.py"
        shutil.copy(FIXTURES / "instructor" / "kinds" / "modules_right.py", path)
        reports[name] = graded(path, rubric=str(VARIANTS))
    ada, alan = reports["ada_lovelace"], reports["alan_turing"]
    assert ada.passed and alan.passed
    assert ada.seed != alan.seed and ada.seed == variant_seed(0, "ada lovelace")
    assert "variant of student 'ada lovelace'" in ada.notes[0] and "param_relu_module: variant" in ada.notes[0]
    assert ada.notes[0] != alan.notes[0]


def test_a_module_ignoring_its_alpha_fails_under_every_variant(graded, tmp_path):
    path = tmp_path / "grace_hopper.py"
    shutil.copy(FIXTURES / "instructor" / "kinds" / "modules_wrong.py", path)
    report = graded(path, rubric=str(VARIANTS))
    assert check(report, "param_relu_module", "forward").status == "failed"
    assert exercise(report, "leaky_relu_module").status == "failed"
