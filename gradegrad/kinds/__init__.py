"""Exercise kinds beyond autograd Functions: what a student hands in, how it is found and checked.

| kind       | the student writes                                           | looked up among |
|------------|--------------------------------------------------------------|-----------------|
| `function` | a `torch.autograd.Function` (checks in `gradegrad.checks`)    | classes         |
| `module`   | an `nn.Module` whose forward calls their own Function         | classes         |
| `vjp`      | NumPy `f(x, p)` with `f.make_vjp(x, p)` returning `vjp(u)`    | functions       |
| `chain`    | `backward_diff_chain(x, funcs, params)`                       | functions       |
| `formula`  | nothing to run: ∇f at a point, in a YAML/JSON file (`gradegrad.formula`) | -    |
| `ode`      | a Function: RK4 forward, the adjoint ODE backward              | classes         |
| `deq`      | a Function: a fixed point forward, the implicit vjp backward   | classes         |
| `jacobian` | `jacobian(f, x)` returning the m×n (or n×m) matrix            | functions       |
| `training` | `optim_SGD`/`update_params`, or a whole loop `train(...)`     | functions       |
| `jax_vjp`  | `f = jax.custom_vjp(f)` with `f.defvjp(fwd, bwd)`             | functions       |
| `ode_field`| an `nn.Module` field f(t, y) for `torchdiffeq.odeint_adjoint` | classes         |

A `function` exercise with `compose: true` also accepts a plain function of its name that composes
the student's own Functions (seed 001's hint: `def dot(x, y): return Sum.apply(mul(x, y))`); the
child runs it through `kinds.compose_side`.

Each kind's module registers its checks in `gradegrad.registry` under the ids of
`catalog.CHECK_IDS`, with the rule saying for which exercises of the kind each applies (a manifest
may switch one off: a module with `wraps: false`, an ode without a `memory` block); importing this
package registers them all. The child only runs the student's code and returns data; every
comparison is made in the grader.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from gradegrad.catalog import Exercise
from gradegrad.discovery import Match, match_all, normalize, prefer_fitting
from gradegrad.registry import applies, checks_for, kind_check
from gradegrad.sandbox.remote import ClassInfo, Loaded
from gradegrad.verdict import Check

__all__ = ["FUNCTION_KINDS", "kind_applies", "kind_check", "kind_checks", "match_submission", "noun"]

FUNCTION_KINDS = ("vjp", "chain", "jacobian", "training", "jax_vjp")  # kinds whose answer is a function, not a class
COMPOSITION = "composition"  # the `bases` of a plain function matched to a `function` exercise


def kind_checks(kind: str) -> dict[str, Check]:
    """The checks of a kind, in CHECK_IDS order."""
    return checks_for(kind)


def kind_applies(check_id: str, ex: Exercise) -> bool:
    """Whether a check of the exercise's kind means anything for this exercise (`registry.applies`)."""
    return applies(check_id, ex)


def noun(ex: Exercise) -> str:
    """How messages name what the student defines."""
    return "function" if ex.kind in FUNCTION_KINDS else "class"


def _fits(kind: str, info: ClassInfo) -> bool:
    if kind in ("module", "ode_field"):
        return info.is_module
    if kind == "jax_vjp":
        return "custom_vjp" in info.bases
    if kind == "vjp":
        return info.has_make_vjp and "custom_vjp" not in info.bases
    if kind in FUNCTION_KINDS:
        return True
    return info.is_function


def _compositions(exercises: Sequence[Exercise], loaded: Loaded, matched: dict[str, Match]) -> dict[str, Match]:
    """`function` exercises left without a class, matched to a plain function of their name that
    composes the student's own Functions (no `make_vjp`, not a JAX function)."""
    plain = [replace(f, is_function=True, has_forward=True, has_backward=True, bases=(COMPOSITION,))
             for f in loaded.functions if not f.has_make_vjp and "custom_vjp" not in f.bases]
    wanted = [ex for ex in exercises if ex.kind == "function" and ex.spec.compose and ex.id not in matched]
    found = match_all(wanted, plain)
    return {ex_id: m for ex_id, m in found.items() if m.info is not None}


def match_submission(exercises: Sequence[Exercise], loaded: Loaded) -> dict[str, Match]:
    """Match each exercise to a class (or, for the function kinds, a function) of the submission.

    Names that fit the exercise's kind come first: with the seed's `ParamReLU_Fun` (a Function)
    and `ParamReLU` (a Module), the Function exercise gets the first and the Module one the second.
    What is left is matched as before, for "derives from X" and "did you mean" diagnostics, except
    that a class of the wrong kind under the exercise's name (`Linear`, an nn.Module wrapping the
    student's `LinearFunction`) gives way to the one class of the right kind named like it.
    """
    result: dict[str, Match] = {}
    claimed: set[str] = set()  # names of the function exercises already answered by a class or composition
    for functions in (False, True):
        group = [ex for ex in exercises if (ex.kind in FUNCTION_KINDS) == functions]
        pool = loaded.functions if functions else loaded.classes
        if functions:  # `def dot(x, y): return Dot.apply(x, y)` or a composition is no vjp attempt
            pool = [c for c in pool if c.has_make_vjp or "custom_vjp" in c.bases or normalize(c.name) not in claimed]
        fitting: dict[str, Match] = {}
        for kind in dict.fromkeys(ex.kind for ex in group):
            same = [ex for ex in group if ex.kind == kind]
            found = match_all(same, [c for c in pool if _fits(kind, c)])
            fitting.update({ex_id: m for ex_id, m in found.items() if m.info is not None})
        if not functions:  # a composition of the student's Functions, e.g. seed 001's dot
            fitting.update(_compositions(group, loaded, fitting))
            claimed = {normalize(n) for ex in group if ex.kind == "function" and ex.id in fitting for n in ex.names}
        taken = {m.info.name for m in fitting.values()}
        rest = [ex for ex in group if ex.id not in fitting]
        result.update(fitting)
        leftover = _quiet(match_all(rest, [c for c in pool if c.name not in taken]), group, taken)
        for ex_id, m in leftover.items():
            ex = next(e for e in rest if e.id == ex_id)
            free = [c for c in pool if _fits(ex.kind, c) and c.name not in taken]
            m = prefer_fitting(ex, m, free, _kind_noun(ex.kind), _what(m.info)) if m.info is not None else m
            taken |= {m.info.name} if m.info is not None and _fits(ex.kind, m.info) else set()
            result[ex_id] = m
    return result


def _quiet(matches: dict[str, Match], group: Sequence[Exercise], taken: set[str]) -> dict[str, Match]:
    """No "did you mean" for an exercise whose very name went to a sibling of another kind (the
    seed's JAX `add` answers jax_add; `add_fwd` is no near miss of vjp_add)."""
    names = {normalize(n) for n in taken}
    by_id = {ex.id: ex for ex in group}
    return {ex_id: (Match(None) if m.info is None and any(normalize(n) in names for n in by_id[ex_id].names) else m)
            for ex_id, m in matches.items()}


def _kind_noun(kind: str) -> str:
    return "nn.Module" if kind in ("module", "ode_field") else "torch.autograd.Function"


def _what(info: ClassInfo) -> str:
    if info.is_module:
        return "an nn.Module"
    return "a torch.autograd.Function" if info.is_function else "not a torch.autograd.Function"


# importing the kinds' modules registers their checks (a new kind's module is added here)
from gradegrad.kinds import chain, module, vjp  # noqa: E402,F401
from gradegrad.kinds import deq, jacobian, jax_vjp, ode, ode_field, training  # noqa: E402,F401
