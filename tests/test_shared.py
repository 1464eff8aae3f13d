"""The memory the grader shares with an evaluator: tensors written, handed over by place, read back;
sealed at its size; nothing in a reply can point into it."""

import fcntl
import os

import pytest
import torch

from gradegrad.sandbox.protocol import ProtocolError, decode_value, encode_value
from gradegrad.sandbox.shared import ALIGN, SharedMemory, SharedView


@pytest.fixture
def shared():
    memory = SharedMemory(1 << 20)
    yield memory
    memory.close()


def test_the_evaluator_works_on_the_very_memory_the_grader_reads_back(shared):
    x = torch.randn(5, 3, dtype=torch.float64)
    tensors: list = []
    encoded = encode_value([x, 2.0], tensors, shared)
    assert tensors == [] and "$shared" in encoded[0] and encoded[1] == 2.0
    view = SharedView(shared.fd)
    given = decode_value(encoded, [], view)[0]
    assert torch.equal(given, x)
    given.mul_(2)  # the student's code writes in place
    assert torch.equal(shared.read(encoded[0]["$shared"]), 2 * x)
    assert torch.equal(x, x.clone())  # the grader's own copy is untouched


def test_each_tensor_has_a_place_of_its_own_until_reset(shared):
    refs = [shared.put(torch.ones(n, dtype=torch.float32)) for n in (1, 7, 100)]
    ends = [r["offset"] + r["nbytes"] for r in refs]
    assert all(r["offset"] % ALIGN == 0 for r in refs) and all(a <= b["offset"] for a, b in zip(ends, refs[1:]))
    shared.reset()
    assert shared.put(torch.ones(1))["offset"] == 0


def test_what_does_not_fit_travels_in_the_frame(shared):
    assert shared.put(torch.zeros(1 << 18, dtype=torch.float64)) is None  # 2 MiB into 1 MiB
    tensors: list = []
    assert encode_value(torch.zeros(1 << 18, dtype=torch.float64), tensors, shared) == {"$tensor": 0}


def test_the_evaluator_cannot_resize_it_under_the_grader(shared):
    for size in (0, 4096, 2 << 20):
        with pytest.raises(PermissionError):
            os.ftruncate(shared.fd, size)
    with pytest.raises(PermissionError):
        fcntl.fcntl(shared.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)  # nor seal it against the grader's writes


def test_places_outside_it_or_malformed_are_refused(shared):
    view = SharedView(shared.fd)
    for ref in ({"offset": (1 << 20) - 8, "dtype": "float64", "shape": [2], "nbytes": 16},
                {"offset": 3, "dtype": "float64", "shape": [1], "nbytes": 8},
                {"offset": 0, "dtype": "object", "shape": [1], "nbytes": 8},
                {"offset": 0, "dtype": "float64", "shape": [2], "nbytes": 8}):
        with pytest.raises(ProtocolError):
            view.tensor(ref)


def test_a_reply_cannot_point_into_shared_memory():
    with pytest.raises(ProtocolError):
        decode_value({"$shared": {"offset": 0, "dtype": "float64", "shape": [1], "nbytes": 8}}, [])


def test_reset_gives_the_pages_back(shared):
    view = SharedView(shared.fd)
    ref = shared.put(torch.ones(4))
    view.map[:1 << 20] = b"\x01" * (1 << 20)  # a hostile evaluator fills all of it
    shared.reset()
    assert shared.read(ref).eq(0).all()


def test_reset_keeps_only_the_graders_own_pages(shared):
    """An evaluator that wrote nothing beyond the grader's places costs no page to fault in again;
    one that wrote elsewhere has every page freed."""
    ref = shared.put(torch.ones(3000, dtype=torch.float64))  # 24000 bytes: 6 pages
    shared.reset()
    assert os.fstat(shared.fd).st_blocks * 512 == 6 * 4096  # kept for the next exercise
    assert shared.put(torch.full((3000,), 2.0, dtype=torch.float64))["offset"] == 0 and shared.read(ref).eq(2).all()
    view = SharedView(shared.fd)
    view.map[(1 << 20) - 1] = 1  # one byte beyond them
    shared.reset()
    assert os.fstat(shared.fd).st_blocks == 0
