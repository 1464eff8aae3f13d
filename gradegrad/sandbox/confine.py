"""The layers a child applies to itself at the `confine` request: after the device is set up
(CUDA initialises threads and maps memory first), before the submission is imported.

The layers applied when the evaluator was born (namespaces, cgroup, credentials, rlimits) are in
`spawn.py`; each layer's own code is in `layers/`."""

from __future__ import annotations

import os
from pathlib import Path

from gradegrad.sandbox.layers import limits, seccomp
from gradegrad.sandbox.layers.landlock import DEVICE_FILES, landlock, readable_roots


def confine(submission: str, scratch: str, memory: int | None, device: str = "cpu",
            ipc_namespace: bool = False) -> tuple[list[str], list[str]]:
    """Apply RLIMIT_AS (CPU only), Landlock and seccomp: (layers now active, layers missing and why)."""
    active, missing = [], []
    if device == "cpu":
        active += limits.limit_address_space(memory)
    elif memory:
        missing.append("rlimit-as (not with a GPU: CUDA reserves far more address space than it uses)")
    package_dir = str(Path(__file__).resolve().parent.parent)
    devices = list(DEVICE_FILES)
    if device != "cpu":
        devices += [f"/dev/{name}" for name in sorted(os.listdir("/dev")) if name.startswith("nvidia")]
    landlocked = landlock(readable_roots(submission, package_dir), [scratch], devices)
    active += landlocked
    for name, need in (("landlock-fs", "Linux 5.13"), ("landlock-net", "Linux 6.7"), ("landlock-signal", "Linux 6.12")):
        if name not in landlocked:
            missing.append(f"{name} (needs Landlock, {need}+)")
    filtered = seccomp.apply(ipc_namespace)
    active += filtered
    if not filtered:
        missing.append("seccomp (not available here)")
    return active, missing
