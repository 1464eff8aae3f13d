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


class Scripted:
    """A `Requests` whose evaluator answers with the frames given (as a hostile child could)."""

    def __new__(cls, frames):
        from gradegrad.sandbox.requests import Requests

        class Replay(Requests):
            def __init__(self):
                self.frames = list(frames)

            def _request(self, header, tensors, timeout):
                return self.frames.pop(0)

            def _next_frame(self, timeout):
                return self.frames.pop(0)

        return Replay()


def _forward(item, handle=None):
    from gradegrad.sandbox.protocol import Message

    return Message({"ok": True, "item": item, "phase": "forward",
                    "forward": {"output": 1.0, "meta": {}, "handle": handle, "versions": [0]}})


def test_a_batch_reply_must_come_in_order_and_end(catalog):
    from gradegrad.sandbox.protocol import Message
    from gradegrad.sandbox.requests import Answer, Item, LostAt

    items = [Item([torch.zeros(2)], [True], torch.ones(2)), Item([torch.zeros(2)], [True], torch.ones(2))]
    done = Message({"ok": True, "done": True})
    answers = list(Scripted([_forward(0), _forward(1), done]).evaluate("Exp", items, timeout=lambda p: 1))
    assert [a.item for a in answers if isinstance(a, Answer)] == [0, 1]
    for frames in ([_forward(1), _forward(0), done],  # out of order
                   [_forward(0, handle=3), _forward(1), done],  # backward skipped
                   [_forward(0), _forward(1), Message({"ok": True})]):  # no end
        with pytest.raises(LostAt) as lost:
            list(Scripted(frames).evaluate("Exp", items, timeout=lambda p: 1))
        assert lost.value.kind == "protocol"


def test_run_ahead_pairs_must_come_with_their_frames():
    from gradegrad.sandbox.protocol import Message
    from gradegrad.sandbox.requests import Item, LostAt

    items = [Item([torch.zeros(2)], [True], torch.ones(2))]
    ahead = ((torch.zeros(2, dtype=torch.float64),), {"eps": 1e-6}, None)  # args, options, no prediction
    for counts, frames in (({"fast": 2}, []), ({"fast": -1}, []), ({"slow": 0}, []),
                           ({"fast": 1}, [torch.zeros(3, dtype=torch.uint8)])):
        replies = [Message({"ok": True, "phase": "ahead", "ahead": counts}, frames), _forward(0),
                   Message({"ok": True, "done": True})]
        with pytest.raises(LostAt) as lost:
            list(Scripted(replies).evaluate("Exp", items, timeout=lambda p: 1, ahead=ahead, ahead_at=0))
        assert lost.value.phase == "ahead" and lost.value.kind == "protocol"
