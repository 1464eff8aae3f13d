"""The requests a grader makes of an evaluator, and what their replies mean: the wire's client half.

`Requests` builds each request header (forward, backward, a batch of evaluations, a measurement,
second derivatives, tangents, an exercise kind's own request) and decodes the reply into the
frozen facts below, for whatever answers it: the grader's `remote.Submission` (a live evaluator)
and the child's own `loopback.Loopback` (the run-ahead, which must build requests byte for byte
as the grader does). Inputs the grader reads back after the call (an evaluation's arguments and
upstream gradient, see `shared.py`) travel in shared memory; everything else in the frame. `remote_function` wraps a student's class in a local
`torch.autograd.Function` whose forward and backward are such requests, so that
`torch.autograd.gradcheck` runs on the grader's side.

Imported by both sides; imports neither (only `protocol`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch

from gradegrad.hygiene import clean_error
from gradegrad.sandbox.protocol import Message, Other, encode_value, frame_tensor, tensor_frame


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
    versions: list[int | None] = field(default_factory=list)  # in-place writes to each argument (child's word)
    ops: tuple[str, ...] = ()  # aten ops forward ran
    autograd: bool = False  # forward ran autograd's engine


@dataclass
class BackwardResult:
    grads: list[Any]
    devices: list[str | None]
    ops: tuple[str, ...] = ()  # aten ops the student's backward ran (raw mode)
    autograd: bool = False  # backward ran autograd's engine (torch.autograd.grad, .backward())
    # what backward left behind, as the child reports it (evidence of in-place writes, never a pass):
    output_after: Any = None  # forward's output, after backward
    in_place: "InPlace | None" = None
    container: str = "tuple"  # "list" when backward returned a list, which autograd refuses (the child's word)


@dataclass
class Item:
    """One evaluation of a batch (`Requests.evaluate`): forward on `args`, then (with `backward`)
    the student's backward on `grad_output`, raw or through autograd's engine (`mode`)."""

    args: list[Any]
    requires_grad: list[bool]
    grad_output: torch.Tensor | None = None
    mode: str = "raw"
    backward: bool = True
    # where the grader put the tensors in shared memory (None: sent in the frame), set by `evaluate`
    arg_refs: list[dict[str, Any] | None] = field(default_factory=list)
    grad_output_ref: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    """One frame of an `evaluate` reply: item `item`'s forward or backward, or the student's error."""

    item: int
    phase: str  # "forward" | "backward"
    result: "ForwardResult | BackwardResult | None"
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class AheadPairs:
    """The (request frame, reply frame) pairs of a gradcheck the child ran ahead, per mode
    ("fast", then "full" where the fast one failed in a way only the full one settles)."""

    pairs: dict[str, list[tuple[bytes, bytes]]]


class LostAt(ChildFault):
    """The evaluator stopped answering a batch while item `item`'s `phase` was due ("ahead": the
    gradcheck run ahead; "done": the end of the reply)."""

    def __init__(self, item: int, phase: str, fault: ChildFault) -> None:
        super().__init__(fault.kind, str(fault))
        self.item, self.phase = item, phase


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
    """The memory the student's forward and raw backward used on one input, as the kernel counted
    it for the evaluator's processes (the grader's own reading, see `meter.py`)."""

    forward_bytes: int | None  # None: the kernel's account could not be read
    backward_bytes: int | None  # None when backward was not run (see `problem`), or not read
    ctx_tensors: tuple[str, ...] = ()  # attributes of ctx holding tensors (the child's word: a hint)
    problem: str = ""  # "no_grad_fn", or "shape" when forward's output has another shape
    shape: tuple[int, ...] = ()  # forward's output shape, with problem "shape"
    source: str = ""  # what counted the bytes: "cgroup v1 peak", "VmHWM of its processes"
    # per argument, the gradient the measured backward returned, projected on the grader's random
    # probe (None: no gradient, or none of the probe's size): the grader checks they are backward's
    projections: tuple[float | None, ...] = ()


class Meter(Protocol):
    """The kernel's account of the evaluator's memory (`meter.py`): reset it, read the peak above."""

    source: str

    def reset(self) -> None: ...

    def read(self) -> int: ...


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
                timeout: float, keep: bool = True) -> ForwardResult:
        tensors: list[torch.Tensor] = []
        header = {"op": "forward", "class": class_name, "args": encode_value(list(args), tensors),
                  "requires_grad": list(requires_grad), "keep": keep}
        return self._forward_result(self._request(header, tensors, timeout))

    @staticmethod
    def _forward_result(reply: Message) -> ForwardResult:
        handle = reply.header.get("handle")
        meta = reply.header.get("meta") if isinstance(reply.header.get("meta"), dict) else {}
        versions = reply.header.get("versions")
        versions = [v if isinstance(v, int) else None for v in versions] if isinstance(versions, list) else []
        return ForwardResult(reply.value(reply.header.get("output")), meta,
                             handle if isinstance(handle, int) else None, versions, *_ops(reply))

    def evaluate(self, class_name: str, items: Sequence[Item], *, timeout: Callable[[str], float],
                 shared: Any = None, ahead: tuple[Sequence[Any], dict[str, Any], Sequence[bytes] | None] | None = None,
                 ahead_at: int = 0) -> Iterator[Answer | AheadPairs]:
        """Many evaluations in one request: for each item, forward's answer, then backward's (when
        forward returned a graph and the item wants it), each a frame of its own sent as soon as it
        is computed, so that what backward does cannot change the numbers forward is judged on and
        a backward that hangs or dies does not take forward's answer with it.

        The items' tensors go to `shared` memory (the caller reads them back after the reply);
        with `ahead` (gradcheck's args and options, and the request frames the grader predicted
        or None), the child also runs gradcheck ahead after item `ahead_at - 1` (fast_mode; then
        the full gradcheck where fast_mode failed in a way only it settles), or answers the
        predicted requests, and sends the pairs (`AheadPairs`), gradcheck's tensors in the frame. `timeout(phase)` gives each frame's
        time as it is awaited. A frame out of order is a protocol fault; the evaluator stopping
        raises `LostAt` (which item, which phase)."""
        tensors: list[torch.Tensor] = []
        header = {"op": "evaluate", "class": class_name, "items": [_place(it, tensors, shared) for it in items],
                  "ahead": _ahead(ahead, tensors) if ahead is not None else None,
                  "ahead_at": ahead_at if ahead is not None else None}
        sent = False

        def frame(item: int, phase: str) -> Message:
            nonlocal sent
            try:
                if not sent:
                    sent = True
                    return self._request(header, tensors, timeout(phase))
                return self._next_frame(timeout(phase))
            except ChildFault as exc:
                raise LostAt(item, phase, exc) from None

        for i, item in enumerate(items):
            if ahead is not None and i == ahead_at:
                yield self._ahead_pairs(frame(i, "ahead"), i)
            first = _expect(frame(i, "forward"), i, "forward")
            if isinstance(first.header.get("error"), dict):
                yield Answer(i, "forward", None, first.header["error"])
                continue
            forward = self._forward_result(Message(_dict(first.header.get("forward")), first.tensors))
            yield Answer(i, "forward", forward)
            if item.backward and forward.handle is not None:
                second = _expect(frame(i, "backward"), i, "backward")
                error = second.header.get("error")
                back = second.header.get("backward")
                result = self._backward_result(Message(back, second.tensors)) if isinstance(back, dict) else None
                yield Answer(i, "backward", result, error if isinstance(error, dict) else None)
        if ahead is not None and ahead_at >= len(items):
            yield self._ahead_pairs(frame(len(items), "ahead"), len(items))
        if frame(len(items), "done").header.get("done") is not True:
            raise LostAt(len(items), "done", ChildFault("protocol", "the evaluator sent an invalid reply (no end)"))

    @staticmethod
    def _ahead_pairs(reply: Message, item: int) -> AheadPairs:
        counts = reply.header.get("ahead")
        counts = counts if isinstance(counts, dict) and reply.header.get("phase") == "ahead" else {"bad": -1}
        if set(counts) - {"fast", "full"} or not all(type(n) is int and n >= 0 for n in counts.values()) \
                or 2 * sum(counts.values()) != len(reply.tensors):
            raise LostAt(item, "ahead", ChildFault("protocol", "the evaluator sent an invalid reply (run-ahead pairs)"))
        frames, pairs = iter(reply.tensors), {}
        for mode in ("fast", "full"):
            pairs[mode] = [(tensor_frame(next(frames)), tensor_frame(next(frames))) for _ in range(counts.get(mode, 0))]
        return AheadPairs(pairs)

    def _next_frame(self, timeout: float) -> Message:
        """The next frame of a reply of several (a live evaluator's; see `remote.Submission`)."""
        raise NotImplementedError

    def backward(self, handle: int, grad_output: torch.Tensor, *, timeout: float, mode: str = "raw",
                 release: bool = False) -> BackwardResult:
        tensors: list[torch.Tensor] = []
        header = {"op": "backward", "handle": handle, "grad_output": encode_value(grad_output, tensors),
                  "mode": mode, "release": release}
        return self._backward_result(self._request(header, tensors, timeout))

    @staticmethod
    def _backward_result(reply: Message) -> BackwardResult:
        grads = reply.value(reply.header.get("grads"))
        devices = reply.header.get("devices")
        if not isinstance(grads, list):
            grads = [grads]
        if not isinstance(devices, list):
            devices = [None] * len(grads)
        return BackwardResult(grads, [d if isinstance(d, str) else None for d in devices], *_ops(reply),
                              _tensor_or_none(reply, "output_after"), InPlace.parse(reply.header.get("in_place")),
                              "list" if reply.header.get("returned") == "list" else "tuple")

    def measure(self, class_name: str, args: Sequence[Any], requires_grad: Sequence[bool],
                grad_output: torch.Tensor, probes: Sequence[torch.Tensor | None], *, timeout: float, meter: Meter,
                shared: Any = None) -> Measured:
        """Forward then the raw backward once, each measured by `meter`: the grader resets the
        kernel's peak before each and reads it after (the evaluator waits between the two).
        Backward's gradients come back as their dot products with `probes` (one per argument)."""
        deadline = time.monotonic() + timeout
        tensors: list[torch.Tensor] = []
        header = {"op": "measure", "class": class_name, "args": encode_value(list(args), tensors, shared),
                  "requires_grad": list(requires_grad), "grad_output": encode_value(grad_output, tensors, shared),
                  "probes": encode_value(list(probes), tensors, shared)}
        meter.reset()
        h = self._request(header, tensors, timeout).header
        forward = _read(meter)
        names = h.get("ctx_tensors") if isinstance(h.get("ctx_tensors"), list) else []
        shape = h.get("shape") if isinstance(h.get("shape"), list) else []
        facts = (tuple(str(n)[:100] for n in names[:20]), str(h.get("problem") or "")[:20],
                 tuple(int(d) for d in shape[:16] if _count(d) is not None))
        if h.get("waiting") is not True:
            return Measured(forward, None, *facts, meter.source)
        try:
            meter.reset()
        except Exception:  # noqa: BLE001 - the evaluator died meanwhile: the next request says so
            forward = None
        # the evaluator waits for this frame (a round trip of its own) before it runs backward
        last = self._request({"op": "continue"}, [], deadline - time.monotonic())
        backward = _read(meter) if forward is not None else None
        projections = last.value(last.header.get("projections"))
        if last.header.get("phase") != "backward" or not isinstance(projections, list):
            raise ChildFault("protocol", "the evaluator sent an invalid reply (measure)")
        return Measured(forward, backward, *facts, meter.source,
                        tuple(p if isinstance(p, float) else None for p in projections[:len(args)]))

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


def _place(item: Item, tensors: list[torch.Tensor], shared: Any) -> dict[str, Any]:
    """An item's part of the request; its tensors in shared memory where they fit (their places
    kept on the item, for the read-back), else in the frame."""
    args = encode_value(list(item.args), tensors, shared)
    grad_output = encode_value(item.grad_output, tensors, shared) if item.grad_output is not None else None
    item.arg_refs = [a["$shared"] if isinstance(a, dict) and "$shared" in a else None for a in args]
    item.grad_output_ref = grad_output["$shared"] if isinstance(grad_output, dict) and "$shared" in grad_output \
        else None
    return {"args": args, "requires_grad": list(item.requires_grad), "grad_output": grad_output,
            "mode": item.mode, "backward": item.backward}


def gradcheck_spec(args: Sequence[Any], options: dict[str, Any], tensors: list[torch.Tensor]) -> dict[str, Any]:
    """What the child needs to run a gradcheck ahead: its arguments (which require grad) and options."""
    return {"args": encode_value([a.detach() if isinstance(a, torch.Tensor) else a for a in args], tensors),
            "requires_grad": [isinstance(a, torch.Tensor) and a.requires_grad for a in args], "gradcheck": options}


def _ahead(ahead: tuple[Sequence[Any], dict[str, Any], Sequence[bytes] | None],
           tensors: list[torch.Tensor]) -> dict[str, Any]:
    """`gradcheck_spec`, and the request frames to answer instead where the grader predicted them."""
    args, options, predicted = ahead
    spec = gradcheck_spec(args, options, tensors)
    if predicted is not None:
        spec["predicted"] = encode_value([frame_tensor(frame) for frame in predicted], tensors)
    return spec


def _read(meter: Meter) -> int | None:
    """The meter's reading, or None when it cannot be read (the evaluator died meanwhile)."""
    try:
        return meter.read()
    except Exception:  # noqa: BLE001 - the check reports that the memory could not be measured
        return None


def _expect(reply: Message, item: int, phase: str) -> Message:
    """A frame of an `evaluate` reply, checked to be the one due."""
    if reply.header.get("item") != item or reply.header.get("phase") != phase:
        raise LostAt(item, phase, ChildFault("protocol", f"the evaluator sent an invalid reply (expected {phase} "
                                                         f"of evaluation {item})"))
    return reply


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class WrongOutput(Exception):
    """The student's forward returned something that is not a tensor."""


class WrongDtype(WrongOutput):
    """The student's forward answered in another floating dtype than its inputs' (gradcheck needs float64)."""


def remote_function(sub: Requests, class_name: str,
                    deadline: float | Callable[[], float]) -> Callable[..., torch.Tensor]:
    """A local callable that runs the student's Function in the child, for gradcheck.

    Forward and backward are requests to the child; backward goes through the child's autograd
    engine, which validates the student's gradients exactly as in a normal training step.
    `deadline` is a time.monotonic() value, or a callable giving it (a budget that can grow).
    """
    target = _Target(sub, class_name, deadline if callable(deadline) else (lambda: deadline))

    def call(*args: Any) -> torch.Tensor:
        keep = torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        return _RemoteFunction.apply(target, keep, *args)

    return call


class _Target:
    """Where `_RemoteFunction` sends its requests: the child, the student's class, the deadline."""

    __slots__ = ("sub", "class_name", "until")

    def __init__(self, sub: Requests, class_name: str, until: Callable[[], float]) -> None:
        self.sub, self.class_name, self.until = sub, class_name, until


class _RemoteFunction(torch.autograd.Function):
    """`remote_function`'s proxy (one class for every call: creating an autograd Function per call
    cost more than a request)."""

    @staticmethod
    def forward(ctx, target: _Target, keep: bool, *args: Any) -> torch.Tensor:
        needs = [bool(n) for n in ctx.needs_input_grad[2:]]
        res = target.sub.forward(target.class_name, args, needs, timeout=target.until() - time.monotonic(), keep=keep)
        if isinstance(res.output, list) and len(res.output) == 1:  # a 1-tuple: the forward check says so
            res.output = res.output[0]
        if not isinstance(res.output, torch.Tensor):
            kind = res.output.type_name if isinstance(res.output, Other) else type(res.output).__name__
            raise WrongOutput(f"forward returned {kind}, not a tensor")
        given = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
        if given is not None and res.output.is_floating_point() and res.output.dtype != given:
            raise WrongDtype(f"forward returned {str(res.output.dtype).removeprefix('torch.')} for "
                             f"{str(given).removeprefix('torch.')} inputs: return the inputs' dtype")
        ctx.target, ctx.handle = target, res.handle
        return res.output.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[Any, ...]:
        if ctx.handle is None:
            raise WrongOutput("the output of forward is not connected to its inputs (no grad_fn)")
        target = ctx.target
        res = target.sub.backward(ctx.handle, grad_output.detach(), timeout=target.until() - time.monotonic(),
                                  mode="engine")
        grads = [g.to(grad_output.dtype) if isinstance(g, torch.Tensor) else None for g in res.grads]
        return (None, None, *grads)
