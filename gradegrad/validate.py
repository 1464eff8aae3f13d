"""`gradegrad validate`: check manifests and rubrics, and that each exercise's reference passes.

Every problem is a `Problem`, shown as `file:line: field: what is wrong`. Loading a file stops at
its first real mistake (what follows could be an echo of it), except that unknown keys are
dropped and loading goes on, so every typo is reported at once, and in a rubric every bad
exercise entry is. Then, for each exercise that loads, a reference answer built from the manifest
(kinds.source) is graded like a submission: every check but `hand_written` must pass.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gradegrad.cases import make_grad_output, make_inputs
from gradegrad.catalog import (CHECK_IDS, DATA_KINDS, Exercise, Rubric, RubricItem, Tolerance, exercise_dirs,
                               exercise_from_data, rubric_dirs, rubric_from_data)
from gradegrad.diagnosis import close
from gradegrad.registry import applies
from gradegrad.describe import points
from gradegrad.discovery import normalize
from gradegrad.errors import ManifestError, UsageError
from gradegrad.kinds import FUNCTION_KINDS, extras
from gradegrad.kinds.source import REFERENCE_PRELUDE, reference
from gradegrad.options import Options
from gradegrad.reference import mistaken, reference_gradients, reference_output
from gradegrad.sandbox import scratch

MAX_ROUNDS = 50  # retries of one file after dropping an unknown key or a bad rubric entry
NOT_REQUIRED = ("hand_written",)  # a reference answer uses autograd by construction
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_ENTRY = re.compile(r"^exercises\[(\d+)\]")
_HINT = re.compile(r"did you mean '([^']+)'")


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class Validation:
    files: tuple[str, ...]
    exercises: tuple[str, ...]  # ids of the exercises that loaded
    rubrics: tuple[str, ...]  # names of the rubrics that loaded
    references: int  # reference answers graded
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Source:
    """One YAML file: its data, and its node tree for line numbers."""

    path: Path
    data: Any
    root: Node | None

    @property
    def is_rubric(self) -> bool:
        return isinstance(self.data, dict) and "exercises" in self.data


# --------------------------------------------------------------------------- files and lines


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, or found in the folders named."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"not found: {path}")
    return list(dict.fromkeys(files))


def _read(path: Path) -> _Source | Problem:
    try:
        text = path.read_text(encoding="utf-8")
        return _Source(path, yaml.safe_load(text), yaml.compose(text))
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(str(path), None, "", f"cannot read the file ({exc})")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return Problem(str(path), mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")


def line_of(root: Node | None, field: str) -> int | None:
    """The line of a field such as `inputs[0].shape` (or of the deepest part of it that exists)."""
    if field.startswith("line ") and field[5:].isdigit():
        return int(field[5:])
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for index, key in _TOKEN.findall(field):
        if key and isinstance(node, MappingNode):
            pair = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif index and isinstance(node, SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


# --------------------------------------------------------------------------- loading, problem by problem


class _Load:
    """Load one file again and again, dropping what can be dropped, collecting each problem."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.data = copy.deepcopy(source.data)
        entries = self.data.get("exercises") if isinstance(self.data, dict) else None
        self.kept = list(range(len(entries))) if source.is_rubric and isinstance(entries, list) else None
        self.problems: list[Problem] = []

    def original(self, field: str) -> str:
        """The field as written in the file (rubric entries dropped so far shift the indices)."""
        if self.kept is None:
            return field
        return _ENTRY.sub(lambda m: f"exercises[{self.kept[int(m.group(1))]}]", field)

    def problem(self, field: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(str(self.source.path), line or line_of(self.source.root, field), field, message))

    def run(self, build: Callable[[Any], Any]) -> Any:
        seen: set[str] = set()
        for _ in range(MAX_ROUNDS):
            try:
                return build(self.data)
            except ManifestError as exc:
                field = self.original(exc.field)
                if field in seen:
                    return None
                seen.add(field)
                self.problem(field, exc.problem, exc.line)
                if not self._drop(exc):
                    return None
        return None

    def _drop(self, exc: ManifestError) -> bool:
        """Go on past this problem: rename a typo to what it resembles, drop an unknown key or entry."""
        entry = _ENTRY.match(exc.field)
        if exc.problem.startswith("unknown field"):
            *parents, key = [k or int(i) for i, k in _TOKEN.findall(exc.field)]
            holder = self.data
            for part in parents:
                holder = holder[part]
            value = holder.pop(key, None)
            hint = _HINT.search(exc.problem)
            if hint and hint.group(1) not in holder:
                holder[hint.group(1)] = value  # `clas: Tanh` is read as `class: Tanh` to find what follows
            return True
        if self.kept is not None and entry:
            del self.data["exercises"][int(entry.group(1))]
            del self.kept[int(entry.group(1))]
            return True
        return False


