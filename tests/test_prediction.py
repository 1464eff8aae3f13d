"""gradcheck's requests predicted in the grader from the reference: the evaluator answers them
instead of running gradcheck, and no verdict changes (only who computes the requests)."""

from dataclasses import replace

import pytest
import torch

from conftest import EXAMPLES, SUBMISSIONS, check
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.cases import make_inputs
from gradegrad.checks.gradcheck import OPTIONS
from gradegrad.checks.values import ordinary
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.prediction import predicted_requests, reference_function
from gradegrad.reference import reference_output
from gradegrad.sandbox import process
from gradegrad.sandbox.child import AHEAD_HANDLES, Evaluator
from gradegrad.sandbox.protocol import Channel, parse_frame

FUNCTIONS = ("add", "mul", "exp", "sum", "sigmoid", "dot", "matvec", "softmax", "dropout", "leaky_relu",
             "param_relu", "conv1d", "linear", "mse_loss", "cross_entropy")


def _args(catalog, ex_id: str, seed: int = 0):
    """The exercise, the case gradcheck runs on, and its seeded float64 arguments."""
    ex = catalog[ex_id]
    case = ordinary(ex)[0]
    args = tuple(a.requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
                 for s, a in zip(case.inputs, make_inputs(ex, case, seed, "float64")))
    return ex, case, args


@pytest.mark.parametrize("ex_id", FUNCTIONS)
def test_every_built_in_function_exercise_has_its_gradcheck_requests_predicted(catalog, ex_id):
    ex, case, args = _args(catalog, ex_id)
    frames = predicted_requests(ex, "Student", case.name, 0, args, dict(OPTIONS))
    assert frames, "the reference must pass its own gradcheck, so that its requests can be predicted"
    ops = [parse_frame(f).header["op"] for f in frames]
    assert set(ops) <= {"forward", "backward"} and "backward" in ops
    assert all(parse_frame(f).header["class"] == "Student" for f in frames if parse_frame(f).header["op"] == "forward")


def test_a_prediction_never_carries_the_reference_answer(catalog):
    """The frames go to the student's process: they hold the inputs gradcheck moves and its own
    seeded vectors, never the reference's output (which a cheater would return as its own)."""
    for ex_id in FUNCTIONS:
        ex, case, args = _args(catalog, ex_id)
        answer = reference_output(ex, [a.detach() if isinstance(a, torch.Tensor) else a for a in args])
        frames = predicted_requests(ex, "Student", case.name, 0, args, dict(OPTIONS))
        if answer.numel() > 1 or answer.abs().item() not in (0.0, 1.0):
            assert not any(answer.detach().contiguous().numpy().tobytes() in f for f in frames), ex_id


def test_the_same_run_ahead_numbers_its_handles_alike_wherever_it_runs(catalog):
    """The child's own run-ahead and the grader's prediction give byte-identical requests for a
    correct Function, however many handles the child had handed out before."""
    ex, case, args = _args(catalog, "mul")
    predicted = predicted_requests(ex, "Mul", case.name, 0, args, dict(OPTIONS))
    child = Evaluator(channel=None)
    child.module = type("M", (), {"Mul": reference_function(ex)})
    child.next_handle = 17  # handles the exercise's evaluations already took
    pairs, outcome = child.gradcheck_pairs("Mul", [a.detach().clone().requires_grad_(a.requires_grad) for a in args],
                                           {**dict(OPTIONS), "fast_mode": True})
    assert outcome is True and tuple(request for request, _ in pairs) == predicted
    assert child.next_handle == 17 and max(child.handles) > AHEAD_HANDLES


@pytest.mark.parametrize("name", ["Mul", "Reference", "ÜberMul", "x" * 64])
def test_a_prediction_for_another_class_name_is_the_same_as_predicting_it_anew(catalog, name):
    """gradcheck runs once per exercise; each class name only renames its forward requests."""
    ex, case, args = _args(catalog, "mul")
    renamed = predicted_requests(ex, name, case.name, 0, args, dict(OPTIONS))
    child = Evaluator(channel=None)
    child.module = type("M", (), {name: reference_function(ex)})
    pairs, _ = child.gradcheck_pairs(name, [a.detach().clone().requires_grad_(a.requires_grad) for a in args],
                                     {**dict(OPTIONS), "fast_mode": True})
    assert renamed == tuple(request for request, _ in pairs)


