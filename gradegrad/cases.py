"""Turn a manifest's input specs into seeded inputs and upstream gradients.

Everything is drawn on the CPU in float64 from a generator seeded by (seed, exercise, case,
purpose), so the same seed gives the same report; float32 inputs are the float64 values cast.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from gradegrad.catalog import Case, Domain, Exercise, InputSpec

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def stable_seed(*parts: object) -> int:
    """A seed that depends only on its parts (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(stable_seed(*parts))


def _draw(domain: Domain, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if domain.kind == "normal":
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        min_abs = domain.get("min_abs")
        if min_abs:
            x = torch.sign(x) * (x.abs() + min_abs) + (x == 0) * min_abs
        return x * domain.get("std") + domain.get("mean")
    if domain.kind == "uniform":
        low, high = domain.get("low"), domain.get("high")
        return torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low
    if domain.kind == "bernoulli":
        return torch.bernoulli(torch.full(shape, float(domain.get("p")), dtype=torch.float64), generator=gen)
    low, high = int(domain.get("low")), int(domain.get("high"))
    return torch.randint(low, high, shape, generator=gen, dtype=torch.int64)


def make_input(spec: InputSpec, gen: torch.Generator, dtype: str = "float64") -> Any:
    if spec.kind == "float":
        return float(spec.value)
    if spec.kind == "int":
        return int(spec.value)
    x = _draw(spec.domain, spec.shape, gen)
    if spec.include:  # decisive values, whatever the seed (the draw above is made anyway)
        x.reshape(-1)[:len(spec.include)] = torch.tensor(spec.include, dtype=x.dtype)
    if spec.dtype == "long":
        return x.to(torch.int64)
    return x.to(DTYPES[dtype])


def make_inputs(exercise: Exercise, case: Case, seed: int, dtype: str = "float64",
                purpose: str = "inputs") -> list[Any]:
    """The arguments of forward for one case: tensors (detached, CPU) and Python scalars."""
    gen = generator(seed, exercise.id, case.name, purpose)
    return [make_input(spec, gen, dtype) for spec in case.inputs]


def make_grad_output(like: torch.Tensor, seed: int, *parts: object) -> torch.Tensor:
    """A random upstream gradient, never all ones: a backward that ignores it must fail.

    A 0-d output (a loss) gets a scalar of magnitude 1.5 to 3 and random sign, so that
    ignoring it changes the result by a visible factor.
    """
    gen = generator(seed, "grad_output", *parts)
    if like.dim() == 0 or like.numel() == 1:
        magnitude = 1.5 + 1.5 * torch.rand((), generator=gen, dtype=torch.float64).item()
        sign = 1.0 if torch.rand((), generator=gen).item() < 0.5 else -1.0
        return torch.full(like.shape, sign * magnitude, dtype=like.dtype)
    return torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like.dtype)
