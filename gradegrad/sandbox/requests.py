"""The requests a grader makes of an evaluator, and what their replies mean: the wire's client half.

`Requests` builds each request header (forward, backward, a forward-and-backward call, a
measurement, second derivatives, tangents, an exercise kind's own request) and decodes the reply
into the frozen facts below, for whatever answers it: the grader's `remote.Submission` (a live
evaluator) and the child's own `loopback.Loopback` (the run-ahead, which must build requests
byte for byte as the grader does). `remote_function` wraps a student's class in a local
`torch.autograd.Function` whose forward and backward are such requests, so that
`torch.autograd.gradcheck` runs on the grader's side.

Imported by both sides; imports neither (only `protocol`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from gradegrad.sandbox.protocol import Message, Other, encode_value


class ChildFault(Exception):
    """The child could not answer: it timed out, died or sent garbage."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "timeout" | "crash" | "protocol"


class StudentRaised(Exception):
    """The student's code raised; `error` is the child's description of the exception."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "")))
        self.error = error


def raise_for_error(reply: Message) -> Message:
    """The reply, or StudentRaised when it reports the student's exception."""
    if not reply.header.get("ok"):
        error = reply.header.get("error")
        raise StudentRaised(error if isinstance(error, dict) else {"message": "unknown error"})
    return reply



@dataclass(frozen=True)
class ClassInfo:
    """What the child saw of one class defined in the submission (facts, not verdicts)."""

    name: str
    is_function: bool
    has_forward: bool
    has_backward: bool
    bases: tuple[str, ...] = ()
    is_module: bool = False  # a torch.nn.Module subclass (kind `module`)
    has_make_vjp: bool = False  # for a function (Loaded.functions): it has a callable `make_vjp` (kind `vjp`)


@dataclass(frozen=True)
class Loaded:
    """The outcome of importing the submission: its classes, or the student's error."""

    classes: tuple[ClassInfo, ...] = ()
    error: dict[str, Any] | None = None  # StudentRaised.error, or {"kind": "timeout"/"crash", ...}
    functions: tuple[ClassInfo, ...] = ()  # plain functions it defines (kinds `vjp`, `chain`)


@dataclass
class ForwardResult:
    output: Any  # a CPU tensor, or an `Other` / scalar when forward returned something else
    meta: dict[str, Any]
    handle: int | None
    echo: list[Any] | None
    versions: list[int | None] = field(default_factory=list)  # in-place writes to each argument
    ops: tuple[str, ...] = ()  # aten ops forward ran
    autograd: bool = False  # forward ran autograd's engine


@dataclass
class BackwardResult:
    grads: list[Any]
    devices: list[str | None]
    echo: list[Any] | None
    ops: tuple[str, ...] = ()  # aten ops the student's backward ran (raw mode)
    autograd: bool = False  # backward ran autograd's engine (torch.autograd.grad, .backward())


@dataclass(frozen=True)
class Measured:
    """Bytes the student's forward and raw backward allocated on one input (facts, not verdicts)."""

    forward_bytes: int
    backward_bytes: int | None  # None when backward was not run, see `problem`
    ctx_tensors: tuple[str, ...] = ()  # attributes of ctx holding tensors
    problem: str = ""  # "no_grad_fn", or "shape" when forward's output has another shape
    shape: tuple[int, ...] = ()  # forward's output shape, with problem "shape"


@dataclass(frozen=True)
class SecondOrder:
    """Second derivatives through the student's backward (facts, not verdicts)."""

    connected: tuple[bool, ...]  # per argument: the gradient backward returned is differentiable
    second: tuple[Any, ...]  # per argument, then for grad_output: a tensor, or None when unused


