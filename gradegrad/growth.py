"""How the memory a Function allocates grows with the input size, and when that is too fast.

Pure arithmetic over byte counts (no torch, no I/O), shared by the `efficiency` check and its tests:
fit k in bytes ~ n^k between the two largest sizes, and compare the student's k with the
reference's, with margins so that any formula of the same order passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradegrad.diagnosis import Finding

MARGIN = 0.5  # exponent slack: n^1.4 passes against a reference growing as n
FACTOR = 4.0  # and the student's bytes at the largest size must exceed the reference's this many times
FLOOR = 1024  # fewer bytes than this count as this (the fit takes logarithms)


@dataclass(frozen=True)
class Growth:
    """Bytes allocated at increasing sizes, and how fast they grow."""

    sizes: tuple[int, ...]
    bytes: tuple[int, ...]

    @property
    def exponent(self) -> float:
        """k in bytes ~ n^k, between the two largest sizes."""
        (n1, n2), (b1, b2) = self.sizes[-2:], self.bytes[-2:]
        return math.log(max(b2, FLOOR) / max(b1, FLOOR)) / math.log(n2 / n1)

    def projected(self, n: int) -> float:
        """The bytes expected at size n if the growth goes on (at least linearly)."""
        if len(self.sizes) < 2:
            return self.bytes[-1] * n / self.sizes[-1]
        return self.bytes[-1] * (n / self.sizes[-1]) ** max(self.exponent, 1.0)


def size_text(nbytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


def judge(phase: str, student: Growth, reference: Growth) -> Finding | None:
    """A finding when the student's bytes grow faster than the reference's, beyond both margins."""
    n, mine, theirs = student.sizes[-1], student.bytes[-1], reference.bytes[-1]
    if student.exponent <= reference.exponent + MARGIN or mine <= FACTOR * max(theirs, FLOOR):
        return None
    advice = ("Does it build the full Jacobian (an n x n matrix)? backward needs only its product with "
              "grad_output, which the derivative's formula gives directly" if phase == "backward" else
              "Does it build a matrix for backward (the Jacobian)? Save only what the derivative's "
              "formula needs (inputs or outputs)")
    return Finding(f"inefficient_{phase}", f"{phase} allocates memory that grows as n^{student.exponent:.2f}, "
                   f"where the reference's grows as n^{reference.exponent:.2f}: {size_text(mine)} at n = {n}, "
                   f"against {size_text(theirs)} for the reference. {advice}.")
