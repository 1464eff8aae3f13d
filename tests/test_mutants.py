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