# --------------------------------------------------------------------------- checks beyond loading


def why_not(check_id: str, ex: Exercise) -> str:
    """Why a check does not apply to an exercise, in an instructor's words."""
    if ex.kind != "function":
        return f"a {ex.kind} exercise has no {check_id} check"
    reasons = {"stability": "it has no stability case", "needs_input_grad": "it has one differentiable input",
               "efficiency": "it has no efficiency block", "wraps_function": "only module exercises have it",
               "training": "only chain and training exercises have it",
               "parameters": "only training exercises have it"}
    return reasons.get(check_id, "it does not apply")


def rubric_problems(load: _Load, rubric: Rubric, catalog: Mapping[str, Exercise]) -> None:
    """Points for checks that do not apply, exercises worth nothing, a total that does not add up."""
    entries = load.data["exercises"]
    for i, (item, entry) in enumerate(zip(rubric.items, entries)):
        ex, where = catalog[item.exercise], f"exercises[{load.kept[i]}]"
        own = entry.get("points") if isinstance(entry, dict) and isinstance(entry.get("points"), dict) else {}
        for cid in own:
            if not applies(cid, ex):
                load.problem(f"{where}.points.{cid}", f"{cid} does not apply to {ex.id} ({why_not(cid, ex)}): "
                             "these points are not counted")
        if not points(ex, item):
            load.problem(where, f"no check of {ex.id} is worth points under this rubric")
    if rubric.total is not None:
        each = [(it.exercise, points(catalog[it.exercise], it) or 0.0) for it in rubric.items]
        got = sum(p for _, p in each)
        if abs(got - rubric.total) > 1e-9:
            shown = " + ".join(f"{e} {p:g}" for e, p in each[:8]) + (" + ..." if len(each) > 8 else "")
            load.problem("total", f"the exercises' points add up to {got:g}, not {rubric.total:g} ({shown})")


def case_problems(load: _Load, ex: Exercise) -> None:
    """Evaluate the reference on every case of every variant, here (fast, no child)."""
    for where, cases in [("reference", ex.cases)] + [(f"variants[{i}]", v.cases) for i, v in enumerate(ex.variants)]:
        for case in cases:
            try:
                reference_output(replace(ex, cases=cases), make_inputs(ex, case, 0))
            except ManifestError as exc:
                load.problem(where, f"case '{case.name}': {exc.problem}")
                return
    if ex.mistakes:
        mistake_problems(load, ex)


GENERIC = {"sign_error": "minus the reference", "ignores_grad_output": "what ignoring grad_output gives"}
ALIKE = Tolerance(1e-7, 1e-7)  # two mistakes, or a mistake and the reference, giving the same numbers


