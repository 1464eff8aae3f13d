"""The wire format between the grader and a child: a JSON header plus raw tensor bytes.

A frame is `>IQ` (header length, payload length), the UTF-8 JSON header, then the payload. The
header lists each tensor's dtype, shape, device and byte range in the payload; values refer to
tensors as `{"$tensor": i}`. Nothing is ever unpickled or evaluated: a malformed or oversized
frame is a `ProtocolError`, which costs the submission that sent it, never the grader.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import torch

PREFIX = struct.Struct(">IQ")
MAX_HEADER = 1 << 20  # 1 MiB of JSON
MAX_PAYLOAD = 512 << 20  # 512 MiB of tensor bytes in one frame
MAX_TEXT = 16 << 10  # longest string kept from a child (a traceback, a type name)

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame."""


class ChannelClosed(ProtocolError):
    """The other side closed its end (the child exited or died)."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


@dataclass
class Message:
    header: dict[str, Any]
    tensors: list[torch.Tensor] = field(default_factory=list)

    def value(self, encoded: Any) -> Any:
        """Decode a value of the header: JSON scalars, lists, and tensor references."""
        return decode_value(encoded, self.tensors)


# --------------------------------------------------------------------------- values


def encode_value(value: Any, tensors: list[torch.Tensor]) -> Any:
    """JSON-able form of a value; tensors are appended to `tensors` and referenced by index."""
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return {"$tensor": len(tensors) - 1}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode_value(v, tensors) for v in value]
    return {"$other": type(value).__name__[:200]}


def decode_value(encoded: Any, tensors: list[torch.Tensor]) -> Any:
    if encoded is None or isinstance(encoded, (bool, int, float, str)):
        return encoded
    if isinstance(encoded, list):
        return [decode_value(v, tensors) for v in encoded]
    if isinstance(encoded, dict) and len(encoded) == 1:
        (key, val), = encoded.items()
        if key == "$tensor" and isinstance(val, int) and 0 <= val < len(tensors):
            return tensors[val]
        if key == "$float" and val in ("inf", "-inf", "nan"):
            return float(val)
        if key == "$other" and isinstance(val, str):
            return Other(val[:200])
    raise ProtocolError(f"malformed value in header: {str(encoded)[:80]}")


@dataclass(frozen=True)
class Other:
    """A value the child could not send as data (e.g. a student's object); only its type name."""

    type_name: str


# --------------------------------------------------------------------------- framing


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def encode_frame(header: dict[str, Any], tensors: list[torch.Tensor] = ()) -> bytes:
    metas, chunks, offset = [], [], 0
    for t in tensors:
        data = _tensor_bytes(t)
        metas.append({"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                      "device": str(t.device), "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    head = json.dumps({**header, "tensors": metas}, allow_nan=False).encode()
    if len(head) > MAX_HEADER or offset > MAX_PAYLOAD:
        raise ProtocolError("frame too large")
    return PREFIX.pack(len(head), offset) + head + b"".join(chunks)


def _decode_tensor(meta: Any, payload: memoryview) -> torch.Tensor:
    if not isinstance(meta, dict) or meta.get("dtype") not in DTYPES:
        raise ProtocolError(f"bad tensor description: {str(meta)[:80]}")
    dtype, shape = DTYPES[meta["dtype"]], meta.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 16:
        raise ProtocolError("bad tensor shape")
    offset, nbytes = meta.get("offset"), meta.get("nbytes")
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = math.prod(shape)
    if not isinstance(offset, int) or not isinstance(nbytes, int) or nbytes != numel * itemsize \
            or offset < 0 or offset + nbytes > len(payload):
        raise ProtocolError("tensor bytes do not match its shape and dtype")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = bytearray(payload[offset:offset + nbytes])
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape)


def decode_frame(head: bytes, payload: bytes) -> Message:
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors", []), list):
        raise ProtocolError("header is not a JSON object")
    view = memoryview(payload)
    tensors = [_decode_tensor(m, view) for m in header.pop("tensors", [])]
    return Message(header, tensors)


# --------------------------------------------------------------------------- channel


class Channel:
    """Frames over a pair of pipe file descriptors, with a deadline on every read and write."""

    def __init__(self, read_fd: int, write_fd: int, max_payload: int = MAX_PAYLOAD) -> None:
        self.read_fd, self.write_fd, self.max_payload = read_fd, write_fd, max_payload

    def send(self, header: dict[str, Any], tensors: list[torch.Tensor] = (),
             deadline: float | None = None) -> None:
        data = memoryview(encode_frame(header, list(tensors)))
        while data:
            self._wait(self.write_fd, deadline, write=True)
            try:
                n = os.write(self.write_fd, data[:1 << 20])
            except BrokenPipeError:
                raise ChannelClosed("the other side closed the channel") from None
            data = data[n:]

    def recv(self, deadline: float | None = None) -> Message:
        head_len, payload_len = PREFIX.unpack(self._read(PREFIX.size, deadline))
        if head_len > MAX_HEADER or payload_len > self.max_payload:
            raise ProtocolError(f"frame too large ({head_len} header bytes, {payload_len} payload bytes)")
        head = self._read(head_len, deadline)
        return decode_frame(head, self._read(payload_len, deadline))

    def _read(self, n: int, deadline: float | None) -> bytes:
        chunks, left = [], n
        while left:
            self._wait(self.read_fd, deadline)
            chunk = os.read(self.read_fd, min(left, 1 << 20))
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _wait(fd: int, deadline: float | None, write: bool = False) -> None:
        if deadline is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChannelTimeout()
        rlist, wlist = ([], [fd]) if write else ([fd], [])
        ready = select.select(rlist, wlist, [], remaining)
        if not (ready[0] or ready[1]):
            raise ChannelTimeout()