def test_answering_predicted_requests_goes_on_after_one_that_fails(catalog):
    ex, case, args = _args(catalog, "mul")
    predicted = predicted_requests(ex, "Mul", case.name, 0, args, dict(OPTIONS))

    class Raises(torch.autograd.Function):
        calls = 0

        @staticmethod
        def forward(ctx, x, y):
            Raises.calls += 1
            if Raises.calls == 1:
                raise ValueError("first call")
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g, g

    child = Evaluator(channel=None)
    child.module = type("M", (), {"Mul": Raises})
    pairs = child.answer_all(list(predicted))
    replies = [parse_frame(reply).header for _, reply in pairs]
    assert len(pairs) == len(predicted) and replies[0]["ok"] is False and any(r["ok"] for r in replies[1:])


@pytest.fixture
def sent(monkeypatch):
    ops: dict[str, int] = {}
    send_frame = Channel.send_frame

    def counting(self, frame, deadline=None):
        op = parse_frame(frame).header.get("op")
        ops[op] = ops.get(op, 0) + 1
        return send_frame(self, frame, deadline)

    monkeypatch.setattr(Channel, "send_frame", counting)
    return ops


def _only(catalog, ex_id: str, checks=("found", "gradcheck")):
    rubric = select_exercises(resolve_rubric("all", catalog), [ex_id], catalog)
    return replace(rubric, items=tuple(replace(it, points=tuple(p for p in it.points if p[0] in checks))
                                       for it in rubric.items))


def test_a_correct_function_is_gradchecked_with_predicted_requests_alone(catalog, sent):
    report = grade(EXAMPLES / "complete.py", _only(catalog, "conv1d"), catalog, Options())
    assert check(report, "conv1d", "gradcheck").status == "passed"
    assert sent.get("evaluate") == 1 and not sent.get("speculate") and not sent.get("forward") and not sent.get("backward")


def test_a_failing_gradcheck_misses_the_prediction_once_and_keeps_its_verdict(catalog, sent, monkeypatch):
    """Swapped gradients: fast_mode fails and torch asks for the full Jacobian, which no correct
    Function's gradcheck asks for; the first such request asks the child's own run-ahead."""
    predicted = grade(SUBMISSIONS / "swapped.py", _only(catalog, "mul"), catalog, Options())
    assert sent.get("speculate") == 1 and not sent.get("forward") and not sent.get("backward")
    monkeypatch.setattr("gradegrad.evaluation.predicted_requests", lambda *a, **k: None)
    own = grade(SUBMISSIONS / "swapped.py", _only(catalog, "mul"), catalog, Options())
    assert check(predicted, "mul", "gradcheck") == check(own, "mul", "gradcheck")
    assert check(predicted, "mul", "gradcheck").diagnosis == "jacobian_mismatch"


def test_a_wrong_shape_misses_the_prediction_and_keeps_its_verdict(catalog, monkeypatch):
    path = SUBMISSIONS / "wrong_shape.py"
    rubric = resolve_rubric(None, catalog)
    predicted = grade(path, rubric, catalog, Options())
    monkeypatch.setattr("gradegrad.evaluation.predicted_requests", lambda *a, **k: None)
    own = grade(path, rubric, catalog, Options())
    assert [(e.id, [(c.id, c.status, c.diagnosis, c.points) for c in e.checks]) for e in predicted.exercises] == \
        [(e.id, [(c.id, c.status, c.diagnosis, c.points) for c in e.checks]) for e in own.exercises]


def test_round_trips_are_counted_for_a_speculation_asked_on_a_miss(catalog):
    before = process.Child.round_trips
    grade(SUBMISSIONS / "swapped.py", _only(catalog, "mul"), catalog, Options())
    assert process.Child.round_trips - before <= 5  # confine, load, evaluate, speculate, exit
