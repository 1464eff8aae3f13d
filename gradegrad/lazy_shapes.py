"""torch's symbolic-shapes module, imported only when something needs more of it than two sizes
compared.

`torch.autograd.grad` and `Tensor.backward` given a gradient check its shape with
`expect_true(sym_eq(output_size, gradient_size))`, imported from
`torch.fx.experimental.symbolic_shapes` on every call; that module imports sympy, a third of a
second at the start of every grading process (gradcheck needs it in the grader, every backward in an
evaluator). `install` puts a stand-in in its place in `sys.modules`: it answers those two functions
itself when they are given plain integers and booleans, exactly as the module would, and for any
other name, or symbolic values, imports the real module, which from then on takes the stand-in's
place. So nothing torch computes changes; a process that never needs the rest never pays for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

NAME = "torch.fx.experimental.symbolic_shapes"
_swap = threading.Lock()  # the stand-in leaves sys.modules once, whichever thread asks first


def install() -> None:
    """Put the stand-in in place, unless the real module is imported already (then it is kept)."""
    import torch  # noqa: F401  (first: its own import is none of the stand-in's business)

    if NAME in sys.modules:
        return
    spec = importlib.util.find_spec(NAME)  # where the real one is (found, not imported)
    if spec is None:  # a torch without it: nothing to stand in for
        return
    stand_in = _StandIn(NAME)
    stand_in.__spec__ = spec  # what find_spec answers for a module already in sys.modules
    sys.modules[NAME] = stand_in


def _plain(size: object) -> bool:
    return isinstance(size, (tuple, list)) and all(type(n) is int for n in size)


class _StandIn(types.ModuleType):
    """The two functions `_make_grads` imports, for plain sizes; the real module for the rest."""

    def sym_eq(self, x: object, y: object) -> object:
        if _plain(x) and _plain(y):  # what the real one computes for two sizes of plain integers
            return len(x) == len(y) and all(a == b for a, b in zip(x, y))
        return self._real_module().sym_eq(x, y)

    def expect_true(self, a: object, skip: int = 0) -> object:
        if type(a) is bool:
            return a
        return self._real_module().expect_true(a, skip + 1)

    def _real_module(self) -> types.ModuleType:
        with _swap:
            if sys.modules.get(NAME) is self:
                del sys.modules[NAME]
        return importlib.import_module(NAME)  # importlib's own lock: one import, whoever else waits

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__") and name != "__all__":
            # what scans of sys.modules ask every module (`inspect.getmodule`: `__file__`;
            # `from ... import`: `__path__`) is not a reason to import the real one
            raise AttributeError(name)
        return getattr(self._real_module(), name)
