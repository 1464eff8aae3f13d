"""The requests gradcheck will make, predicted in the grader from the exercise's reference.

gradcheck's fast_mode asks for the same evaluations whatever the numbers that come back, as long as
the output has the reference's shape and dtype and the check passes: forward on the inputs and on
inputs moved along gradcheck's own seeded directions, backward with its seeded vectors, zeros and
undefined gradients. The grader computes those request frames once per batch (the inputs are seeded),
by running the very run-ahead code of the evaluator (`Evaluator.gradcheck_pairs`, same proxy, same
numbering of handles) on a Function built from the manifest's reference, here, in the grader: the
reference is the instructor's, no student code runs. The evaluator then only answers them
(`Evaluator.answer_all`) instead of running gradcheck itself.

A prediction decides nothing: the grader's own gradcheck takes a reply only for a request of exactly
the same bytes; a request the prediction missed (a wrong shape, a failing check explaining itself)
gets a run-ahead of the student's gradcheck asked then (`Submission.gradcheck_ahead`), else a round
trip.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Sequence

import torch

from gradegrad.catalog import Exercise
from gradegrad.reference import memo, reference_gradients, reference_output
from gradegrad.sandbox.protocol import encode_frame, parse_frame

MAX_PREDICTED = 2000  # request frames sent with one exercise's evaluations
PLACEHOLDER = "Reference"  # the class the prediction names, renamed to the student's (`_named`)


def reference_function(ex: Exercise) -> type[torch.autograd.Function]:
    """A Function whose forward is the manifest's reference and whose backward its gradients."""

    class Reference(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *args: Any) -> torch.Tensor:
            ctx.args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
            return reference_output(ex, ctx.args).detach().clone()

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
            mask = [bool(n) for n in ctx.needs_input_grad]
            _, grads = reference_gradients(ex, ctx.args, mask, grad_output)
            return tuple(grads)

    return Reference


def predicted_requests(ex: Exercise, class_name: str, case: str, seed: int, args: Sequence[Any],
                       options: dict[str, Any]) -> tuple[bytes, ...] | None:
    """The request frames of fast_mode gradcheck(**options) on `args` for a correct `class_name`;
    None when they cannot be predicted (the reference fails to run, or asks for too many).
    gradcheck runs once per exercise, case, seed and options; each class name only renames."""
    options_key = tuple(sorted(options.items()))
    frames = memo(("predicted", ex, case, seed, options_key), lambda: _predict(ex, args, options))
    if not frames:
        return None
    return memo(("predicted", ex, case, seed, options_key, class_name), lambda: _named(frames, class_name))


def _named(frames: tuple[bytes, ...], class_name: str) -> tuple[bytes, ...]:
    """The frames with `class_name` where the prediction named its own class: the same header
    otherwise, the same tensors, encoded as the grader's proxy encodes them."""
    renamed = []
    for frame in frames:
        message = parse_frame(frame)
        if message.header.get("class") == PLACEHOLDER:
            frame = encode_frame({**message.header, "class": class_name}, list(message.tensors))
        renamed.append(frame)
    return tuple(renamed)


def _predict(ex: Exercise, args: Sequence[Any], options: dict[str, Any]) -> tuple[bytes, ...]:
    """The frames with the placeholder's name; () when none can be predicted (remembered as such)."""
    from gradegrad.sandbox.child import Evaluator  # the evaluator's own code, on the reference

    evaluator = Evaluator(channel=None)  # type: ignore[arg-type]  (never sends: answers in-process)
    evaluator.module = SimpleNamespace(**{PLACEHOLDER: reference_function(ex)})
    leaves = [a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
    try:
        pairs, outcome = evaluator.gradcheck_pairs(PLACEHOLDER, leaves, {**options, "fast_mode": True})
    except Exception:  # noqa: BLE001 - no prediction: the evaluator runs gradcheck itself
        return ()
    if outcome is not True or len(pairs) > MAX_PREDICTED:
        return ()  # a reference that does not pass would predict a failing student's requests
    return tuple(request for request, _ in pairs)
