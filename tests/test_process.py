"""The evaluator process as the grader drives it: here, the replies it sends ahead of the grader's
gradcheck, which save round trips and change no verdict."""

from collections import Counter
from dataclasses import replace

import pytest

from conftest import SUBMISSIONS, check
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.sandbox import process
from gradegrad.sandbox.protocol import Channel, parse_frame


@pytest.fixture
def sent(monkeypatch):
    """The ops of every request that really went to a child."""
    ops = Counter()
    send_frame = Channel.send_frame

    def counting(self, frame, deadline=None):
        ops[parse_frame(frame).header.get("op")] += 1
        return send_frame(self, frame, deadline)

    monkeypatch.setattr(Channel, "send_frame", counting)
    return ops


def grade_swapped(catalog):
    """Mul with swapped gradients: fast_mode fails, and torch computes the full Jacobian to explain it."""
    rubric = select_exercises(resolve_rubric("all", catalog), ["mul"], catalog)
    rubric = replace(rubric, items=tuple(replace(it, points=tuple(p for p in it.points if p[0] in ("found", "gradcheck")))
                                         for it in rubric.items))
    return grade(SUBMISSIONS / "swapped.py", rubric, catalog, Options())


def test_a_failing_gradcheck_costs_one_round_trip_and_gives_the_same_verdict(catalog, sent, monkeypatch):
    ahead = grade_swapped(catalog)
    calls_ahead = sent["forward"] + sent["backward"]
    assert sent["speculate"] == 1 and calls_ahead == 0
    sent.clear()
    monkeypatch.setattr(process.Child, "speculate", lambda self, header, tensors, timeout: 0)
    live = grade_swapped(catalog)
    assert sent["forward"] + sent["backward"] > calls_ahead + 20  # 2 per input element, 1 per output element
    assert check(ahead, "mul", "gradcheck") == check(live, "mul", "gradcheck")
    assert check(ahead, "mul", "gradcheck").diagnosis == "jacobian_mismatch"