class Requests:
    """The request API over some `_request(header, tensors, timeout) -> Message` (a subclass's)."""

    def _request(self, header: dict[str, Any], tensors: list[torch.Tensor], timeout: float) -> Message:
        raise NotImplementedError

    def forward(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool], *,
                timeout: float, keep: bool = True, echo: bool = False) -> ForwardResult:
        tensors: list[torch.Tensor] = []
        header = {"op": "forward", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "keep": keep, "echo": echo}
        return self._forward_result(self._request(header, tensors, timeout))

    @staticmethod
    def _forward_result(reply: Message) -> ForwardResult:
        handle = reply.header.get("handle")
        meta = reply.header.get("meta") if isinstance(reply.header.get("meta"), dict) else {}
        versions = reply.header.get("versions")
        versions = [v if isinstance(v, int) else None for v in versions] if isinstance(versions, list) else []
        return ForwardResult(reply.value(reply.header.get("output")), meta,
                             handle if isinstance(handle, int) else None, _echo(reply), versions,
                             *_ops(reply))

    def call(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool], grad_output: torch.Tensor,
             *, timeout: float, mode: str = "raw",
             echo: bool = True) -> tuple[ForwardResult, BackwardResult | None, dict | None]:
        """forward then backward in one round trip: (forward, backward or None, backward's error or None)."""
        tensors: list[torch.Tensor] = []
        header = {"op": "call", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "keep": True, "echo": echo,
                  "grad_output": encode_value(grad_output, tensors), "mode": mode}
        reply = self._request(header, tensors, timeout)
        parts = [reply.header.get(k) for k in ("forward", "backward", "backward_error")]
        if not isinstance(parts[0], dict):
            raise ChildFault("protocol", "the evaluator sent an invalid reply (no forward result)")
        forward = self._forward_result(Message(parts[0], reply.tensors))
        backward = self._backward_result(Message(parts[1], reply.tensors)) if isinstance(parts[1], dict) else None
        return forward, backward, parts[2] if isinstance(parts[2], dict) else None

    def backward(self, handle: int, grad_output: torch.Tensor, *, timeout: float, mode: str = "raw",
                 echo: bool = False, release: bool = False) -> BackwardResult:
        tensors: list[torch.Tensor] = []
        header = {"op": "backward", "handle": handle, "grad_output": encode_value(grad_output, tensors),
                  "mode": mode, "echo": echo, "release": release}
        return self._backward_result(self._request(header, tensors, timeout))

    @staticmethod
    def _backward_result(reply: Message) -> BackwardResult:
        grads = reply.value(reply.header.get("grads"))
        devices = reply.header.get("devices")
        if not isinstance(grads, list):
            grads = [grads]
        if not isinstance(devices, list):
            devices = [None] * len(grads)
        return BackwardResult(grads, [d if isinstance(d, str) else None for d in devices], _echo(reply),
                              *_ops(reply))

    def measure(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool],
                grad_output: torch.Tensor, *, timeout: float) -> Measured:
        """Run forward then backward once, counting the bytes each allocates."""
        tensors: list[torch.Tensor] = []
        header = {"op": "measure", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "grad_output": encode_value(grad_output, tensors)}
        h = self._request(header, tensors, timeout).header
        names = h.get("ctx_tensors") if isinstance(h.get("ctx_tensors"), list) else []
        shape = h.get("shape") if isinstance(h.get("shape"), list) else []
        return Measured(_count(h.get("forward_bytes")) or 0, _count(h.get("backward_bytes")),
                        tuple(str(n)[:100] for n in names[:20]), str(h.get("problem") or "")[:20],
                        tuple(int(d) for d in shape[:16] if _count(d) is not None))

    def second_order(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool],
                     grad_output: torch.Tensor, directions: Sequence[torch.Tensor | None], *,
                     timeout: float) -> SecondOrder:
        """Differentiate the student's backward along `directions` (one per argument)."""
        tensors: list[torch.Tensor] = []
        header = {"op": "second_order", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "grad_output": encode_value(grad_output, tensors),
                  "directions": encode_value(list(directions), tensors)}
        reply = self._request(header, tensors, timeout)
        connected = reply.header.get("connected")
        second = reply.value(reply.header.get("second"))
        if not isinstance(connected, list) or not isinstance(second, list) or len(second) != len(args) + 1:
            raise ChildFault("protocol", "invalid second-order reply")
        return SecondOrder(tuple(c is True for c in connected), tuple(second))

    def tangent(self, class_name: str, args: Sequence[Any], tangents: Sequence[torch.Tensor | None], *,
                timeout: float) -> tuple[bool, Any]:
        """(whether the class defines jvp, the output's tangent in forward-mode AD or None)."""
        tensors: list[torch.Tensor] = []
        header = {"op": "tangent", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": [False] * len(args), "tangents": encode_value(list(tangents), tensors)}
        reply = self._request(header, tensors, timeout)
        if reply.header.get("has_jvp") is not True:
            return False, None
        return True, reply.value(reply.header.get("tangent"))

    def ask(self, header: dict[str, Any], tensors: list[torch.Tensor], *, timeout: float) -> Message:
        """A request of an exercise kind (gradegrad.kinds); the caller decodes the reply as data."""
        return self._request(header, tensors, timeout)


def _class_info(c: dict[str, Any]) -> ClassInfo:
    bases = c.get("bases") if isinstance(c.get("bases"), list) else []
    return ClassInfo(str(c.get("name", ""))[:200], c.get("is_function") is True, c.get("forward") is True,
                     c.get("backward") is True, tuple(str(b)[:100] for b in bases), c.get("module") is True,
                     c.get("make_vjp") is True)


def _ops(reply: Message) -> tuple[tuple[str, ...], bool]:
    ops = reply.header.get("ops")
    ops = tuple(str(o)[:100] for o in ops[:500]) if isinstance(ops, list) else ()
    return ops, reply.header.get("autograd") is True


def _count(value: Any) -> int | None:
    """A non-negative integer from the child, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _echo(reply: Message) -> list[Any] | None:
    echo = reply.header.get("echo")
    return reply.value(echo) if echo is not None else None


class WrongOutput(Exception):
    """The student's forward returned something that is not a tensor."""


def remote_function(sub: Requests, class_name: str, deadline: float) -> Callable[..., torch.Tensor]:
    """A local callable that runs the student's Function in the child, for gradcheck.

    Forward and backward are requests to the child; backward goes through the child's autograd
    engine, which validates the student's gradients exactly as in a normal training step.
    """

    class RemoteFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, keep: bool, *args: Any) -> torch.Tensor:
            needs = [bool(n) for n in ctx.needs_input_grad[1:]]
            res = sub.forward(class_name, args, needs, timeout=deadline - time.monotonic(), keep=keep)
            if not isinstance(res.output, torch.Tensor):
                kind = res.output.type_name if isinstance(res.output, Other) else type(res.output).__name__
                raise WrongOutput(f"forward returned {kind}, not a tensor")
            ctx.handle = res.handle
            return res.output.clone()

        @staticmethod
        def backward(ctx, grad_output: torch.Tensor) -> tuple[Any, ...]:
            if ctx.handle is None:
                raise WrongOutput("the output of forward is not connected to its inputs (no grad_fn)")
            res = sub.backward(ctx.handle, grad_output.detach(), timeout=deadline - time.monotonic(),
                               mode="engine")
            grads = [g.to(grad_output.dtype) if isinstance(g, torch.Tensor) else None for g in res.grads]
            return (None, *grads)

    def call(*args: Any) -> torch.Tensor:
        keep = torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        return RemoteFunction.apply(keep, *args)

    return call
