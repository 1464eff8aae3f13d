"""The environment a child gets: no secrets, only what Python and CUDA need (stdlib only)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
TOKEN_VAR = "GRADEGRAD_SANDBOX"
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_HOME",
            "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")


def child_env(scratch: str, token: str) -> dict[str, str]:
    """An environment with no secrets: only what Python and CUDA need, and the sweep's token."""
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env.update({TOKEN_VAR: token}, HOME=scratch, TMPDIR=scratch, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("LANG", "C.UTF-8")
    return env


def single_threaded_blas() -> None:
    """No thread pool for numpy's OpenBLAS in this process and its forks (set before numpy is
    imported): the grader's arrays are tiny, and after each call the pool's threads spin for a while
    on the cores the evaluators need (about 1% of a batch's CPU). Evaluators started as fresh
    interpreters get the same from `child_env`'s OMP_NUM_THREADS."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Fewer glibc malloc arenas: threads (the grader's workers, torch's) otherwise each get one,
    and freed memory in them is rarely returned. Linux/glibc only; elsewhere nothing happens."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
