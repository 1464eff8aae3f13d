"""The grader's proxy of a student's Function: what it refuses to hand to torch's gradcheck."""

import pytest
import torch

from gradegrad.evaluation import fault_from
from gradegrad.sandbox.remote import ForwardResult, InPlace, WrongDtype, remote_function
from gradegrad.verdict import Verdict


class FloatForward:
    """A submission whose forward answers in float32 whatever it is given."""

    def forward(self, class_name, args, needs, *, timeout, keep):
        return ForwardResult(torch.zeros(3, dtype=torch.float32), {}, None, None)


def test_a_forward_in_another_dtype_is_a_wrong_dtype_failure_not_an_internal_error():
    fn = remote_function(FloatForward(), "Exp", lambda: float("inf"))
    with pytest.raises(WrongDtype) as err:
        fn(torch.zeros(3, dtype=torch.float64, requires_grad=True))
    verdict = Verdict.fault(fault_from(err.value, "gradcheck", 30))
    assert verdict.status == "failed" and verdict.diagnosis == "wrong_dtype"
    assert "float32 for float64 inputs" in verdict.message


def test_in_place_facts_are_read_defensively():
    facts = InPlace.parse({"before": {"grad_output": 0, "output": 1, "args": [0, None], "saved": [0, 2]},
                           "after": {"grad_output": 1, "output": 1, "args": [3, None], "saved": [0, "x"]},
                           "saved_roles": ["arg:0", "other"], "saved_error": None})
    assert facts.grad_output == (0, 1) and facts.output == (1, 1) and facts.args == ((0, 3), None)
    assert facts.saved == (("arg:0", 0, 0),)  # a version that is not a count is no evidence
    assert InPlace.parse("lies") is None and InPlace.parse({"before": {}, "after": []}) is None
