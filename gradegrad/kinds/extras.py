"""Optional extras: the packages some exercises need, and what to say when they are missing.

An exercise names its extra (`extra: jax`, implied by the kinds `jax_vjp`, `ode_field` and the
`haiku_optax` loop). Before it is graded, the grader asks the import system whether each module
of the extra can be found (`importlib.util.find_spec`: nothing is imported, so the grader and the
zygote never start JAX). The evaluator runs the same Python, so a module missing here is missing
there. Such an exercise is not graded: its status is `unavailable`, its checks are skipped and
count 0 of 0 (the grade does not depend on the grading machine's packages), and the message says
which extra to install.
"""

from __future__ import annotations

import importlib.util

from gradegrad.catalog import EXTRAS, Exercise

PACKAGES = {"jax": "jax", "haiku": "dm-haiku", "optax": "optax", "torchdiffeq": "torchdiffeq"}  # module -> PyPI


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(ex: Exercise) -> tuple[str, ...]:
    """The modules of the exercise's extra that cannot be imported here (none: it can be graded)."""
    return tuple(m for m in EXTRAS.get(ex.spec.extra, ()) if not _found(m))


def install_hint(extra: str) -> str:
    return f"pip install 'gradegrad[{extra}]'"


def unavailable_message(ex: Exercise, modules: tuple[str, ...]) -> str:
    names = ", ".join(PACKAGES.get(m, m) for m in modules)
    return (f"not graded: {ex.id} needs {names}, not installed where gradegrad runs; "
            f"install them with {install_hint(ex.spec.extra)} (it does not count toward the total)")


def extra_for_module(module: str) -> str | None:
    """The extra that brings `module` (for an import error of a submission), or None."""
    top = module.split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)
