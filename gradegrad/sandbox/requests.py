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

from gradegrad.hygiene import clean_error
from gradegrad.sandbox.protocol import Message, Other, encode_value


class ChildFault(Exception):
    """The child could not answer: it timed out, died or sent garbage."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "timeout" | "crash" | "protocol"


class StudentRaised(Exception):
    """The student's code raised; `error` is the child's description of the exception."""

    def __init__(self, error: dict[str, Any]) -> None:
        error = clean_error(error)  # capped, one-line type name, no control characters
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
    problems: tuple[dict[str, Any], ...] = ()  # top-level code that raised while the rest loaded: the
    # child's description of the error, and "at", the line where that piece (a notebook cell) starts


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
    # what backward left behind, as the child reports it (evidence of in-place writes, never a pass):
    grad_output_after: Any = None  # the grad_output tensor backward received, after backward
    output_after: Any = None  # forward's output, after backward
    in_place: "InPlace | None" = None


@dataclass(frozen=True)
class InPlace:
    """Version counters before and after backward (each in-place write through torch bumps one)."""

    grad_output: tuple[int, int] | None = None
    output: tuple[int, int] | None = None
    args: tuple[tuple[int, int] | None, ...] = ()
    saved: tuple[tuple[str, int, int], ...] = ()  # (role: "arg:i", "output" or "other", before, after)
    saved_error: str = ""  # unpacking the saved tensors failed before backward (forward overwrote one)

    @staticmethod
    def parse(data: Any) -> "InPlace | None":
        if not isinstance(data, dict) or not isinstance(data.get("before"), dict) \
                or not isinstance(data.get("after"), dict):
            return None
        before, after = data["before"], data["after"]

        def pair(key: str) -> tuple[int, int] | None:
            a, b = _count(before.get(key)), _count(after.get(key))
            return (a, b) if a is not None and b is not None else None

        def pairs(key: str) -> list[tuple[int, int] | None]:
            a, b = before.get(key), after.get(key)
            if not isinstance(a, list) or not isinstance(b, list):
                return []
            return [(x, y) if _count(x) is not None and _count(y) is not None else None
                    for x, y in zip(a[:64], b[:64])]

        roles = data.get("saved_roles") if isinstance(data.get("saved_roles"), list) else []
        saved = tuple((str(r)[:20], *v) for r, v in zip(roles, pairs("saved")) if v is not None)
        error = data.get("saved_error")
        return InPlace(pair("grad_output"), pair("output"), tuple(pairs("args")), saved,
                       str(error)[:500] if isinstance(error, str) else "")


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
             *, timeout: float, backward_timeout: float | None = None, mode: str = "raw",
             echo: bool = True) -> tuple[ForwardResult, BackwardResult | None, dict | None]:
        """forward then backward in one round trip: (forward, backward or None, backward's error or None).

        The child sends forward's reply as soon as forward returns, then backward's. Backward gets
        `backward_timeout` (default: `timeout`) from there; when it hangs, dies or garbles its reply,
        `PartialCall` carries forward's result with the fault."""
        tensors: list[torch.Tensor] = []
        header = {"op": "call", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "keep": True, "echo": echo,
                  "grad_output": encode_value(grad_output, tensors), "mode": mode, "split": True}
        first = self._request(header, tensors, timeout)
        if not isinstance(first.header.get("forward"), dict):
            raise ChildFault("protocol", "the evaluator sent an invalid reply (no forward result)")
        forward = self._forward_result(Message(first.header["forward"], first.tensors))
        try:
            reply = self._second_frame(timeout if backward_timeout is None else backward_timeout)
        except StudentRaised as exc:  # the evaluator's own failure after forward: backward's error
            return forward, None, exc.error
        except ChildFault as exc:
            raise PartialCall(forward, exc) from None
        back, error = reply.header.get("backward"), reply.header.get("backward_error")
        backward = self._backward_result(Message(back, reply.tensors)) if isinstance(back, dict) else None
        return forward, backward, error if isinstance(error, dict) else None

    def _second_frame(self, timeout: float) -> Message:
        """The next frame of a split reply (a live evaluator's; see `remote.Submission`)."""
        raise NotImplementedError

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
                              *_ops(reply), _tensor_or_none(reply, "grad_output_after"),
                              _tensor_or_none(reply, "output_after"), InPlace.parse(reply.header.get("in_place")))

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


def _tensor_or_none(reply: Message, key: str) -> torch.Tensor | None:
    value = reply.value(reply.header.get(key)) if reply.header.get(key) is not None else None
    return value if isinstance(value, torch.Tensor) else None


def _echo(reply: Message) -> list[Any] | None:
    echo = reply.header.get("echo")
    return reply.value(echo) if echo is not None else None


class WrongOutput(Exception):
    """The student's forward returned something that is not a tensor."""


class WrongDtype(WrongOutput):
    """The student's forward answered in another floating dtype than its inputs' (gradcheck needs float64)."""


class PartialCall(ChildFault):
    """The child answered forward, then backward timed out, crashed or garbled its reply."""

    def __init__(self, forward: ForwardResult, fault: ChildFault) -> None:
        super().__init__(fault.kind, str(fault))
        self.forward = forward


def remote_function(sub: Requests, class_name: str,
                    deadline: float | Callable[[], float]) -> Callable[..., torch.Tensor]:
    """A local callable that runs the student's Function in the child, for gradcheck.

    Forward and backward are requests to the child; backward goes through the child's autograd
    engine, which validates the student's gradients exactly as in a normal training step.
    `deadline` is a time.monotonic() value, or a callable giving it (a budget that can grow).
    """
    until = deadline if callable(deadline) else (lambda: deadline)

    class RemoteFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, keep: bool, *args: Any) -> torch.Tensor:
            needs = [bool(n) for n in ctx.needs_input_grad[1:]]
            res = sub.forward(class_name, args, needs, timeout=until() - time.monotonic(), keep=keep)
            if isinstance(res.output, list) and len(res.output) == 1:  # a 1-tuple: the forward check says so
                res.output = res.output[0]
            if not isinstance(res.output, torch.Tensor):
                kind = res.output.type_name if isinstance(res.output, Other) else type(res.output).__name__
                raise WrongOutput(f"forward returned {kind}, not a tensor")
            given = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
            if given is not None and res.output.is_floating_point() and res.output.dtype != given:
                raise WrongDtype(f"forward returned {str(res.output.dtype).removeprefix('torch.')} for "
                                 f"{str(given).removeprefix('torch.')} inputs: return the inputs' dtype")
            ctx.handle = res.handle
            return res.output.clone()

        @staticmethod
        def backward(ctx, grad_output: torch.Tensor) -> tuple[Any, ...]:
            if ctx.handle is None:
                raise WrongOutput("the output of forward is not connected to its inputs (no grad_fn)")
            res = sub.backward(ctx.handle, grad_output.detach(), timeout=until() - time.monotonic(),
                               mode="engine")
            grads = [g.to(grad_output.dtype) if isinstance(g, torch.Tensor) else None for g in res.grads]
            return (None, *grads)

    def call(*args: Any) -> torch.Tensor:
        keep = torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        return RemoteFunction.apply(keep, *args)

    return call
