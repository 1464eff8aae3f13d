"""The exercise's budget: the student's code's time, not the time spent importing it again."""

from dataclasses import dataclass

import pytest

from gradegrad.evaluation import Runner
from gradegrad.sandbox.process import ChildFault
from gradegrad.sandbox.remote import Loaded, Submission


@dataclass
class Reloads:
    load_seconds: float = 0.0


def test_importing_again_is_not_charged_to_the_exercise(catalog):
    sub = Reloads(12.0)
    runner = Runner(sub, catalog["exp"], "Exp", 0, timeout=5.0)
    before = runner.remaining()
    sub.load_seconds += 3.0  # a fresh process imported the submission for this exercise
    assert runner.remaining() == pytest.approx(before + 3.0, abs=0.5)


def test_a_backward_leaves_a_reserve_for_forward_alone(catalog):
    runner = Runner(Reloads(), catalog["exp"], "Exp", 0, timeout=30.0)
    assert 21.0 < runner._backward_budget() <= 22.5  # a quarter kept
    short = Runner(Reloads(), catalog["exp"], "Exp", 0, timeout=3.0)
    assert 1.0 <= short._backward_budget() <= 1.5  # at least 1.5 s (half of 3) kept


def test_an_import_that_fails_again_says_so(tmp_path, monkeypatch):
    sub = Submission(tmp_path / "lab.py")
    monkeypatch.setattr(Submission, "load", lambda self: Loaded(error={"kind": "timeout", "message": "no answer "
                                                                       "within 30 s"}))
    with pytest.raises(ChildFault) as err:
        sub.ensure()
    assert "importing the submission again" in str(err.value) and "no answer within 30 s" in str(err.value)
    assert sub.load_seconds >= 0.0
