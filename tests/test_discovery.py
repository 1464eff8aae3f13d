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


def module(name):
    return ClassInfo(name, False, False, False, ("Module",), is_module=True)


def test_a_class_is_offered_as_a_near_miss_to_one_exercise_at_most(catalog):
    m = match_all(list(catalog.values()), [info("MultiplyAdd")])
    assert not m["add"].hint and not m["mul"].hint  # neither the name of add nor of mul, with affixes
    m = match_all(list(catalog.values()), [info("MySumFn"), info("Dot_Product")])
    assert m["sum"].hint == "did you mean MySumFn? rename it Sum"
    assert [ex for ex, x in m.items() if "MySumFn" in x.hint] == ["sum"]


def test_affixes_are_the_usual_ones_only():
    from gradegrad.discovery import affixed

    assert affixed("linearfunction", ["linear"]) and affixed("mysigmoidv2", ["sigmoid"])
    assert not affixed("multiplyadd", ["add"]) and not affixed("multiplyadd", ["mul"])


def test_the_function_is_graded_when_the_module_wrapping_it_has_the_exercises_name(catalog):
    from gradegrad.kinds import match_submission
    from gradegrad.sandbox.remote import Loaded

    loaded = Loaded(classes=(info("LinearFunction"), module("Linear")))
    m = match_submission([catalog["linear"]], loaded)["linear"]
    assert m.info.name == "LinearFunction"
    assert m.hint == ("graded LinearFunction: Linear is an nn.Module, and the exercise asks for the "
                      "torch.autograd.Function")
    alone = match_submission([catalog["linear"]], Loaded(classes=(module("Linear"),)))["linear"]
    assert alone.info.name == "Linear" and not alone.hint  # the found check says it derives from Module
    two = match_submission([catalog["linear"]], Loaded(classes=(info("LinearFunction"), info("MyLinearFn"),
                                                                 module("Linear"))))["linear"]
    assert two.info.name == "Linear"  # which one? not guessed
