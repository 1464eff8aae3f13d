"""The evaluator that runs inside the child process: load the submission, answer requests.

It decides nothing. It reports facts (which classes exist, what forward returned, what backward
returned) as data over `protocol`; every verdict is computed by the parent. Everything here may
be tampered with by the student's code, which only affects that student's own results.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from types import FunctionType
from typing import Any, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gradegrad.sandbox.confine import confine
from gradegrad.sandbox.measure import forward_tangent, has_jvp, second_order, tensor_attributes
from gradegrad.sandbox.protocol import Channel, Message, encode_frame, encode_value, frame_tensor, parse_frame, \
    tensor_frame
from gradegrad.sandbox.shared import SharedView

MODULE_NAME = "submission"
MAX_PROBLEMS = 20  # load problems (cells that raised) reported
LOAD_GRACE = 5.0  # seconds a generated module may take, once its load time is up, for its definitions
MAX_HANDLES = 256  # live forward graphs kept for later backward calls
MAX_TRACE = 8000
MAX_OPS = 500
MAX_AHEAD = 20000  # (request, reply) pairs one run-ahead may send
# handles of a run-ahead's forward results are numbered from here, afresh for each run-ahead, so that
# the same gradcheck gets the same numbers wherever it runs: here, or predicted by the grader
AHEAD_HANDLES = 1 << 40
GRADCHECK_OPTIONS = ("eps", "atol", "rtol", "fast_mode", "check_undefined_grad", "raise_exception")
# what torch adds to a fast_mode failure whose full Jacobian would pass (as checks/gradcheck.py reads it)
SLOW_MODE_PASSES: str | None = getattr(sys.modules["torch.autograd.gradcheck"], "FAST_FAIL_SLOW_OK_MSG", None)


class LoadTimeout(BaseException):
    """The submission's top-level code ran past its time (raised in it by SIGALRM, see `_time_limit`)."""

    __module__ = "builtins"  # the student's traceback ends with "LoadTimeout: ...", not gradegrad's module path


