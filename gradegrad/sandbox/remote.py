"""The grader's view of a submission: load it in a child, restart it after a fault, keep its output.

`Submission` is the request API of `requests.Requests` over a live `process.Child`: it restarts
its child after a crash or a timeout (the next exercise starts fresh) and keeps everything the
submission printed. The facts its requests return, and `remote_function` (the local proxy
Function gradcheck runs on), live in `requests.py`; they are re-exported here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from gradegrad.report import StudentOutput
from gradegrad.sandbox.process import OUTPUT_LIMIT, STARTUP_TIMEOUT, Child, Limits
from gradegrad.sandbox.protocol import Message, encode_value
from gradegrad.sandbox.requests import (BackwardResult, ChildFault, ClassInfo, ForwardResult, Loaded, Measured,  # noqa: F401
                                       Requests, SecondOrder, StudentRaised, WrongOutput, _class_info,
                                       remote_function)


@dataclass
class Submission(Requests):
    """A submission loaded in a child process, restarted on demand."""

    path: Path
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    child: Child | None = None
    outputs: list[StudentOutput] = field(default_factory=list)
    protections: tuple[str, ...] = ()  # the layers of containment active before the submission's code ran
    missing_protections: tuple[str, ...] = ()  # those missing here, each with the reason

    def load(self) -> Loaded:
        """(Re)start the child and import the submission in it."""
        self.stop_child()
        path = str(Path(self.path).resolve())
        try:
            self.child = Child(self.device, limits=self.limits, submission=path)
            confined = self.child.request({"op": "confine", "path": path, "device": self.device,
                                           "memory": self.limits.memory, "layers": list(getattr(self.child, "layers", ())),
                                           "confine": self.limits.confine and self.limits.isolation != "none"},
                                          timeout=STARTUP_TIMEOUT)
            self.protections = (*getattr(self.child, "layers", ()),
                                *(str(p) for p in confined.header.get("protections", []) if isinstance(p, str)))
            self.missing_protections = (*getattr(self.child, "missing", ()),
                                        *(str(p) for p in confined.header.get("missing", []) if isinstance(p, str)))
            reply = self.child.request({"op": "load", "path": path}, timeout=self.limits.timeout)
        except StudentRaised as exc:
            return Loaded(error=exc.error)
        except ChildFault as exc:
            return Loaded(error={"kind": exc.kind, "message": f"while importing the submission: {exc}",
                                 "traceback": ""})
        classes = reply.header.get("classes")
        if not isinstance(classes, list):
            return Loaded(error={"kind": "protocol", "message": "invalid class list", "traceback": ""})
        functions = reply.header.get("functions") if isinstance(reply.header.get("functions"), list) else []
        return Loaded(classes=tuple(_class_info(c) for c in classes if isinstance(c, dict)),
                      functions=tuple(_class_info(c) for c in functions[:1000] if isinstance(c, dict)))

    def ensure(self) -> None:
        """Start a fresh child if the last one was killed (after a timeout or a crash)."""
        if self.child is None or not self.child.alive:
            self.load()

    @contextmanager
    def gradcheck_ahead(self, class_name: str, args: Sequence[Any], options: dict[str, Any], *,
                        timeout: float) -> Iterator[int]:
        """While open, the replies of the child's run-ahead of `gradcheck(**options)` on `args`,
        through `remote_function`'s proxy, answer the grader's own gradcheck (`Child.speculate`);
        on exit, those left unused are dropped. Yields how many came back."""
        self.ensure()
        child, tensors = self.child, []
        header = {"op": "speculate", "class": class_name,
                  "args": encode_value([a.detach() if isinstance(a, torch.Tensor) else a for a in args], tensors),
                  "requires_grad": [isinstance(a, torch.Tensor) and a.requires_grad for a in args],
                  "gradcheck": options}
        try:
            yield child.speculate(header, tensors, timeout=timeout)
        finally:
            child.ahead.clear()

    def _request(self, header: dict[str, Any], tensors: list[torch.Tensor], timeout: float) -> Message:
        self.ensure()
        return self.child.request(header, tensors, timeout=timeout)

    def stop_child(self) -> None:
        if self.child is not None:
            self.outputs.append(self.child.close())
            self.child = None

    def close(self) -> StudentOutput:
        """Stop the child and return everything the submission printed, bounded."""
        self.stop_child()
        stdout = "".join(o.stdout for o in self.outputs)[:OUTPUT_LIMIT]
        stderr = "".join(o.stderr for o in self.outputs)[:OUTPUT_LIMIT]
        return StudentOutput(stdout, stderr, any(o.truncated for o in self.outputs))

    def __enter__(self) -> "Submission":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_child()
