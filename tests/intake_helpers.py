"""Helpers shared by the intake tests: notebooks written as data, and running a generated module
in a fresh interpreter the way the evaluator loads it (no gradegrad, no sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("submission", sys.argv[1])
m = importlib.util.module_from_spec(spec)
sys.modules["submission"] = m
spec.loader.exec_module(m)
names = sorted(k for k, v in vars(m).items()
               if isinstance(v, (type, types.FunctionType)) and v.__module__ == "submission")
problems = [[at, type(e).__name__, str(e)] for at, e in m.__dict__.get("_GG_PROBLEMS", [])]
print(json.dumps({"names": names, "problems": problems, "extra": m.__dict__.get("EXTRA")}))
"""


def notebook(*cells, nbformat: int = 4) -> bytes:
    """A notebook: each cell a (kind, source) pair, or a code cell's source."""
    cells = [c if isinstance(c, tuple) else ("code", c) for c in cells]
    return json.dumps({"cells": [{"cell_type": kind, "source": src, "metadata": {}} for kind, src in cells],
                       "nbformat": nbformat}).encode()


def run_generated(code: str, tmp_path: Path, site: bool = True) -> dict:
    """Import a generated module in `python -I` (`-S` too without `site`: no installed packages):
    the names it defines and the problems it recorded."""
    path = tmp_path / "generated.py"
    path.write_text(code, encoding="utf-8")
    flags = ["-I"] if site else ["-I", "-S"]
    out = subprocess.run([sys.executable, *flags, "-c", PROBE, str(path)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().split("\n")[-1])