def mistake_problems(load: _Load, ex: Exercise) -> None:
    """Each common mistake evaluates on every ordinary case, has the shape of what it stands for,
    differs from the reference somewhere (else it could never be named), and is not a mistake that
    gradegrad names first in its own words everywhere (minus the reference, grad_output ignored)."""
    differs, broken = [False] * len(ex.mistakes), set()
    generic: list[set[str] | None] = [None] * len(ex.mistakes)  # the generic codes it matched on every case
    seen: dict[tuple[int, str | None], list[torch.Tensor]] = {}  # (mistake, what it stands for) -> its values
    inputs = [spec.name for spec in ex.inputs]
    mask = [i in ex.differentiable for i in range(len(ex.inputs))]
    for case in (c for c in ex.cases if not c.stability):
        args = make_inputs(ex, case, 0)
        out = reference_output(ex, args)
        g = make_grad_output(out, 0, "validate", case.name)
        _, grads = reference_gradients(ex, args, mask, g)
        _, ones = reference_gradients(ex, args, mask, torch.ones_like(g))
        for i, m in enumerate(ex.mistakes):
            wanted = [(None, out, None)] if m.output else []
            wanted += [(name, grads[inputs.index(name)], ones[inputs.index(name)]) for name, _ in m.gradients]
            for name, right, unscaled in wanted:
                if i in broken:
                    break
                field = f"mistakes[{i}]." + ("output" if name is None else f"gradient.{name}")
                try:
                    values = mistaken(replace(ex, mistakes=(m,)), args, out, g, name, strict=True)
                except ManifestError as exc:
                    load.problem(field, f"case '{case.name}': {exc.problem}")
                    broken.add(i)
                    break
                if not values:
                    like = out if name is None else args[inputs.index(name)]
                    load.problem(field, f"case '{case.name}': the expression's shape is not that of "
                                 f"{'the output' if name is None else name}, {tuple(like.shape)}")
                    broken.add(i)
                    break
                value = values[0][0].double()
                seen.setdefault((i, name), []).append(value)
                differs[i] |= not _close(value, right)
                matched = {"sign_error"} if _close(value, -right) else set()
                if unscaled is not None and _close(value, unscaled) and not _close(unscaled, right):
                    matched.add("ignores_grad_output")
                generic[i] = matched if generic[i] is None else generic[i] & matched
    for i, d in enumerate(differs):
        if i in broken:
            continue
        if not d:
            load.problem(f"mistakes[{i}]", "gives the reference's own numbers on every case: "
                         "it would never be named (is the expression the right one?)")
        elif generic[i]:
            code = sorted(generic[i])[0]
            load.problem(f"mistakes[{i}]", f"gives {GENERIC[code]} on every case: gradegrad names that "
                         f"{code} in its own words, never these")
        else:
            first = next((j for j in range(i) if j not in broken and _same(seen, j, i)), None)
            if first is not None:
                load.problem(f"mistakes[{i}]", f"gives the numbers of mistakes[{first}] on every case: only "
                             f"mistakes[{first}] is ever named")


def _same(seen: dict, j: int, i: int) -> bool:
    """Mistakes j and i stand for the same results and give the same numbers on every case."""
    mine = {what: values for (k, what), values in seen.items() if k == i}
    theirs = {what: values for (k, what), values in seen.items() if k == j}
    return bool(mine) and all(what in theirs and all(_close(a, b) for a, b in zip(values, theirs[what]))
                              for what, values in mine.items())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return close(a, b, ALIKE)


def formula_problems(load: _Load, ex: Exercise) -> None:
    """A formula exercise must give every student a well-conditioned formula; try a few names."""
    from gradegrad.formula import make_formula

    try:
        for name in ("ada lovelace", "alan turing", "grace hopper"):
            make_formula(ex, name)
    except ManifestError as exc:
        load.problem(exc.field, exc.problem)


# --------------------------------------------------------------------------- reference answers


def _batches(exercises: list[Exercise]) -> list[list[Exercise]]:
    """Groups whose names cannot be confused with each other's, one reference file each."""
    groups: list[tuple[set, list[Exercise]]] = []
    for ex in exercises:
        pool = "functions" if ex.kind in FUNCTION_KINDS else "classes"
        keys = {(pool, normalize(n)) for n in ex.names}
        group = next((g for g in groups if not keys & g[0]), None)
        if group is None:
            groups.append((set(), []))
            group = groups[-1]
        group[0].update(keys)
        group[1].append(ex)
    return [g for _, g in groups]


