"""The protections a child applies to itself at the `confine` request, before the submission's code
runs (after the device is set up): each layer lives in `layers/`."""

from __future__ import annotations

from pathlib import Path

from gradegrad.sandbox.layers.landlock import landlock, limit_memory, readable_roots
from gradegrad.sandbox.layers.landlock import deny_sockets


def confine(submission: str, scratch: str, memory: int | None, cpu_only: bool) -> list[str]:
    """Apply every protection available here, before the submission is imported."""
    active = limit_memory(memory) if cpu_only else []
    package_dir = str(Path(__file__).resolve().parent.parent)
    active += landlock(readable_roots(submission, package_dir), [scratch])
    active += deny_sockets()
    return active
