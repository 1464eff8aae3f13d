"""The `efficiency` check's pass rule: the memory the kernel counted, against the reference's.

Pure arithmetic over byte counts (no torch, no I/O), shared by the check and its tests. The
student's number is the memory the evaluator's processes used during forward, or during
backward, at the largest size of the exercise's `efficiency` block, as the kernel accounted it
(`sandbox/meter.py`); the reference's is the bytes its expression allocates there with autograd,
counted by the grader (`ByteCounter`), or the inputs' bytes where larger (a fused kernel such as
torch.dot allocates 8 bytes; allocating a temporary the size of the inputs is never inefficient).

A phase fails when it used more than `allowance`: FACTOR times the reference's bytes, and never
less than FLOOR. The messages hold only numbers that are the same on every run (the allowance,
the reference's bytes, the size of an n x n matrix): the kernel's count moves by pages from run
to run, and the same submission must get the same report. The floor absorbs what the kernel counts beyond the student's tensors (pages,
the allocator's arenas, buffers a library allocates on first use: a few MiB at most); the factor,
formulas of the same order that allocate a few more temporaries. A Jacobian-sized matrix at the
largest sizes (128 MiB for softmax at n = 4096, against 32 KiB of output) is far beyond both.
"""

from __future__ import annotations

from gradegrad.diagnosis import Finding

FLOOR = 16 << 20  # bytes any call may use, whatever the reference (noise of pages and allocators)
FACTOR = 8  # times the reference's bytes (or the inputs')


def allowance(reference: int, inputs: int) -> int:
    """The most a phase may use: FACTOR times the larger of the reference's and the inputs' bytes,
    at least FLOOR."""
    return max(FLOOR, FACTOR * max(reference, inputs))


def size_text(nbytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


def judge(phase: str, used: int, reference: int, inputs: int, n: int, source: str = "") -> Finding | None:
    """A finding when `phase` used more memory than the reference's allows, else None."""
    limit = allowance(reference, inputs)
    if used <= limit:
        return None
    counted = f" ({source})" if source else ""
    advice = ("Does it build the full Jacobian (an n x n matrix)? backward needs only its product with "
              "grad_output, which the derivative's formula gives directly" if phase == "backward" else
              "Does it build a matrix for backward (the Jacobian)? Save only what the derivative's "
              "formula needs (inputs or outputs)")
    return Finding(f"inefficient_{phase}", f"{phase} used more memory at n = {n} than the {size_text(limit)} "
                   f"allowed, as the kernel counted it{counted}: the reference allocates {size_text(reference)} "
                   f"(the allowance is {FACTOR} times the reference's bytes or the inputs', at least "
                   f"{size_text(FLOOR)}), and an n x n matrix of float64 is {size_text(8 * n * n)} here. {advice}.")
