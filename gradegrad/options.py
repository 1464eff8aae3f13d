"""Grading options shared by the commands: seed, device, limits, and how they are parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from gradegrad.errors import UsageError
from gradegrad.sandbox.process import ISOLATION, Limits

DEVICES = ("cpu", "cuda", "auto")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
HEADROOM = 256 << 20  # address space the student's code and the checks need beyond torch's own
UNKNOWN_BASE = 768 << 20  # torch's address space when /proc cannot tell (a CPU build takes about 620 MiB)


def _address_space() -> int | None:
    """This process's virtual memory size (what RLIMIT_AS counts), from /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError):
        pass
    return None


# Measured right after `import torch` above, before any thread starts: an evaluator (a fork of a
# process that imported torch) starts with about as much address space, and the `--memory` limit
# is RLIMIT_AS, set after that import: below it, not even the reference solution can run.
TORCH_ADDRESS_SPACE = _address_space() or UNKNOWN_BASE


def minimum_memory() -> int:
    """The smallest `--memory` at which a submission can run: torch's address space plus headroom."""
    step = 64 << 20
    return -(-(TORCH_ADDRESS_SPACE + HEADROOM) // step) * step


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
        raise UsageError(f"--memory {text}: the student's process needs at least {least >> 20}M here (torch takes "
                         f"{TORCH_ADDRESS_SPACE >> 20}M of address space once imported, plus {HEADROOM >> 20}M to "
                         f"grade); give {-(-least // (1 << 30))}G or more, or 'none'")
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
