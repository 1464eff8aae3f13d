"""The wire format: tensors round-trip as raw bytes, and malformed frames are refused, never run."""

import os
import pickle
import struct

import pytest
import torch

from gradegrad.sandbox.protocol import (PREFIX, Channel, ChannelTimeout, Other, ProtocolError, decode_frame,
                                        encode_frame, encode_value, frame_tensor, parse_frame, tensor_frame)


def roundtrip(header, tensors=()):
    frame = encode_frame(header, list(tensors))
    head_len, payload_len = PREFIX.unpack(frame[:PREFIX.size])
    head = frame[PREFIX.size:PREFIX.size + head_len]
    return decode_frame(head, frame[PREFIX.size + head_len:])


def test_values_and_tensors_roundtrip():
    tensors = []
    x = torch.randn(3, 4, dtype=torch.float64)
    value = encode_value([x, None, 0.1, 3, x.float().t(), torch.tensor(2), object()], tensors)
    msg = roundtrip({"v": value}, tensors)
    got = msg.value(msg.header["v"])
    assert torch.equal(got[0], x) and got[1] is None and got[2] == 0.1 and got[3] == 3
    assert torch.equal(got[4], x.float().t()) and got[4].dtype == torch.float32
    assert got[5].shape == () and got[6] == Other("object")


def test_expanded_and_empty_tensors():
    tensors = []
    value = encode_value([torch.ones(()).expand(3, 4), torch.empty(0, 3)], tensors)
    msg = roundtrip({"v": value}, tensors)
    a, b = msg.value(msg.header["v"])
    assert a.shape == (3, 4) and b.shape == (0, 3)


def test_a_pickle_is_not_a_frame():
    payload = pickle.dumps({"ok": True})
    with pytest.raises(ProtocolError):
        decode_frame(payload, b"")


@pytest.mark.parametrize("meta", [
    ["object", [1]],
    ["float64", [2]],  # 16 bytes: more than the payload
    ["float32", [1]],  # 4 bytes: the payload has 4 more that no tensor describes
    ["float64", [-1]],
    ["float64", [1.0]],
    ["float64", "1"],
    {"dtype": "float64", "shape": [1], "offset": 0, "nbytes": 8},  # a place, not a tensor of the frame
    ["float64", [1], 0],
])
def test_tensor_descriptions_must_match_their_bytes(meta):
    import json
    with pytest.raises(ProtocolError):
        decode_frame(json.dumps({"tensors": [meta]}).encode(), b"\0" * 8)


def test_tensors_of_a_frame_are_their_own_bytes():
    """Tensors of one frame share one copy of the payload, but each is a view of its own bytes only."""
    a, b = torch.arange(3, dtype=torch.float64), torch.arange(4, dtype=torch.int32)
    msg = roundtrip({}, [a, b, torch.ones((), dtype=torch.bfloat16), torch.ones(2, 2, dtype=torch.bool)])
    got_a, got_b, got_c, got_d = msg.tensors
    assert torch.equal(got_a, a) and torch.equal(got_b, b) and got_c.dtype == torch.bfloat16 and got_d.all()
    assert got_a.untyped_storage().nbytes() == 24 and got_b.untyped_storage().nbytes() == 16
    got_a.add_(1)
    assert torch.equal(got_b, b)  # writable, and writing one leaves the others as they were


def test_dangling_tensor_reference_is_refused():
    msg = roundtrip({"v": {"$tensor": 0}})
    with pytest.raises(ProtocolError):
        msg.value(msg.header["v"])


def test_channel_refuses_oversized_frames_and_times_out():
    r, w = os.pipe()
    try:
        os.write(w, struct.pack(">IQ", 10, 1 << 40))
        with pytest.raises(ProtocolError, match="too large"):
            Channel(r, w).recv(deadline=None)
        with pytest.raises(ChannelTimeout):
            import time
            Channel(r, w).recv(deadline=time.monotonic() + 0.1)
    finally:
        os.close(r)
        os.close(w)


