"""The run-ahead's requests, inside the child: built exactly as the grader's `Submission` builds
them (the same `Requests` code), answered by the child's own handler, and kept as (request frame,
reply frame) pairs that the grader may use in place of round trips (see `Child.speculate`)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from gradegrad.sandbox.protocol import Message, encode_frame, parse_frame
from gradegrad.sandbox.requests import ChildFault, Requests, raise_for_error


class Loopback(Requests):
    """In the child, for a run-ahead: requests built exactly as the grader's `Submission` builds
    them, answered by the child's own handler, and kept as (request frame, reply frame) pairs."""

    def __init__(self, handle: Callable[[Message], tuple[dict[str, Any], list[torch.Tensor]]], limit: int) -> None:
        self.handle, self.limit = handle, limit
        self.pairs: list[tuple[bytes, bytes]] = []

    def _request(self, header: dict[str, Any], tensors: list[torch.Tensor], timeout: float) -> Message:
        if len(self.pairs) >= self.limit:
            raise ChildFault("protocol", "run-ahead limit reached")
        request = encode_frame(header, list(tensors))
        reply = encode_frame(*self.handle(parse_frame(request)))
        self.pairs.append((request, reply))
        return raise_for_error(parse_frame(reply))


