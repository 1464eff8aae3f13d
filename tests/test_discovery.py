"""Matching student classes to exercises: case, underscores, aliases, and near misses."""

from gradegrad.discovery import match_all
from gradegrad.sandbox.remote import ClassInfo


def info(name):
    return ClassInfo(name, True, True, True)


def test_matching_ignores_case_and_underscores_and_knows_aliases(catalog):
    classes = [info("my_mat_vec"), info("SIGMOID"), info("LeakyReLU_Fun"), info("MyDropOutTraining")]
    m = match_all(list(catalog.values()), classes)
    assert m["matvec"].info.name == "my_mat_vec"
    assert m["sigmoid"].info.name == "SIGMOID"
    assert m["leaky_relu"].info.name == "LeakyReLU_Fun"
    assert m["dropout"].info.name == "MyDropOutTraining"
    assert m["softmax"].info is None and not m["softmax"].hint


def test_near_misses_get_did_you_mean(catalog):
    m = match_all(list(catalog.values()), [info("Sigmod"), info("MatVecFunction")])
    assert m["sigmoid"].info is None and m["sigmoid"].hint == "did you mean Sigmod? rename it Sigmoid"
    assert "MatVecFunction" in m["matvec"].hint


def test_an_exact_match_is_not_offered_as_a_near_miss(catalog):
    m = match_all(list(catalog.values()), [info("ParamReLU")])
    assert m["param_relu"].info.name == "ParamReLU"
    assert not m["leaky_relu"].hint