@contextmanager
def _time_limit(seconds: Any) -> Iterator[None]:
    """Interrupt the code run inside with LoadTimeout after `seconds` (the parent's deadline, a
    little later, is what holds if the student's code catches it or blocks the signal)."""
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise LoadTimeout(f"import/top-level code took too long: it did not finish within --load-timeout "
                          f"{seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class OpRecorder(TorchDispatchMode):
    """Records the aten ops the student's code runs, and whether autograd's engine ran them.

    A fact for the `hand_written` check. The student can switch a dispatch mode off; see
    SECURITY.md for what this does and does not prove.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()
        self.autograd = False

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # else torch wraps __torch_dispatch__ and imports torch._dynamo (a second)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func._schema.name)[:100])
        if torch._C._current_graph_task_id() != -1:  # inside torch.autograd.grad / .backward()
            self.autograd = True
        return func(*args, **(kwargs or {}))

    def names(self) -> list[str]:
        return sorted(self.ops)[:MAX_OPS]


class Evaluator:
    def __init__(self, channel: Channel, layers: list[str] = (), missing: list[str] = (),
                 source: bytes | None = None) -> None:
        self.channel = channel
        self.layers, self.missing = list(layers), list(missing)  # set up when this process was born
        self.source = source  # the submission, read before this process gave up root (spawn.py)
        self.module: Any = None
        self.path = ""
        self.device = "cpu"
        self.handles: OrderedDict[int, tuple[Any, list[Any], type]] = OrderedDict()
        self.shared: SharedView | None = None  # the grader's shared memory (fd 5), mapped at `confine`
        self.next_handle = 0
        self.rejected = False  # an error now comes from autograd validating backward's result

    # ------------------------------------------------------------------ requests

    def serve(self) -> None:
        self.channel.send({"ok": True, "op": "ready", "torch": torch.__version__, "pid": os.getpid(),
                           "layers": self.layers, "missing": self.missing})
        while True:
            msg = self.channel.recv()
            op = msg.header.get("op")
            if op == "exit":
                return
            self.channel.send(*self.handle(msg))

    def handle(self, msg: Message) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """Answer one request: the reply header and its tensors; an exception becomes data."""
        op = msg.header.get("op")
        handler = getattr(self, f"op_{op}", None)
        tensors: list[torch.Tensor] = []
        self.rejected = False
        msg.shared = self.shared
        try:
            if handler is None:
                raise ValueError(f"unknown request {op!r}")
            with torch.enable_grad():  # and the caller's mode back after (run-ahead calls this in no_grad)
                reply = handler(msg, tensors)
        except BaseException as exc:  # the student's exception, SystemExit included
            tensors = []
            reply = {"ok": False, "error": self.describe(exc)}
        return reply, tensors

    def op_confine(self, msg: Message, tensors: list) -> dict:
        """Set up the device and the kernel protections, before any student code runs."""
        self.path = str(Path(msg.header["path"]).resolve())
        self.device = msg.header.get("device", "cpu")
        if self.device != "cpu":
            torch.empty(0, device=self.device)  # initialise CUDA here, in the child only
        if msg.header.get("shared"):
            self.shared = SharedView()  # mapped before RLIMIT_AS, which counts what is mapped later
        active, missing = [], []
        if msg.header.get("confine", True):
            active, missing = confine(self.path, os.getcwd(), msg.header.get("memory"), self.device,
                                      ipc_namespace="ipc-namespace" in msg.header.get("layers", ()))
        return {"ok": True, "protections": active, "missing": missing}

    def op_load(self, msg: Message, tensors: list) -> dict:
        """Import the submission, its top-level code within `seconds`. When that code raises (or
        runs too long) after defining classes or functions, they are kept and graded, and the
        error is reported in `problems`; so are the pieces of a generated module (notebook
        cells, a folder's modules) that raised while the others ran (its `_GG_PROBLEMS`)."""
        sys.path.append(str(Path(self.path).parent))  # last: cannot shadow torch or numpy
        loader = HeldSource(self.path, self.source) if self.source is not None else \
            importlib.machinery.SourceFileLoader(MODULE_NAME, self.path)  # whatever the file's suffix
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(MODULE_NAME, self.path,
                                                                                        loader=loader))
        module.__dict__.update(_GG_TIMEOUT=LoadTimeout, _GG_GRACE=LOAD_GRACE)  # read by a generated module
        sys.modules[MODULE_NAME] = module
        failed = None
        try:
            with _time_limit(msg.header.get("seconds")):
                loader.exec_module(module)
        except BaseException as exc:  # the student's exception, SystemExit and LoadTimeout included
            failed = exc
        self.module = module
        classes, functions = self.classes(), self.functions()
        if failed is not None and not classes and not functions:
            return {"ok": False, "error": self.load_error(failed)}
        return {"ok": True, "classes": classes, "functions": functions, "problems": self.load_problems(failed)}

    def load_error(self, exc: BaseException) -> dict[str, Any]:
        error = self.describe(exc)
        if isinstance(exc, LoadTimeout):
            error["kind"] = "timeout"
        return error

    def load_problems(self, failed: BaseException | None) -> list[dict[str, Any]]:
        """What raised during the load while the rest ran: (first line of the piece, error)."""
        recorded = getattr(self.module, "_GG_PROBLEMS", None)
        recorded = recorded[:MAX_PROBLEMS] if isinstance(recorded, list) else []
        pieces = [(at, exc) for at, exc in recorded if type(at) is int and isinstance(exc, BaseException)]
        if failed is not None and all(exc is not failed for _, exc in pieces):
            pieces.append((None, failed))
        return [{"at": at, **self.load_error(exc)} for at, exc in pieces[:MAX_PROBLEMS]]

    def op_forward(self, msg: Message, tensors: list) -> dict:
        cls = self.find(msg.header["class"])
        args = [self.prepare(a, rg) for a, rg in zip(msg.value(msg.header["args"]), msg.header["requires_grad"])]
        with OpRecorder() as ops:
            out = cls.apply(*args)
        reply: dict[str, Any] = {"ok": True, "output": encode_value(out, tensors), "meta": self.meta(out),
                                 "ops": ops.names(), "autograd": ops.autograd}
        kept = _single(out)  # a 1-tuple's tensor: its backward is still graded
        if msg.header.get("keep") and isinstance(kept, torch.Tensor) and kept.grad_fn is not None:
            reply["handle"] = self.keep(kept, args, cls)
        reply["versions"] = [a._version if isinstance(a, torch.Tensor) else None for a in args]
        return reply

    def op_backward(self, msg: Message, tensors: list) -> dict:
        handle = msg.header["handle"]
        if handle not in self.handles:
            raise LookupError("the forward result was released")
        out, args, cls = self.handles[handle]
        grad_output = msg.value(msg.header["grad_output"]).to(out.device)
        before = Versions(out, args, grad_output)
        ops = OpRecorder()
        if msg.header.get("mode") == "raw":
            with ops:
                grads = self.raw_backward(cls, out, grad_output)
        else:
            self.rejected = True
            grads = self.engine_backward(out, args, grad_output)
            self.rejected = False
        reply: dict[str, Any] = {"ok": True, "grads": encode_value(list(grads), tensors),
                                 "returned": getattr(grads, "container", "tuple"),
                                 "devices": [str(g.device) if isinstance(g, torch.Tensor) else None for g in grads],
                                 "ops": ops.names(), "autograd": ops.autograd,
                                 # facts about in-place writes during backward; the grader judges them
                                 "in_place": before.after(),
                                 "output_after": encode_value(out.detach(), tensors)}
        if msg.header.get("release"):
            self.handles.pop(handle, None)
        return reply

    def op_evaluate(self, msg: Message, tensors: list) -> dict:
        """Evaluations in a row (`Requests.evaluate`): for each item, forward, then backward on its
        output, each answered in a frame of its own as soon as it is computed (forward's numbers
        leave before backward runs, so backward cannot change them, and reach the grader even if
        backward hangs or crashes); a gradcheck run ahead where asked; then the end."""
        items, ahead, at = msg.header["items"], msg.header.get("ahead"), msg.header.get("ahead_at")
        for i, item in enumerate(items):
            if ahead is not None and i == at:
                self.send_ahead(msg, ahead)
            self.evaluate_item(msg, i, item)
        if ahead is not None and (not isinstance(at, int) or at >= len(items)):
            self.send_ahead(msg, ahead)
        return {"ok": True, "done": True}

    def evaluate_item(self, msg: Message, i: int, item: dict[str, Any]) -> None:
        """One item of `op_evaluate`: its forward frame, then its backward frame."""
        def part(header: dict[str, Any]) -> Message:
            return Message({"class": msg.header["class"], **header}, msg.tensors, shared=msg.shared)

        tensors: list[torch.Tensor] = []
        self.rejected = False
        try:
            forward = self.op_forward(part({"args": item["args"], "requires_grad": item["requires_grad"],
                                            "keep": item.get("backward", True)}), tensors)
        except BaseException as exc:  # the student's exception, SystemExit included
            self.channel.send({"ok": True, "item": i, "phase": "forward", "error": self.describe(exc)})
            return
        self.channel.send({"ok": True, "item": i, "phase": "forward", "forward": forward}, tensors)
        handle = forward.get("handle")
        if handle is None:
            return
        used = self.handles[handle][1]
        tensors = []
        self.rejected = False
        try:
            back = self.op_backward(part({"handle": handle, "grad_output": item["grad_output"], "mode": item["mode"],
                                          "release": True}), tensors)
            reply = {"ok": True, "item": i, "phase": "backward", "backward": back}
        except BaseException as exc:  # the student's exception, SystemExit included
            tensors = []
            reply = {"ok": True, "item": i, "phase": "backward", "error": self.describe(exc)}
            self.handles.pop(handle, None)
        if self.device != "cpu":
            self.copy_back(msg.value(item["args"]), used)
        self.channel.send(reply, tensors)

    def copy_back(self, given: list[Any], used: list[Any]) -> None:
        """On a GPU the student's code got copies of the shared inputs: write them back (the
        evaluator's word, not a fact the grader sees; on the CPU they are the shared memory itself)."""
        for view, copy in zip(given, used):
            if isinstance(view, torch.Tensor) and isinstance(copy, torch.Tensor) and copy is not view:
                view.copy_(copy.detach().cpu())

    def op_release(self, msg: Message, tensors: list) -> dict:
        for handle in msg.header.get("handles", []):
            self.handles.pop(handle, None)
        return {"ok": True}

    def op_measure(self, msg: Message, tensors: list) -> dict:
        """Forward, then (once the grader has read the kernel's account of its memory and says
        `continue`) the raw backward, for the `efficiency` check. The numbers are the grader's: this
        only runs the student's code between its readings, and names tensors kept on ctx (a hint)."""
        cls, args = self.find(msg.header["class"]), self.arguments(msg)
        grad_output = msg.value(msg.header["grad_output"])
        out = cls.apply(*args)
        if not isinstance(out, torch.Tensor) or out.grad_fn is None:
            return {"ok": True, "phase": "forward", "problem": "no_grad_fn"}
        if out.shape != grad_output.shape:
            return {"ok": True, "phase": "forward", "problem": "shape", "shape": list(out.shape)}
        self.channel.send({"ok": True, "phase": "forward", "ctx_tensors": tensor_attributes(out.grad_fn),
                           "waiting": True})
        if self.channel.recv().header.get("op") != "continue":
            raise ValueError("measure: the grader did not say continue")
        grads = self.raw_backward(cls, out, grad_output.to(out.device))
        return {"ok": True, "phase": "backward",
                "projections": encode_value(projections(grads, msg.value(msg.header["probes"])), tensors)}

    def op_second_order(self, msg: Message, tensors: list) -> dict:
        """Second derivatives through the student's backward (facts for `double_backward`)."""
        cls, args = self.find(msg.header["class"]), self.arguments(msg)
        self.rejected = True
        connected, second = second_order(cls, args, msg.value(msg.header["grad_output"]),
                                         msg.value(msg.header["directions"]))
        self.rejected = False
        return {"ok": True, "connected": connected, "second": encode_value(second, tensors)}

    def op_tangent(self, msg: Message, tensors: list) -> dict:
        """The output's tangent from the student's `jvp` (facts for the `jvp` check)."""
        cls, args = self.find(msg.header["class"]), self.arguments(msg)
        if not has_jvp(cls):
            return {"ok": True, "has_jvp": False}
        tangent = forward_tangent(cls, args, msg.value(msg.header["tangents"]))
        return {"ok": True, "has_jvp": True, "tangent": encode_value(tangent, tensors)}

    def op_speculate(self, msg: Message, tensors: list) -> dict:
        """Run gradcheck here, ahead of the grader, through the very proxy the grader uses, and send
        back every (request, reply) pair that proxy exchanged with this evaluator.

        The grader then runs its own gradcheck; a request it makes with exactly the same bytes takes
        the reply sent ahead instead of a round trip, and any other goes to this process as usual.
        Nothing here is a verdict: the replies are the same facts the grader would have asked for.
        """
        mode = "fast" if dict(msg.header.get("gradcheck") or {}).get("fast_mode", True) else "full"
        pairs = self.run_ahead(msg, msg.header, modes=(mode,))[mode]
        for request, reply in pairs:
            tensors += [frame_tensor(request), frame_tensor(reply)]
        return {"ok": True, "pairs": len(pairs)}

    def send_ahead(self, msg: Message, ahead: dict[str, Any]) -> None:
        """The frame of `op_evaluate` with a gradcheck run ahead. With the requests the grader
        predicted (those of a correct submission's fast_mode gradcheck): each answered, no
        gradcheck here. Without: fast_mode, and the full one too where fast_mode failed in a way
        only the full one settles (as the grader's check goes on)."""
        if ahead.get("predicted") is not None:
            frames = msg.value(ahead["predicted"])
            pairs = {"fast": self.answer_all([tensor_frame(f) for f in frames[:MAX_AHEAD]]), "full": []}
        else:
            pairs = self.run_ahead(msg, ahead, modes=("fast", "full"))
        tensors = [frame_tensor(f) for mode in ("fast", "full") for pair in pairs[mode] for f in pair]
        self.channel.send({"ok": True, "phase": "ahead", "ahead": {mode: len(found) for mode, found in pairs.items()}},
                          tensors)

    def answer_all(self, requests: list[bytes]) -> list[tuple[bytes, bytes]]:
        """Each request frame answered in order, as if sent one by one: (request, reply) pairs.
        A request that fails is answered with its error, and the next ones are answered still."""
        with self.ahead_handles():
            return [(request, encode_frame(*self.handle(parse_frame(request)))) for request in requests]

    def run_ahead(self, msg: Message, spec: dict[str, Any], modes: tuple[str, ...]) -> dict[str, list[tuple[bytes, bytes]]]:
        """gradcheck(**options) through `remote_function` over a `Loopback`: its (request, reply)
        pairs; "full" only after a fast_mode failure that only the full gradcheck settles, or alone."""
        args = [a.requires_grad_(bool(rg)) if isinstance(a, torch.Tensor) else a
                for a, rg in zip(msg.value(spec["args"]), spec["requires_grad"])]
        options = {k: v for k, v in dict(spec.get("gradcheck") or {}).items() if k in GRADCHECK_OPTIONS}
        found: dict[str, list[tuple[bytes, bytes]]] = {"fast": [], "full": []}
        for mode in modes:
            found[mode], outcome = self.gradcheck_pairs(msg.header["class"], args, {**options, "fast_mode": mode == "fast"})
            if mode == "fast" and not (isinstance(outcome, Exception) and
                                       (SLOW_MODE_PASSES is None or SLOW_MODE_PASSES in str(outcome))):
                break
        return found

    def gradcheck_pairs(self, class_name: str, args: list[Any], options: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], Any]:
        """One gradcheck through `remote_function` over a `Loopback` to this evaluator (its handles
        numbered afresh): the (request, reply) pairs and gradcheck's outcome (True, or its
        GradcheckError; None when anything else stopped it)."""
        from torch.autograd.gradcheck import GradcheckError

        from gradegrad.sandbox.loopback import Loopback
        from gradegrad.sandbox.requests import remote_function

        loop = Loopback(self.handle, MAX_AHEAD)
        outcome: Any = None
        with self.ahead_handles():
            try:
                outcome = torch.autograd.gradcheck(remote_function(loop, class_name, float("inf")), tuple(args), **options)
            except GradcheckError as exc:
                outcome = exc
            except BaseException:  # noqa: BLE001 - the grader's own gradcheck meets it again and reports it
                pass
        return loop.pairs, outcome

    @contextmanager
    def ahead_handles(self) -> Iterator[None]:
        """Forward results kept meanwhile are numbered from AHEAD_HANDLES (the same numbers for the
        same run-ahead, wherever it runs); the ordinary numbering goes on after."""
        ordinary, self.next_handle = self.next_handle, AHEAD_HANDLES
        try:
            yield
        finally:
            self.next_handle = ordinary

    def arguments(self, msg: Message) -> list[Any]:
        return [self.prepare(a, rg) for a, rg in zip(msg.value(msg.header["args"]), msg.header["requires_grad"])]

    def op_module(self, msg: Message, tensors: list) -> dict:
        """Build the student's nn.Module from the `init` arguments and call it (kind `module`)."""
        cls = self.find(msg.header["class"])
        args = [self.prepare(a, rg) for a, rg in zip(msg.value(msg.header["args"]), msg.header["requires_grad"])]
        init = [bool(i) for i in msg.header["init"]]
        out = cls(*[a for a, i in zip(args, init) if i])(*[a for a, i in zip(args, init) if not i])
        reply = {"ok": True, "output": encode_value(out, tensors), "meta": self.meta(out), "root": _root(out)}
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            reply["handle"] = self.keep(out, args, cls)
        return reply

    def op_numpy(self, msg: Message, tensors: list) -> dict:
        """f(x, p), or f.make_vjp(x, p)(u), of a student's NumPy function (kind `vjp`)."""
        from gradegrad.kinds.numpy_side import call

        fn = self.find_function(msg.header["function"])
        u = msg.value(msg.header.get("u")) if msg.header.get("vjp") else None
        value = call(fn, msg.value(msg.header["args"]), bool(msg.header.get("vjp")), u)
        return {"ok": True, "value": encode_value(value, tensors)}

    def op_chain(self, msg: Message, tensors: list) -> dict:
        """A few SGD steps driven by the student's backward_diff_chain (kind `chain`)."""
        from gradegrad.kinds.numpy_side import train

        fn = self.find_function(msg.header["function"])
        x, y, w, b = msg.value(msg.header["args"])
        losses, grads = train(fn, x, y, w, b, int(msg.header["steps"]), float(msg.header["lr"]))
        return {"ok": True, "losses": encode_value(losses, tensors), "grads": encode_value(grads, tensors)}

    def op_kind(self, msg: Message, tensors: list) -> dict:
        """A request of the newer exercise kinds (ode, jacobian, training, jax_vjp, ode_field): gradegrad.kinds.sides."""
        from gradegrad.kinds.sides import answer

        return answer(self, msg, tensors)

    # ------------------------------------------------------------------ helpers

    def classes(self) -> list[dict[str, Any]]:
        found = []
        for name, obj in vars(self.module).items():
            if not isinstance(obj, type) or getattr(obj, "__module__", None) != MODULE_NAME:
                continue
            is_function = issubclass(obj, torch.autograd.Function)
            base = torch.autograd.Function
            found.append({
                "name": name[:200], "is_function": is_function,
                "forward": callable(getattr(obj, "forward", None)) and getattr(obj, "forward", None) is not base.forward,
                "backward": callable(getattr(obj, "backward", None)) and getattr(obj, "backward", None) is not base.backward,
                "bases": [b.__name__[:100] for b in obj.__mro__[1:4]],
                "module": issubclass(obj, torch.nn.Module),
            })
        return found

    def functions(self) -> list[dict[str, Any]]:
        """The plain functions the submission defines (kinds `vjp` and `chain`)."""
        found = []
        for name, obj in vars(self.module).items():
            jax = type(obj).__name__ in ("custom_vjp", "custom_jvp")  # jax.custom_vjp(f) (kind jax_vjp)
            if (isinstance(obj, FunctionType) or jax) and getattr(obj, "__module__", None) == MODULE_NAME:
                found.append({"name": name[:200], "make_vjp": callable(getattr(obj, "make_vjp", None)),
                              "bases": [type(obj).__name__[:100]]})
        return found[:1000]

    def find_function(self, name: str) -> Any:
        fn = getattr(self.module, name, None)
        if not callable(fn):
            raise LookupError(f"function {name} not found")
        return fn

    def find(self, name: str) -> type:
        cls = getattr(self.module, name, None)
        if isinstance(cls, FunctionType) and getattr(cls, "__module__", None) == MODULE_NAME:
            from gradegrad.kinds.compose_side import composition  # seed 001's dot = Sum.apply(mul(x, y))

            return composition(cls)
        if not isinstance(cls, type):
            raise LookupError(f"class {name} not found")
        return cls

    def prepare(self, value: Any, requires_grad: bool) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        value = value.to(self.device)
        return value.requires_grad_(True) if requires_grad else value

    def keep(self, out: torch.Tensor, args: list[Any], cls: type) -> int:
        self.next_handle += 1
        self.handles.pop(self.next_handle, None)  # a run-ahead's number used again: the newest result
        self.handles[self.next_handle] = (out, args, cls)
        while len(self.handles) > MAX_HANDLES:
            self.handles.popitem(last=False)
        return self.next_handle

    @staticmethod
    def meta(out: Any) -> dict[str, Any]:
        if isinstance(out, (tuple, list)):
            return {"type": type(out).__name__[:200], "length": len(out)}
        if not isinstance(out, torch.Tensor):
            return {"type": type(out).__name__[:200]}
        return {"type": "Tensor", "device": str(out.device), "requires_grad": out.requires_grad,
                "grad_fn": type(out.grad_fn).__name__[:200] if out.grad_fn is not None else None}

    @staticmethod
    def raw_backward(cls: type, out: torch.Tensor, grad_output: torch.Tensor) -> list[Any]:
        """What the student's backward returned, exactly, before autograd validates it."""
        ctx = out.grad_fn
        with torch.no_grad():
            grads = cls.backward(ctx, grad_output)
        if isinstance(grads, list):
            return Returned(grads, "list")  # autograd refuses a list: the grader fails it
        return list(grads) if isinstance(grads, tuple) else [grads]

    @staticmethod
    def engine_backward(out: torch.Tensor, args: list[Any], grad_output: torch.Tensor) -> list[Any]:
        """Gradients as autograd's engine delivers them (validating count, shape and dtype)."""
        wanted = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        got = iter(torch.autograd.grad(out, wanted, grad_output, retain_graph=True, allow_unused=True))
        return [next(got) if isinstance(a, torch.Tensor) and a.requires_grad else None for a in args]

    def describe(self, exc: BaseException) -> dict[str, Any]:
        """The exception as text, keeping the student's own frames of the traceback."""
        frames = traceback.extract_tb(exc.__traceback__)
        mine = [f for f in frames if f.filename == self.path]
        lines = traceback.format_list(mine) if mine else []
        try:
            lines += traceback.format_exception_only(type(exc), exc)
            message = str(exc)[:2000]
        except Exception:  # a student's exception whose __str__ itself raises
            lines.append(f"{type(exc).__name__}: <unprintable>\n")
            message = "<unprintable>"
        text = "".join(lines)
        if len(text) > MAX_TRACE:
            text = text[:MAX_TRACE // 2] + "\n  ...\n" + text[-MAX_TRACE // 2:]
        kind = "exit" if isinstance(exc, SystemExit) else "exception"
        if isinstance(exc, MemoryError) or "can't allocate memory" in message:
            kind = "memory"
        if not mine and isinstance(exc, RuntimeError) and self.rejected:
            kind = "rejected"  # autograd refused what the student's backward returned
        return {"kind": kind, "type": type(exc).__name__[:200], "message": message,
                "traceback": text, "line": mine[-1].lineno if mine else None}


class Returned(list):
    """Backward's gradients, returned in a container autograd refuses (`container`)."""

    def __init__(self, grads: list[Any], container: str) -> None:
        super().__init__(grads)
        self.container = container


def _root(out: Any) -> dict[str, Any] | None:
    """The output's grad_fn: its class name and, for a custom Function, that Function's name and module."""
    node = getattr(out, "grad_fn", None) if isinstance(out, torch.Tensor) else None
    if node is None:
        return None
    fn = getattr(node, "_forward_cls", None)
    name, module = getattr(fn, "__name__", None), getattr(fn, "__module__", None)
    return {"node": type(node).__name__[:200], "function": None if fn is None else str(name)[:200],
            "module": None if fn is None else str(module)[:200]}


class Versions:
    """Version counters (bumped by every in-place write through torch) of what backward receives:
    grad_output, forward's output, forward's arguments and the tensors saved for backward."""

    MAX_SAVED = 64

    def __init__(self, out: torch.Tensor, args: list[Any], grad_output: torch.Tensor) -> None:
        self.grad_output, self.out = grad_output, out
        self.args = [a if isinstance(a, torch.Tensor) else None for a in args]
        self.saved: list[torch.Tensor] = []
        self.saved_error: str | None = None
        try:  # unpacking raises when forward overwrote a tensor after saving it
            self.saved = [t for t in (getattr(out.grad_fn, "saved_tensors", None) or ())
                          if isinstance(t, torch.Tensor)][:self.MAX_SAVED]
        except RuntimeError as exc:
            self.saved_error = str(exc)[:500]
        self.before = self.now()

    def now(self) -> dict[str, Any]:
        return {"grad_output": self.grad_output._version, "output": self.out._version,
                "args": [a._version if a is not None else None for a in self.args],
                "saved": [t._version for t in self.saved]}

    def roles(self) -> list[str]:
        """What each saved tensor is: "arg:i" (forward's argument i), "output", or "other"."""
        def role(t: torch.Tensor) -> str:
            for i, a in enumerate(self.args):
                if a is not None and _same_memory(t, a):
                    return f"arg:{i}"
            return "output" if _same_memory(t, self.out) else "other"
        return [role(t) for t in self.saved]

    def after(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.now(), "saved_roles": self.roles(),
                "saved_error": self.saved_error}


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return a.data_ptr() == b.data_ptr() and a.shape == b.shape
    except RuntimeError:
        return False


def projections(grads: list[Any], probes: list[Any]) -> list[float | None]:
    """Each gradient's dot product with the grader's probe for its argument (no copy of either)."""
    found: list[float | None] = []
    for g, p in zip(grads, probes):
        ok = isinstance(g, torch.Tensor) and isinstance(p, torch.Tensor) and g.numel() == p.numel() \
            and g.is_floating_point()
        found.append(float(torch.dot(g.detach().reshape(-1).to(p.device, p.dtype), p.reshape(-1))) if ok else None)
    return found


def _single(out: Any) -> Any:
    """The tensor of a forward that returned it in a 1-tuple or 1-list, else `out` itself."""
    if isinstance(out, (tuple, list)) and len(out) == 1 and isinstance(out[0], torch.Tensor):
        return out[0]
    return out


class HeldSource(importlib.abc.SourceLoader):
    """Loads the submission from bytes read before the evaluator dropped root (without a mount
    namespace, its new uid may not be allowed to read the file); tracebacks still name the file."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path, self.data = path, data

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        if path != self.path:
            raise OSError(f"no such file: {path}")
        return self.data


def main(read_fd: int, write_fd: int, layers: list[str] = (), missing: list[str] = (),
         source: bytes | None = None) -> None:
    sys.dont_write_bytecode = True
    torch.set_num_threads(1)
    Evaluator(Channel(read_fd, write_fd), layers, missing, source).serve()
    sys.stdout.flush()
    os._exit(0)