def test_frames_travel_inside_frames():
    frame = encode_frame({"op": "forward", "args": [{"$tensor": 0}]}, [torch.arange(4.0)])
    carried = roundtrip({"n": 1}, [frame_tensor(frame)])
    inner = parse_frame(tensor_frame(carried.tensors[0]))
    assert inner.header["op"] == "forward" and torch.equal(inner.tensors[0], torch.arange(4.0))
    for broken in (frame[:5], frame[:-1], frame + b"\0"):
        with pytest.raises(ProtocolError):
            parse_frame(broken)
    with pytest.raises(ProtocolError):
        tensor_frame(torch.zeros(2, 2, dtype=torch.uint8))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.bool, torch.int64, torch.complex64])
def test_every_dtype_roundtrips(dtype):
    x = (torch.arange(6) % 3).to(dtype).reshape(2, 3)
    msg = roundtrip({}, [x.t()])
    assert msg.tensors[0].dtype == dtype and torch.equal(msg.tensors[0], x.t())


def test_channel_reads_frames_however_the_bytes_arrive():
    """Two frames in one write, then one frame a few bytes at a time: each read back whole."""
    r, w = os.pipe()
    try:
        frames = [encode_frame({"i": i}, [torch.full((3,), float(i))]) for i in range(3)]
        os.write(w, frames[0] + frames[1])
        channel = Channel(r, w)
        assert [channel.recv(deadline=None).header["i"] for _ in range(2)] == [0, 1]
        for k in range(0, len(frames[2]), 7):
            os.write(w, frames[2][k:k + 7])
        msg = channel.recv(deadline=None)
        assert msg.header["i"] == 2 and torch.equal(msg.tensors[0], torch.full((3,), 2.0))
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------- hostile frames


def _frame(header: dict, payload: bytes = b"") -> tuple[bytes, bytes]:
    import json
    return json.dumps(header).encode(), payload


def _f64(n=1):
    return ["float64", [n]]


@pytest.mark.parametrize("metas,words", [
    ([_f64(2), _f64(1)], "outside the frame"),  # 24 bytes claimed of 16
    ([_f64()] * 3, "outside the frame"),  # three tensors cannot share the same bytes
    ([_f64(1)], "no tensor describes"),  # 8 bytes of 16: the rest would be read by nothing
    ([["float64", [1 << 40]]], "outside the frame"),  # 8 TiB claimed: refused before any copy
    ([["float64", [1 << 49]]], "bad tensor shape"),
    ([["float64", [1] * 17]], "bad tensor shape"),
])
def test_tensors_must_be_the_payload_exactly(metas, words):
    with pytest.raises(ProtocolError, match=words):
        decode_frame(*_frame({"tensors": metas}, b"\0" * 16))


def test_a_small_frame_cannot_make_the_grader_copy_its_payload_per_tensor():
    """2 MiB of payload claimed by 100,001 tensors would be 200 GB of copies: refused, without copying."""
    payload = b"\0" * (2 << 20)
    meta = ["uint8", [len(payload)]]
    with pytest.raises(ProtocolError, match="too many tensors|items in header"):
        decode_frame(*_frame({"tensors": [meta] * 100_001}, payload))
    with pytest.raises(ProtocolError, match="outside the frame"):
        decode_frame(*_frame({"tensors": [meta] * 1000}, payload))


@pytest.mark.parametrize("head,words", [
    (b'{"v": ' + b"9" * 5000 + b"}", "integer too large"),  # Python refuses int() beyond 4300 digits
    (b'{"v": -' + b"9" * 21 + b"}", "integer too large"),
    (b'{"v": 1.' + b"5" * 1000 + b"}", "number too long"),
    (b'{"v": NaN}', "NaN in header"),
    (b'{"v": -Infinity}', "-Infinity in header"),
    (b'{"v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"v": ' + b"[" * 40 + b"]" * 40 + b"}", "nested too deeply"),
    (b'{"v": [' + b"0," * 100_000 + b"0]}", "list of 100001 items"),
])
def test_headers_with_oversized_values_are_refused(head, words):
    with pytest.raises(ProtocolError, match=words):
        decode_frame(head, b"")


