"""The wire format between the grader and a child: a JSON header plus raw tensor bytes.

A frame is `>IQ` (header length, payload length), the UTF-8 JSON header, then the payload. The
header lists each tensor as `[dtype, shape]` (row-major, on the CPU); their bytes follow one
another in the payload in that order, and together are the payload exactly. Values refer to
tensors as `{"$tensor": i}`. Nothing is ever unpickled or evaluated: a malformed or oversized
frame is a `ProtocolError`, which costs the submission that sent it, never the grader. Decoding is
linear in the frame's size: tensors cannot overlap or claim bytes beyond the payload, integers
have at most 20 digits, strings are cut to `MAX_TEXT`, lists are bounded in depth and length,
and a frame a Channel reads carries at most `MAX_REPLY` bytes of tensors.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy
import torch

PREFIX = struct.Struct(">IQ")
MAX_HEADER = 1 << 20  # 1 MiB of JSON
MAX_PAYLOAD = 512 << 20  # 512 MiB of tensor bytes in one frame
MAX_REPLY = 128 << 20  # tensor bytes in one frame a Channel reads (a child's reply) by default
MAX_EXERCISE_BYTES = 256 << 20  # bytes of replies one exercise may receive (see remote.Submission)
MAX_TEXT = 16 << 10  # longest string kept from a child (a traceback, a type name); longer ones are cut
MAX_DIGITS = 20  # an integer in a header (int64 has 19 digits)
MAX_NUMBER = 400  # characters of a float in a header
MAX_DEPTH = 32  # nesting of lists and objects in a header
MAX_ITEMS = 100_000  # elements of one list or object in a header
MAX_TENSORS = 100_000  # tensors in one frame
MAX_DIMS = 16  # dimensions of one tensor
MAX_DIM = 1 << 48  # size of one dimension
READ_CHUNK = 1 << 16

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
    nbytes: int = 0  # the frame's size, for the caps on what a child may send
    shared: Any = None  # in the child only: the grader's shared memory (`shared.SharedView`), for "$shared"

    def value(self, encoded: Any) -> Any:
        """Decode a value of the header: JSON scalars, lists, and tensor references (a reply's
        own tensors; in a request read by the child, also tensors in the grader's shared memory)."""
        return decode_value(encoded, self.tensors, self.shared)


# --------------------------------------------------------------------------- values


def encode_value(value: Any, tensors: list[torch.Tensor], shared: Any = None) -> Any:
    """JSON-able form of a value; tensors are appended to `tensors` and referenced by index, or,
    with `shared` (the grader's `shared.SharedMemory`), written there and referenced by place."""
    if isinstance(value, torch.Tensor):
        place = shared.put(value) if shared is not None else None
        if place is not None:
            return {"$shared": place}
        tensors.append(value)
        return {"$tensor": len(tensors) - 1}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode_value(v, tensors, shared) for v in value]
    return {"$other": type(value).__name__[:200]}


def decode_value(encoded: Any, tensors: list[torch.Tensor], shared: Any = None) -> Any:
    """A value of a header; "$shared" references resolve only where `shared` is given (the child
    reading the grader's request): a reply that names one is malformed."""
    if encoded is None or isinstance(encoded, (bool, int, float, str)):
        return encoded
    if isinstance(encoded, list):
        return [decode_value(v, tensors, shared) for v in encoded]
    if isinstance(encoded, dict) and len(encoded) == 1:
        (key, val), = encoded.items()
        if key == "$tensor" and isinstance(val, int) and 0 <= val < len(tensors):
            return tensors[val]
        if key == "$shared" and shared is not None:
            return shared.tensor(val)
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


NAMES = {d: name for name, d in DTYPES.items()}
ITEMSIZE = {name: torch.empty((), dtype=d).element_size() for name, d in DTYPES.items()}
_NUMPY = {name: numpy.dtype(name) for name in DTYPES if name != "bfloat16"}  # numpy has no bfloat16


def _tensor_view(t: torch.Tensor) -> memoryview:
    """The tensor's bytes (row-major, on the CPU) without a copy where it already is so."""
    if t.requires_grad:
        t = t.detach()
    if not t.is_cpu:
        t = t.cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype is torch.bfloat16:
        t = t.reshape(-1).view(torch.uint8)
    return memoryview(t.numpy()).cast("B") if t.numel() else memoryview(b"")


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return _tensor_view(t).tobytes()


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # one encoder, compact JSON


def encode_frame(header: dict[str, Any], tensors: list[torch.Tensor] = ()) -> bytes:
    """The frame: each tensor described as [dtype, shape], its bytes in the payload in order."""
    metas, chunks, size = [], [], 0
    for t in tensors:
        data = _tensor_view(t)  # copied once, by the join below
        metas.append([NAMES.get(t.dtype) or str(t.dtype).removeprefix("torch."), list(t.shape)])
        chunks.append(data)
        size += len(data)
    head = _ENCODER.encode({**header, "tensors": metas}).encode()
    if len(head) > MAX_HEADER or size > MAX_PAYLOAD:
        raise ProtocolError("frame too large")
    return b"".join([PREFIX.pack(len(head), size), head, *chunks])


