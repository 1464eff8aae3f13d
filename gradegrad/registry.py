"""The checks of every exercise kind, in one table: `checks/` and `kinds/` register into it.

`checks/` registers the checks of kind `function`, `kinds/` those of the other kinds (module, vjp,
chain, ...), each under a rubric check id of `catalog.CHECK_IDS` and with the rule saying for which
exercises it means something. `grading`, `batch`, `describe` and `validate` read the table. The
table imports neither package statically: it loads the packages named in `PLUGINS` the first time
it is read (as pytest loads its built-in plugins), so imports flow one way, into this module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from gradegrad.catalog import CHECK_IDS, Exercise
from gradegrad.verdict import Check

PLUGINS = ("gradegrad.checks", "gradegrad.kinds")  # importing each registers its checks
Applies = Callable[[Exercise], bool]
Reads = Callable[[Exercise, str], list]  # (exercise, device) -> the evaluations it will read (evaluation.Read, Ahead)


@dataclass(frozen=True)
class Entry:
    check: Check
    applies: Applies  # whether the check means anything for an exercise of its kind
    reads: Reads | None = None  # what it will ask the exercise's Runner for, so that one request brings it all


_TABLE: dict[str, dict[str, Entry]] = {}  # kind -> check id -> entry
_WARMS: dict[str, Callable[[Exercise], tuple[str, ...]]] = {}  # kind -> what its evaluators import lazily
_loaded = False


def register(check_id: str, kind: str = "function", applies: Applies | None = None,
             reads: Reads | None = None) -> Callable[[Check], Check]:
    """Register a check of `kind` under a rubric check id; `applies` defaults to every exercise;
    `reads` lists the evaluations it will read (`evaluation.Runner` asks for them all at once)."""
    if check_id not in CHECK_IDS:
        raise ValueError(f"unknown check id {check_id!r} (add it to catalog.CHECK_IDS)")

    def add(fn: Check) -> Check:
        _TABLE.setdefault(kind, {})[check_id] = Entry(fn, applies or (lambda ex: True), reads)
        return fn

    return add


def kind_check(kind: str, check_id: str, applies: Applies | None = None,
               reads: Reads | None = None) -> Callable[[Check], Check]:
    """`register` with the kind first, as the modules of `kinds/` write it."""
    return register(check_id, kind, applies, reads)


def share(kind: str, check_ids: tuple[str, ...], source: str = "function") -> None:
    """Register `source`'s checks `check_ids` (with their rules) for `kind` too; a module of the
    kind may then override one."""
    _load()
    for cid in check_ids:
        _TABLE.setdefault(kind, {})[cid] = _TABLE[source][cid]


def evaluator_imports(kind: str, modules: Callable[[Exercise], tuple[str, ...]]) -> None:
    """Register what an evaluator grading an exercise of `kind` imports on first use (a second of
    `torch._dynamo` for `torch.optim`): the fork server imports it once, for the evaluators after
    (`zygote.warm_later`), instead of every evaluator importing its own."""
    _WARMS[kind] = modules


def warm_for(ex: Exercise) -> tuple[str, ...]:
    """The modules an evaluator grading `ex` will import on first use (`evaluator_imports`)."""
    _load()
    rule = _WARMS.get(ex.kind)
    return rule(ex) if rule is not None else ()


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in PLUGINS:
            importlib.import_module(name)


def checks_for(kind: str = "function") -> dict[str, Check]:
    """Every check of an exercise kind, in the order of CHECK_IDS."""
    _load()
    table = _TABLE.get(kind, {})
    return {cid: table[cid].check for cid in CHECK_IDS if cid in table}


def reads_of(ex: Exercise, check_ids: list[str], device: str) -> list:
    """The evaluations the checks `check_ids` will read on `ex`, in the order they will read them."""
    _load()
    table = _TABLE.get(ex.kind, {})
    return [read for cid in check_ids if cid in table and table[cid].reads is not None
            for read in table[cid].reads(ex, device)]


def applies(check_id: str, ex: Exercise) -> bool:
    """Whether a check means anything for an exercise (else its rubric points do not count)."""
    _load()
    entry = _TABLE.get(ex.kind, {}).get(check_id)
    return entry is not None and entry.applies(ex)


def skipped_on(check_id: str, device: str) -> str | None:
    """Why a check is skipped on this device whatever the submission (it then counts 0 of 0)."""
    if check_id == "device" and device == "cpu":
        return "runs with --device cuda"
    if check_id == "efficiency" and device != "cpu":  # the kernel's account of memory has no GPU memory
        return "runs on the CPU: the memory it measures is the kernel's account, which holds no GPU memory"
    return None
