"""The mutation benchmark: every variant is valid Python, and a graded sample scores 100% / 0."""

import importlib.util
import sys

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("gradegrad_mutants", ROOT / "benchmarks" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_every_variant_compiles_and_defines_its_class(mutants, tmp_path, catalog):
    exercises = [s.exercise for s in mutants.SOLUTIONS]
    assert set(exercises) == {"add", "mul", "exp", "sum", "sigmoid", "dot", "matvec", "softmax", "dropout",
                              "leaky_relu", "param_relu", "conv1d", "linear", "mse_loss", "cross_entropy"}
    written = mutants.write_files(exercises, mutants.KINDS, tmp_path)
    for kind, ids in written.items():
        namespace: dict = {}
        exec(compile((tmp_path / f"{kind}.py").read_text(), kind, "exec"), namespace)
        assert {catalog[e].class_name for e in ids} <= set(namespace), kind
    assert len(written["sign_flip"]) == len(exercises) and "add" not in written["swapped_order"]
    assert set(written["jacobian"]) == {"softmax", "dot", "matvec", "conv1d", "linear", "cross_entropy"}
    for kind in ("grad_output_twice", "float32_gradient", "float32_forward", "upcast_gradient"):
        assert len(written[kind]) == len(exercises), kind
    assert {"inplace_grad_output", "inplace_output", "inplace_input", "inplace_saved", "unstable", "unstable_2",
            "wrong_forward", "mistake_1"} <= set(written)
    assert set(written["unstable"]) == {"sigmoid", "softmax"}
    own = [m for s in mutants.SOLUTIONS for m in s.mistakes]
    assert len(own) >= 10 and len({s.exercise for s in mutants.SOLUTIONS if s.mistakes}) >= 8


SAMPLE_KINDS = ("sign_flip", "swapped_order", "transposed", "jacobian", "rewritten")
SAMPLE_EXERCISES = ("sigmoid", "matvec", "softmax", "conv1d", "linear", "cross_entropy")


def test_sample_is_all_caught_with_the_right_diagnosis_and_no_false_failure(mutants):
    kinds = [k for k in mutants.KINDS if k.name in SAMPLE_KINDS]
    outcomes = mutants.run(SAMPLE_EXERCISES, kinds)
    table = "\n".join(mutants.exercise_table(e, outcomes) for e in SAMPLE_EXERCISES)
    assert outcomes and all(o.ok for o in outcomes), table
    assert {o.kind.name for o in outcomes} == set(SAMPLE_KINDS)
    softmax = mutants.exercise_table("softmax", outcomes)
    assert "jacobian" in softmax and "efficiency: inefficient_backward" in softmax
    assert "| **all** |" in mutants.markdown(outcomes)


ISSUE12_KINDS = ("grad_output_twice", "wrong_forward", "float32_gradient", "upcast_gradient", "inplace_grad_output",
                 "inplace_output", "unstable", "unstable_2", "mistake_1")
ISSUE12_EXERCISES = ("sigmoid", "softmax", "cross_entropy", "linear", "mse_loss")


def test_in_place_dtype_stability_scalar_and_own_mistakes_are_caught_and_named(mutants):
    kinds = [k for k in mutants.KINDS if k.name in ISSUE12_KINDS]
    outcomes = mutants.run(ISSUE12_EXERCISES, kinds)
    table = "\n".join(mutants.exercise_table(e, outcomes) for e in ISSUE12_EXERCISES)
    assert outcomes and all(o.ok for o in outcomes), table
    names = {o.kind.name for o in outcomes}
    assert {"softmax_as_sigmoid", "ce_forgets_the_mean", "bias_not_summed", "forgets_the_2"} <= names
    assert "own mistakes" in mutants.kind_markdown(outcomes)


def test_notebook_mutants_are_written_as_notebooks(mutants, tmp_path):
    import json

    text = mutants.notebook(["import torch", "x = 1"])
    assert [c["source"] for c in json.loads(text)["cells"]] == [["import torch"], ["x = 1"]]
    assert {k.family for k in mutants.NOTEBOOK_KINDS} == {"notebook"}