def _tensor_range(meta: Any) -> tuple[str, list[int], int, int]:
    """(dtype, shape, offset, nbytes) of a tensor's place in shared memory, checked against itself."""
    name = meta.get("dtype") if isinstance(meta, dict) else None
    if name not in ITEMSIZE:
        raise ProtocolError(f"bad tensor description: {str(meta)[:80]}")
    shape, offset, nbytes = meta.get("shape"), meta.get("offset"), meta.get("nbytes")
    count = _count(shape)
    if type(offset) is not int or type(nbytes) is not int or offset < 0 or nbytes != count * ITEMSIZE[name]:
        raise ProtocolError("tensor bytes do not match its shape and dtype")
    return name, shape, offset, nbytes


def _count(shape: Any) -> int:
    """The number of elements of a tensor of `shape` (a list of at most MAX_DIMS sizes, each at most
    MAX_DIM), or ProtocolError."""
    if type(shape) is not list or len(shape) > MAX_DIMS:
        raise ProtocolError("bad tensor shape")
    count = 1
    for n in shape:
        if type(n) is not int or not 0 <= n <= MAX_DIM:
            raise ProtocolError("bad tensor shape")
        count *= n
    return count


def _decode_tensors(metas: Any, payload: bytes) -> list[torch.Tensor]:
    """The tensors of a frame: each one's bytes follow the previous one's, and together they are the
    payload exactly, so nothing here copies more than the payload once (linear, whatever the
    header claims). Tensors of one frame share that copy, each a view of its own bytes."""
    if type(metas) is not list:
        raise ProtocolError("bad tensor list")
    if len(metas) > MAX_TENSORS:
        raise ProtocolError(f"too many tensors in one frame ({len(metas)})")
    tensors, offset, end, buffer = [], 0, len(payload), None
    for meta in metas:
        if type(meta) is not list or len(meta) != 2 or type(meta[0]) is not str or meta[0] not in ITEMSIZE:
            raise ProtocolError(f"bad tensor description: {str(meta)[:80]}")
        name, shape = meta
        count = _count(shape)
        nbytes = count * ITEMSIZE[name]
        if offset + nbytes > end:
            raise ProtocolError("tensor bytes lie outside the frame")
        if count == 0:
            tensors.append(torch.empty(shape, dtype=DTYPES[name]))
            continue
        if buffer is None:
            buffer = bytearray(payload)  # the one copy (the tensors are writable, the payload is not)
        if len(shape) == 1 or name not in _NUMPY:  # (numpy reshapes faster than torch; torch alone is
            t = torch.frombuffer(buffer, dtype=DTYPES[name], count=count, offset=offset)  # faster for 1-D)
            tensors.append(t if len(shape) == 1 else t.reshape(shape))
        else:
            array = numpy.frombuffer(buffer, dtype=_NUMPY[name], count=count, offset=offset)
            tensors.append(torch.from_numpy(array.reshape(shape)))
        offset += nbytes
    if offset != end:
        raise ProtocolError("the payload holds bytes no tensor describes")
    return tensors


def frame_tensor(frame: bytes) -> torch.Tensor:
    """A whole frame as a uint8 tensor, to travel inside another frame."""
    return torch.frombuffer(bytearray(frame), dtype=torch.uint8) if frame else torch.empty(0, dtype=torch.uint8)


def tensor_frame(t: Any) -> bytes:
    """The bytes of a frame that travelled as `frame_tensor` (unchecked: parse them with `parse_frame`)."""
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.dim() != 1:
        raise ProtocolError("a frame must travel as a 1-D uint8 tensor")
    return _tensor_bytes(t)


def parse_frame(frame: bytes) -> Message:
    """Decode a complete frame held in memory, with the same checks as a frame read from a channel."""
    if len(frame) < PREFIX.size:
        raise ProtocolError("truncated frame")
    head_len, payload_len = PREFIX.unpack_from(frame)
    if head_len > MAX_HEADER or payload_len > MAX_PAYLOAD or PREFIX.size + head_len + payload_len != len(frame):
        raise ProtocolError("frame lengths do not match its size")
    return decode_frame(frame[PREFIX.size:PREFIX.size + head_len], frame[PREFIX.size + head_len:])


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ProtocolError(f"integer too large in header ({len(text)} digits)")
    return int(text)


def _number(text: str) -> float:
    if len(text) > MAX_NUMBER:
        raise ProtocolError("number too long in header")
    return float(text)


def _constant(text: str) -> None:
    raise ProtocolError(f"{text} in header (non-finite floats travel as {{'$float': ...}})")


