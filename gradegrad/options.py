"""Grading options shared by the commands: seed, device, limits, and how they are parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from gradegrad.errors import UsageError
from gradegrad.sandbox.process import ISOLATION, Limits

DEVICES = ("cpu", "cuda", "auto")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# `--memory` is what the student's processes may use beyond the pages they share with the fork
# server (torch, imported once): the evaluator's cgroup where there is one, else RLIMIT_AS above
# what is mapped once torch is loaded plus a watchdog (sandbox/layers/limits.py, watchdog.py). The
# reference solution grades the whole catalog with 16 MiB here; the floor leaves room to spare.
MINIMUM_MEMORY = 256 << 20


def minimum_memory() -> int:
    """The smallest `--memory` accepted: what grading a correct submission needs, with headroom."""
    return MINIMUM_MEMORY


@dataclass(frozen=True)
class Options:
    seed: int = 0
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)


def resolve_device(name: str) -> str:
    """cpu, cuda or auto; cuda must be usable here. CUDA itself is initialised only in children."""
    if name not in DEVICES:
        raise UsageError(f"unknown device {name!r}: use cpu, cuda or auto")
    available = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if available else "cpu"
    if name == "cuda" and not available:
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise UsageError(f"--device cuda: CUDA is not available (torch {torch.__version__} is {build}); use --device cpu")
    return name


def parse_memory(text: str) -> int | None:
    """'4G', '512M', '0' or 'none' (no limit) to bytes."""
    if text.strip().lower() in ("0", "none", "off"):
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise UsageError(f"--memory {text!r}: expected a size such as 4G or 512M, or 'none'")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    least = minimum_memory()
    if size < least:
        raise UsageError(f"--memory {text}: grading needs at least {least >> 20}M for the student's processes "
                         f"(beyond torch, which they share with the fork server); give {least >> 20}M or more, "
                         "or 'none'")
    return size


def check_isolation(level: str) -> str:
    """auto, strict or none; strict must be possible here (namespaces for every evaluator)."""
    if level not in ISOLATION:
        raise UsageError(f"--isolation {level!r}: use auto, strict or none")
    if level == "strict":
        from gradegrad.sandbox.zygote import namespaces_unavailable

        reason = namespaces_unavailable()
        if reason:
            raise UsageError(f"--isolation strict: evaluators cannot have their own namespaces here ({reason}); "
                             "see SECURITY.md, or use --isolation auto")
    return level


def make_options(seed: int, device: str, timeout: float, memory: str,
                 submission_timeout: float = Limits.submission_timeout,
                 load_timeout: float = Limits.load_timeout, isolation: str = "auto") -> Options:
    for flag, value in (("--timeout", timeout), ("--submission-timeout", submission_timeout),
                        ("--load-timeout", load_timeout)):
        if not value > 0:
            raise UsageError(f"{flag} {value:g}: must be a positive number of seconds")
    limits = Limits(timeout, parse_memory(memory), submission_timeout, isolation=check_isolation(isolation),
                    load_timeout=load_timeout)
    return Options(seed, resolve_device(device), limits)