def _nest(rng, depth: int):
    """A random JSON value of exactly `depth` levels of lists and objects, with strings holding brackets."""
    if depth == 0:
        return rng.choice([1, 2.5, None, "[{", "]}\\\"[", "x"])
    inner = [_nest(rng, rng.randrange(min(depth, 3))) for _ in range(rng.randrange(3))] + [_nest(rng, depth - 1)]
    rng.shuffle(inner)
    return inner if rng.random() < 0.5 else {f"k{i}[": v for i, v in enumerate(inner)}


@pytest.mark.parametrize("seed", range(40))
def test_short_headers_are_refused_at_the_same_depth_as_long_ones(seed):
    """A header short enough that no string or list can pass a limit is only checked for depth, by
    regular expressions: it must refuse exactly what walking the header refuses."""
    import json
    import random

    from gradegrad.sandbox.protocol import MAX_DEPTH, MAX_TEXT

    rng = random.Random(seed)
    depth = rng.randrange(MAX_DEPTH - 3, MAX_DEPTH + 3)
    header = {"v": _nest(rng, depth)}
    short = json.dumps(header).encode()
    long = json.dumps({**header, "pad": "p" * MAX_TEXT}).encode()
    outcomes = []
    for head in (short, long):
        try:
            decode_frame(head, b"")
            outcomes.append(True)
        except ProtocolError as exc:
            assert "nested too deeply" in str(exc)
            outcomes.append(False)
    assert len(short) <= MAX_TEXT < len(long)
    assert outcomes[0] == outcomes[1] == (depth + 1 <= MAX_DEPTH)


def test_strings_in_a_header_are_cut_to_the_text_limit():
    from gradegrad.sandbox.protocol import MAX_TEXT

    msg = decode_frame(*_frame({"error": {"message": "x" * (MAX_TEXT * 10)}, "k" * (MAX_TEXT + 5): 1}))
    assert len(msg.header["error"]["message"]) == MAX_TEXT and max(map(len, msg.header)) == MAX_TEXT


def test_a_channel_refuses_a_reply_larger_than_its_limit():
    from gradegrad.sandbox.protocol import MAX_REPLY

    r, w = os.pipe()
    try:
        os.write(w, PREFIX.pack(10, MAX_REPLY + 1))
        with pytest.raises(ProtocolError, match="frame too large"):
            Channel(r, w).recv(deadline=None)
    finally:
        os.close(r)
        os.close(w)


def test_a_message_knows_its_size():
    frame = encode_frame({"a": 1}, [torch.zeros(4)])
    assert parse_frame(frame).nbytes == len(frame)


def test_long_digit_runs_inside_strings_are_text_not_numbers():
    """Only numbers are held to the digit limit: a traceback may quote any number."""
    head = b'{"error": "ValueError: 123456789012345678901234567890 is too large", "n": 12, "x": 2.5e-300}'
    assert decode_frame(head, b"").header == {"error": "ValueError: 123456789012345678901234567890 is too large",
                                              "n": 12, "x": 2.5e-300}
    with pytest.raises(ProtocolError, match="integer too large"):
        decode_frame(b'{"error": "' + b"1" * 30 + b'", "n": ' + b"9" * 21 + b"}", b"")


def test_a_channel_works_on_descriptors_beyond_1024():
    """A grader with many files open (many jobs, a long test session) gets descriptors select() refuses."""
    import resource
    import time

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1502:
        pytest.skip(f"this process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1502), hard))
    r, w = os.pipe()
    high = [os.dup2(r, 1500), os.dup2(w, 1501)]
    os.close(r)
    os.close(w)
    try:
        channel = Channel(*high)
        channel.send({"a": 1}, [torch.ones(2)], deadline=time.monotonic() + 5)
        assert channel.recv(deadline=time.monotonic() + 5).header == {"a": 1}
        with pytest.raises(ChannelTimeout):
            channel.recv(deadline=time.monotonic() + 0.05)
    finally:
        for fd in high:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
