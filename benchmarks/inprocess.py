"""The baseline graders of benchmarks/throughput.py: gradegrad's checks run in-process.

This is what a naive autograder does: import the submission into the grading process and call
its Functions directly (no isolation at all). `python benchmarks/inprocess.py FILE...` grades
each file in this one process and prints one line per file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from gradegrad.cases import make_grad_output, make_inputs
from gradegrad.catalog import load_catalog
from gradegrad.discovery import normalize
from gradegrad.reference import reference_gradients


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"sub_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {normalize(name): obj for name, obj in vars(module).items() if isinstance(obj, type)}


def _values(ex, cls, case, seed: int, dtype: str) -> bool:
    args = [a.requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
            for s, a in zip(case.inputs, make_inputs(ex, case, seed, dtype))]
    out = cls.apply(*args)
    g = make_grad_output(out.detach(), seed, ex.id, case.name, dtype)
    wanted = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    got = torch.autograd.grad(out, wanted, g)
    ref_args = [a.detach().double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    ref_out, ref_grads = reference_gradients(ex, ref_args, [s.differentiable for s in case.inputs], g.double())
    tol = ex.tolerance(dtype)
    ok = torch.allclose(out.detach().double(), ref_out, rtol=tol.rtol, atol=tol.atol)
    return ok and all(torch.allclose(a.double(), b, rtol=tol.rtol, atol=tol.atol)
                      for a, b in zip(got, [r for r in ref_grads if r is not None]))


def grade_in_process(path: Path, catalog, seed: int = 0) -> tuple[int, int]:
    """(passed, total) checks: values on every case, float32, and gradcheck, per exercise found."""
    classes = _load(path)
    passed = total = 0
    for ex in catalog.values():
        cls = next((classes[normalize(n)] for n in ex.names if normalize(n) in classes), None)
        if cls is None:
            continue
        for case in ex.cases:
            total += 1
            passed += _values(ex, cls, case, seed, "float64")
        total += 2
        passed += _values(ex, cls, ex.cases[0], seed, "float32")
        args = tuple(a.requires_grad_(s.differentiable) if isinstance(a, torch.Tensor) else a
                     for s, a in zip(ex.inputs, make_inputs(ex, ex.cases[0], seed)))
        passed += torch.autograd.gradcheck(cls.apply, args, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
    return passed, total


if __name__ == "__main__":
    catalog = load_catalog()
    for arg in sys.argv[1:]:
        passed, total = grade_in_process(Path(arg), catalog)
        print(f"{arg}: {passed}/{total}")