def _bounded(value: Any, depth: int = 0) -> Any:
    """The header with every string cut to MAX_TEXT; too deep or too long lists are refused."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]
    if isinstance(value, (list, dict)):
        if depth >= MAX_DEPTH:
            raise ProtocolError("header nested too deeply")
        if len(value) > MAX_ITEMS:
            raise ProtocolError(f"list of {len(value)} items in header")
        if isinstance(value, list):
            return [_bounded(v, depth + 1) for v in value]
        return {_bounded(k, depth + 1): _bounded(v, depth + 1) for k, v in value.items()}
    return value


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_number, parse_constant=_constant)
# without a run of more digits than an integer may have outside its strings, no number of the header
# can pass a limit (a number is at most three runs of digits and four signs or marks): json's own
# int and float
_PLAIN_DECODER = json.JSONDecoder(parse_constant=_constant)
# (found as a run of "d"s once every digit is a "d" and every other byte a space: two passes in C,
# where the regular expression [0-9]{21} stepped through the header byte by byte)
_DIGITS_AS_D = bytes(0x64 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_DIGITS = b"d" * (MAX_DIGITS + 1)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string (escapes included), loop unrolled
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")  # a list or object holding no other (all else removed)


def _deeper_than(bare: bytes, depth: int) -> bool:
    """Whether a valid JSON header, its strings removed (`bare`: strings may hold brackets), nests
    lists and objects more than `depth` levels, at the regular expressions' speed: everything but
    the brackets removed, each pass removes the innermost pairs; what is left after `depth` passes
    is deeper."""
    text = bare.translate(None, _NOT_BRACKETS)
    for _ in range(depth):
        text, removed = _INNERMOST.subn(b"", text)
        if not removed:
            return False
    return bool(text)


def decode_frame(head: bytes, payload: bytes) -> Message:
    short = len(head) <= min(MAX_TEXT, MAX_ITEMS)  # no string or list of so short a header can pass a limit
    # nested no deeper than it has brackets: most headers need no depth check at all
    shallow = short and head.count(b"[") + head.count(b"{") <= MAX_DEPTH
    try:  # (a run of digits inside a string only costs the checking decoder)
        decoder = _DECODER if _LONG_DIGITS in head.translate(_DIGITS_AS_D) else _PLAIN_DECODER
        header = decoder.decode(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("header nested too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors", []), list):
        raise ProtocolError("header is not a JSON object")
    if not short:
        header = _bounded(header)  # a string or list of the header may pass a limit: walk it
    elif not shallow and _deeper_than(_STRING.sub(b"", head), MAX_DEPTH):  # only its depth to check, its
        raise ProtocolError("header nested too deeply")  # brackets outside strings
    tensors = _decode_tensors(header.pop("tensors", []), payload)
    return Message(header, tensors, PREFIX.size + len(head) + len(payload))


# --------------------------------------------------------------------------- channel


class Channel:
    """Frames over a pair of pipe file descriptors, with a deadline on every read and write.

    `nonblocking` (the grader's side) makes both ends non-blocking: a read or write is tried
    first and waited for only when the pipe is not ready, so a frame that has already arrived
    costs no wait (in a grader with several threads, every blocking call hands the interpreter
    lock over)."""

    def __init__(self, read_fd: int, write_fd: int, max_payload: int = MAX_REPLY, nonblocking: bool = False) -> None:
        self.read_fd, self.write_fd, self.max_payload = read_fd, write_fd, max_payload
        self.buffer = bytearray()  # bytes read beyond the last frame returned
        self.nonblocking = nonblocking
        if nonblocking:
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)

    def send(self, header: dict[str, Any], tensors: list[torch.Tensor] = (),
             deadline: float | None = None) -> None:
        self.send_frame(encode_frame(header, list(tensors)), deadline)

    def send_frame(self, frame: bytes, deadline: float | None = None) -> None:
        data = memoryview(frame)
        while data:
            if not self.nonblocking:
                self._wait(self.write_fd, deadline, write=True)
            try:
                n = os.write(self.write_fd, data[:1 << 20])
            except BlockingIOError:  # the pipe is full: wait until it has room
                self._wait(self.write_fd, deadline, write=True)
                continue
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
        """n bytes: what the last read brought beyond its frame first, then reads of at least a
        chunk (so that a small frame usually comes in a single read)."""
        while len(self.buffer) < n:
            if not self.nonblocking:
                self._wait(self.read_fd, deadline)
            try:
                chunk = os.read(self.read_fd, min(max(n - len(self.buffer), READ_CHUNK), 1 << 20))
            except BlockingIOError:  # nothing has arrived yet: wait for it
                self._wait(self.read_fd, deadline)
                continue
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            self.buffer += chunk
        with memoryview(self.buffer) as view:
            data = bytes(view[:n])
        del self.buffer[:n]
        return data

    def _wait(self, fd: int, deadline: float | None, write: bool = False) -> None:
        if deadline is None and not self.nonblocking:
            return  # the blocking call itself waits
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise ChannelTimeout()
        poller = select.poll()  # (not select(): a grader with many files open has fds beyond 1024)
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        if not poller.poll(None if remaining is None else remaining * 1000):
            raise ChannelTimeout()
