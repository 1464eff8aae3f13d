"""torch's symbolic-shapes module behind its stand-in: the same gradients and the same shape error
without sympy; the real module for anything else, once, whichever thread asks; and the console
script grades without importing sympy at all. Each case runs in a fresh interpreter (the stand-in
lives in sys.modules)."""

import os
import subprocess
import sys
import textwrap

from conftest import EXAMPLES, ROOT

GRADIENTS = """
import sys, torch
x = torch.arange(1., 4., dtype=torch.float64, requires_grad=True)
g = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
print(torch.autograd.grad((x * x).sin(), [x], g)[0].tolist())
y = x.exp()
y.backward(g)
print(x.grad.tolist())
try:
    torch.autograd.grad(x * 2, [x], torch.ones(2, dtype=torch.float64))
except RuntimeError as exc:
    print("error:", exc)
print(torch.autograd.gradcheck(lambda a: a.sin() * a, (x,), fast_mode=True))
print("sympy imported:", "sympy" in sys.modules)
"""


def run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_gradients_and_the_shape_error_are_torch_s_own_without_sympy():
    plain = run(GRADIENTS)
    standing_in = run("from gradegrad import lazy_shapes; lazy_shapes.install()\n" + GRADIENTS)
    assert plain.returncode == 0 and standing_in.returncode == 0, plain.stderr + standing_in.stderr
    assert "error: Mismatch in shape" in plain.stdout
    assert plain.stdout.replace("sympy imported: True", "") == standing_in.stdout.replace("sympy imported: False", "")
    assert standing_in.stdout.endswith("sympy imported: False\n")


def test_any_other_name_imports_the_real_module_which_takes_the_stand_in_s_place():
    result = run("""
        import sys, torch
        from gradegrad import lazy_shapes
        lazy_shapes.install()
        stand_in = sys.modules[lazy_shapes.NAME]
        from torch.fx.experimental.symbolic_shapes import ShapeEnv, sym_eq
        import torch.fx.experimental.symbolic_shapes as real
        assert sys.modules[lazy_shapes.NAME] is real and real is not stand_in
        assert real.ShapeEnv is ShapeEnv and stand_in.ShapeEnv is ShapeEnv
        assert stand_in.sym_eq((1, 2), [1, 2]) is True and stand_in.sym_eq((1, 2), (1,)) is False
        assert stand_in.expect_true(True) is True
        lazy_shapes.install()  # the real module is kept
        assert sys.modules[lazy_shapes.NAME] is real
        # forward-mode AD imports torch._dynamo, which asks for more than the two functions
        import torch.autograd.forward_ad as fwAD
        x = torch.arange(1., 4., dtype=torch.float64)
        with fwAD.dual_level():
            out = fwAD.make_dual(x, torch.ones(3, dtype=torch.float64)).exp().sum()
            print(round(float(fwAD.unpack_dual(out).tangent), 6))
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "30.192875\n"  # e + e**2 + e**3


def test_threads_asking_at_once_all_get_the_one_real_module():
    result = run("""
        import sys, threading, torch
        from gradegrad import lazy_shapes
        lazy_shapes.install()
        stand_in = sys.modules[lazy_shapes.NAME]
        start, got = threading.Barrier(8), []
        def ask():
            start.wait()
            got.append(stand_in.guard_bool)
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        import torch.fx.experimental.symbolic_shapes as real
        print(len(got), all(g is real.guard_bool for g in got))
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "8 True\n"


def test_the_console_script_grades_without_importing_sympy():
    """`-X importtime` lists every module the grader and its fork server import (an evaluator's
    own stderr is the student's output, which the grader keeps)."""
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "gradegrad", "check",
                             str(EXAMPLES / "complete.py"), "-e", "sigmoid", "-e", "dot"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "Total 23/23  all checks passed" in result.stdout
    assert "| torch\n" in result.stderr  # importtime did list the imports
    assert "sympy" not in result.stderr


def test_a_scan_of_every_module_does_not_import_the_real_one():
    """`inspect.getmodule` asks each module in sys.modules for `__file__` (torch does, registering
    its operators; so may a traceback's formatting), `importlib.util.find_spec` for `__spec__`:
    neither is a reason to import sympy."""
    result = run("""
        import importlib.util, inspect, sys, torch
        from gradegrad import lazy_shapes
        lazy_shapes.install()
        inspect.getmodule(inspect.currentframe())
        spec = importlib.util.find_spec(lazy_shapes.NAME)  # the real module's, as for any module imported
        print(hasattr(sys.modules[lazy_shapes.NAME], "__file__"), spec.origin.endswith("symbolic_shapes.py"),
              "sympy" in sys.modules)
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False True False\n"
