"""Tensors in memory shared by the grader and one evaluator: the inputs the grader reads back itself.

The grader writes the inputs and the upstream gradient of an evaluation into a memfd
(`SharedMemory`) and names them in the request by place (`{"$shared": {"offset", "dtype",
"shape", "nbytes"}}`); the evaluator has the memfd as fd 5 and hands the student's code tensors
that *are* that memory (`SharedView`). After the reply, the grader reads the bytes back and
compares them with its own copy: whether the student's code wrote to what it was given is then a
fact the grader saw, not something the evaluator says.

Each tensor gets a place of its own until the exercise ends (`reset`), so no later request
reuses memory the student's code may still hold. The memfd is sealed at its size: the evaluator
can write its bytes (that is the point) but cannot shrink it under the grader's mapping (which
would make the grader's reads fault). What the evaluator writes there is never decoded: the
grader only compares it, byte range by byte range it chose itself.

Imported by both sides; imports only `protocol`.
"""

from __future__ import annotations

import ctypes
import fcntl
import math
import mmap
import os
from typing import Any

import torch

from gradegrad.sandbox.layers.kernel import libc
from gradegrad.sandbox.protocol import DTYPES, ITEMSIZE, NAMES, ProtocolError, _tensor_range, _tensor_view

SHARED_BYTES = 64 << 20  # of one submission's shared memory: every evaluation of an exercise must fit
ALIGN = 64  # bytes: every tensor starts at a multiple of this
FD = 5  # the evaluator's fd for it (the first extra fd, see spawn.py)
PAGE = mmap.PAGESIZE


class SharedMemory:
    """The grader's side: a sealed memfd it writes tensors into and reads back."""

    def __init__(self, size: int = SHARED_BYTES) -> None:
        self.fd = os.memfd_create("gradegrad-shared", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.fd, size)
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise
        self.size, self.used = size, 0
        self.placed = 0  # the end of the furthest place the grader wrote since its pages were last freed

    def put(self, t: torch.Tensor) -> dict[str, Any] | None:
        """Write `t` at a place of its own and return its reference; None when it does not fit
        (the caller then sends it in the frame, and cannot read it back)."""
        name = NAMES.get(t.dtype)
        if name is None or t.device.type != "cpu":
            return None
        nbytes = t.numel() * ITEMSIZE[name]
        offset = -(-self.used // ALIGN) * ALIGN
        if offset + nbytes > self.size:
            return None
        data = _tensor_view(t)
        if offset + nbytes > self.placed:  # pages not in memory yet: the kernel fills them, no fault per page
            written = 0
            while written < nbytes:
                written += os.pwrite(self.fd, data[written:], offset + written)
        else:
            self.map[offset:offset + nbytes] = data
        self.used = offset + nbytes
        self.placed = max(self.placed, self.used)
        return {"offset": offset, "dtype": name, "shape": list(t.shape), "nbytes": nbytes}

    def read(self, ref: dict[str, Any]) -> torch.Tensor:
        """A copy of the tensor at `ref` (one `put` returned) as it is now."""
        name, shape, offset, nbytes = _tensor_range(ref)
        if nbytes == 0:
            return torch.empty(shape, dtype=DTYPES[name])
        return torch.frombuffer(bytearray(self.map[offset:offset + nbytes]), dtype=DTYPES[name]).reshape(shape)

    def reset(self) -> None:
        """Start the places anew (a new exercise), and free what the evaluator may have written:
        when the memfd holds more pages than the grader's own places, all of them are given back.
        Otherwise the pages stay for the next exercise's places (written over, not faulted in again)."""
        self.used = 0
        if os.fstat(self.fd).st_blocks * 512 > -(-self.placed // PAGE) * PAGE:
            _punch(self.fd, self.size)
            self.placed = 0

    def close(self) -> None:
        if self.fd >= 0:
            self.map.close()
            os.close(self.fd)
            self.fd = -1


class SharedView:
    """The evaluator's side: the grader's memfd mapped, and tensors that are views of it."""

    def __init__(self, fd: int = FD) -> None:
        self.size = os.fstat(fd).st_size
        self.map = mmap.mmap(fd, self.size)

    def tensor(self, ref: Any) -> torch.Tensor:
        """The tensor the grader wrote at `ref`, as memory both sides see (not a copy)."""
        name, shape, offset, nbytes = _tensor_range(ref)
        if offset % ITEMSIZE[name] or offset + nbytes > self.size:
            raise ProtocolError("a shared tensor lies outside the shared memory")
        if nbytes == 0:
            return torch.empty(shape, dtype=DTYPES[name])
        return torch.frombuffer(self.map, dtype=DTYPES[name], count=math.prod(shape), offset=offset).reshape(shape)


def _punch(fd: int, size: int) -> None:
    """Give the memfd's pages back to the system (fallocate PUNCH_HOLE | KEEP_SIZE); best effort."""
    try:
        libc.fallocate(ctypes.c_int(fd), ctypes.c_int(3), ctypes.c_long(0), ctypes.c_long(size))
    except (OSError, AttributeError):
        pass