def reference_problems(exercises: list[Exercise], catalog: Mapping[str, Exercise], loads: Mapping[str, _Load],
                       options: Options) -> None:
    """Grade a reference answer of each exercise; each failing check is a problem of its manifest."""
    from gradegrad.grading import grade

    items = tuple(RubricItem(ex.id, tuple((cid, 1.0) for cid in CHECK_IDS)) for ex in exercises)
    with scratch.folder("validate") as folder:  # (a killed run's: swept)
        for n, group in enumerate(_batches(exercises)):
            path = Path(folder) / f"reference_{n}.py"
            path.write_text(REFERENCE_PRELUDE + "\n\n" + "\n\n".join(reference(ex) for ex in group))
            ids = {ex.id for ex in group}
            rubric = Rubric("validate", "reference answers", tuple(it for it in items if it.exercise in ids), str(path))
            report = grade(path, rubric, catalog, options)
            for result in report.exercises:
                load = loads[result.id]
                if report.error:
                    load.problem("reference", f"the reference answer could not be loaded: {report.error}")
                    continue
                for check in result.checks:
                    if check.status in ("failed", "error") and check.id not in NOT_REQUIRED:
                        load.problem("reference", f"the reference answer fails its own {check.id} check: {check.message}")


# --------------------------------------------------------------------------- the whole run


def _exercise_loads(sources: list[_Source]) -> tuple[dict[str, Exercise], dict[str, _Load], list[_Load]]:
    loaded: dict[str, Exercise] = {}
    by_id: dict[str, _Load] = {}
    loads = []
    for source in sources:
        load = _Load(source)
        loads.append(load)
        ex = load.run(lambda data, p=source.path: exercise_from_data(p, data))
        if ex is None:
            continue
        if ex.id in loaded:
            load.problem("id", f"duplicate exercise id {ex.id!r} (also in {loaded[ex.id].path})")
            continue
        loaded[ex.id], by_id[ex.id] = ex, load
        if ex.kind not in DATA_KINDS:
            case_problems(load, ex)
        if ex.kind == "formula":
            formula_problems(load, ex)
    return loaded, by_id, loads


def _catalog_around(dirs: Iterable[Path], checked: set[Path]) -> list[_Source]:
    """The other manifests rubrics may name: the catalog's folders, minus the files being checked."""
    sources = []
    for path in collect_files([d for d in dirs if Path(d).is_dir()]):
        if path.resolve() not in checked:
            source = _read(path)
            if isinstance(source, _Source) and not source.is_rubric:
                sources.append(source)
    return sources


def validate(paths: Iterable[Path] = (), exercise_folders: Iterable[Path] = (), rubric_folders: Iterable[Path] = (),
             run: bool = True, options: Options | None = None) -> Validation:
    """Check `paths` (default: every exercise and rubric folder gradegrad reads)."""
    dirs = exercise_dirs(exercise_folders)
    files = collect_files(list(paths) or [*dirs, *rubric_dirs(rubric_folders)])
    problems: list[Problem] = []
    sources = []
    for path in files:
        source = _read(path)
        problems.append(source) if isinstance(source, Problem) else sources.append(source)
    checked = {s.path.resolve() for s in sources}
    exercises, by_id, loads = _exercise_loads([s for s in sources if not s.is_rubric])
    around, _, _ = _exercise_loads(_catalog_around(dirs, checked))
    for ex_id in exercises.keys() & around.keys():
        by_id[ex_id].problem("id", f"duplicate exercise id {ex_id!r} (also in {around[ex_id].path})")
    catalog = {**around, **exercises}
    rubrics = []
    for source in (s for s in sources if s.is_rubric):
        load = _Load(source)
        loads.append(load)
        rubric = load.run(lambda data, p=source.path: rubric_from_data(p, data, catalog))
        if rubric is not None:
            rubrics.append(rubric.name)
            rubric_problems(load, rubric, catalog)
    runnable = [ex for ex in exercises.values() if ex.kind != "formula" and not by_id[ex.id].problems
                and not extras.missing(ex)]  # an exercise whose optional packages are missing cannot run here
    if run and runnable:
        reference_problems(runnable, catalog, by_id, options or Options())
    order = {str(f): i for i, f in enumerate(files)}
    found = sorted((p for load in loads for p in load.problems), key=lambda p: (order.get(p.path, 0), p.line or 0))
    problems += found
    return Validation(tuple(str(f) for f in files), tuple(exercises), tuple(rubrics),
                      len(runnable) if run else 0, tuple(problems))
