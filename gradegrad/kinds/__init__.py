"""Exercise kinds beyond autograd Functions: what a student hands in, how it is found and checked.

| kind       | the student writes                                           | looked up among |
|------------|--------------------------------------------------------------|-----------------|
| `function` | a `torch.autograd.Function` (checks in `gradegrad.checks`)    | classes         |
| `module`   | an `nn.Module` whose forward calls their own Function         | classes         |
| `vjp`      | NumPy `f(x, p)` with `f.make_vjp(x, p)` returning `vjp(u)`    | functions       |
| `chain`    | `backward_diff_chain(x, funcs, params)`                       | functions       |
| `formula`  | nothing to run: ∇f at a point, in a YAML/JSON file (`gradegrad.formula`) | -    |

Each kind's module registers its checks in `gradegrad.registry` under the ids of
`catalog.CHECK_IDS` (a kind's check applies to every exercise of that kind); importing this
package registers them all. The child only runs the student's code and returns data; every
comparison is made in the grader.
"""

from __future__ import annotations

from typing import Sequence

from gradegrad.catalog import Exercise
from gradegrad.discovery import Match, match_all, prefer_fitting
from gradegrad.registry import checks_for, kind_check
from gradegrad.sandbox.remote import ClassInfo, Loaded
from gradegrad.verdict import Check

__all__ = ["FUNCTION_KINDS", "kind_check", "kind_checks", "match_submission", "noun"]

FUNCTION_KINDS = ("vjp", "chain")  # kinds whose answer is a plain function, not a class


def kind_checks(kind: str) -> dict[str, Check]:
    """The checks of a kind, in CHECK_IDS order."""
    return checks_for(kind)


def noun(ex: Exercise) -> str:
    """How messages name what the student defines."""
    return "function" if ex.kind in FUNCTION_KINDS else "class"


def _fits(kind: str, info: ClassInfo) -> bool:
    if kind == "module":
        return info.is_module
    if kind in FUNCTION_KINDS:
        return True
    return info.is_function


def match_submission(exercises: Sequence[Exercise], loaded: Loaded) -> dict[str, Match]:
    """Match each exercise to a class (or, for vjp and chain, a function) of the submission.

    Names that fit the exercise's kind come first: with the seed's `ParamReLU_Fun` (a Function)
    and `ParamReLU` (a Module), the Function exercise gets the first and the Module one the second.
    What is left is matched as before, for "derives from X" and "did you mean" diagnostics, except
    that a class of the wrong kind under the exercise's name (`Linear`, an nn.Module wrapping the
    student's `LinearFunction`) gives way to the one class of the right kind named like it.
    """
    result: dict[str, Match] = {}
    for functions in (False, True):
        group = [ex for ex in exercises if (ex.kind in FUNCTION_KINDS) == functions]
        pool = loaded.functions if functions else loaded.classes
        fitting: dict[str, Match] = {}
        for kind in dict.fromkeys(ex.kind for ex in group):
            same = [ex for ex in group if ex.kind == kind]
            found = match_all(same, [c for c in pool if _fits(kind, c)])
            fitting.update({ex_id: m for ex_id, m in found.items() if m.info is not None})
        taken = {m.info.name for m in fitting.values()}
        rest = [ex for ex in group if ex.id not in fitting]
        result.update(fitting)
        for ex_id, m in match_all(rest, [c for c in pool if c.name not in taken]).items():
            ex = next(e for e in rest if e.id == ex_id)
            free = [c for c in pool if _fits(ex.kind, c) and c.name not in taken]
            m = prefer_fitting(ex, m, free, _kind_noun(ex.kind), _what(m.info)) if m.info is not None else m
            taken |= {m.info.name} if m.info is not None and _fits(ex.kind, m.info) else set()
            result[ex_id] = m
    return result


def _kind_noun(kind: str) -> str:
    return "nn.Module" if kind == "module" else "torch.autograd.Function"


def _what(info: ClassInfo) -> str:
    if info.is_module:
        return "an nn.Module"
    return "a torch.autograd.Function" if info.is_function else "not a torch.autograd.Function"


# importing the kinds' modules registers their checks (a new kind's module is added here)
from gradegrad.kinds import chain, module, vjp  # noqa: E402,F401
