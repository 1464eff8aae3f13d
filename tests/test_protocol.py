"""The wire format: tensors round-trip as raw bytes, and malformed frames are refused, never run."""

import os
import pickle
import struct

import pytest
import torch

from gradegrad.sandbox.protocol import (PREFIX, Channel, ChannelTimeout, Other, ProtocolError, decode_frame,
                                        encode_frame, encode_value)


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
    {"dtype": "object", "shape": [1], "offset": 0, "nbytes": 8},
    {"dtype": "float64", "shape": [2], "offset": 0, "nbytes": 8},
    {"dtype": "float64", "shape": [1], "offset": 4, "nbytes": 8},
    {"dtype": "float64", "shape": [-1], "offset": 0, "nbytes": 8},
])
def test_tensor_descriptions_must_match_their_bytes(meta):
    import json
    with pytest.raises(ProtocolError):
        decode_frame(json.dumps({"tensors": [meta]}).encode(), b"\0" * 8)


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
