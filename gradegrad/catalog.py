"""Load and validate exercise manifests and rubrics into frozen dataclasses.

Manifests (`exercises/*.yaml`) and rubrics (`rubrics/*.yaml`) are instructor data: every mistake
in them is a `ManifestError` naming the file, the field and what is expected. See
docs/exercises.md for the manifest reference.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from gradegrad.errors import ManifestError, UsageError

DATA_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_EXERCISES = DATA_ROOT / "exercises"
BUILTIN_RUBRICS = DATA_ROOT / "rubrics"
EXERCISES_ENV = "GRADEGRAD_EXERCISES"

CHECK_IDS = ("found", "forward", "backward", "gradcheck", "needs_input_grad", "float32",
             "stability", "inputs_unchanged", "device", "hand_written")
INPUT_KINDS = ("tensor", "float", "int")
DTYPES = ("float", "long")
DOMAIN_FIELDS = {
    "normal": {"mean": 0.0, "std": 1.0, "min_abs": 0.0},
    "uniform": {"low": -1.0, "high": 1.0},
    "bernoulli": {"p": 0.5},
    "randint": {"low": 0, "high": 2},
}
REFERENCE_SCOPE = ("torch", "F", "math")
DEFAULT_TOLERANCE = {"float64": (1e-7, 1e-7), "float32": (1e-4, 1e-5)}


@dataclass(frozen=True)
class Domain:
    """How an input's values are drawn."""

    kind: str = "normal"
    params: tuple[tuple[str, float], ...] = ()

    def get(self, name: str) -> float:
        return dict(self.params).get(name, DOMAIN_FIELDS[self.kind][name])


@dataclass(frozen=True)
class InputSpec:
    """One argument of the student's forward."""

    name: str
    kind: str = "tensor"  # tensor | float | int
    shape: tuple[int, ...] = ()
    dtype: str = "float"  # float | long
    domain: Domain = Domain()
    requires_grad: bool = True
    value: float | int | None = None  # for float/int arguments

    @property
    def is_tensor(self) -> bool:
        return self.kind == "tensor"

    @property
    def differentiable(self) -> bool:
        return self.is_tensor and self.dtype == "float" and self.requires_grad


@dataclass(frozen=True)
class Case:
    """A named set of inputs; `stability` cases are graded by the stability check only."""

    name: str
    inputs: tuple[InputSpec, ...]
    stability: bool = False


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Exercise:
    id: str
    class_name: str
    aliases: tuple[str, ...]
    teaches: str
    formula: str
    reference: str
    cases: tuple[Case, ...]
    tolerance64: Tolerance
    tolerance32: Tolerance
    path: str
    forbidden: tuple[str, ...] = ()  # aten ops a hand-written backward must not call

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return self.cases[0].inputs

    @property
    def differentiable(self) -> tuple[int, ...]:
        """Positions of the inputs that get a gradient."""
        return tuple(i for i, s in enumerate(self.inputs) if s.differentiable)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.class_name, *self.aliases)

    def tolerance(self, dtype: str) -> Tolerance:
        return self.tolerance32 if dtype == "float32" else self.tolerance64


@dataclass(frozen=True)
class RubricItem:
    exercise: str
    points: tuple[tuple[str, float], ...]  # (check id, points), in CHECK_IDS order

    def points_for(self, check: str) -> float:
        return dict(self.points).get(check, 0.0)


@dataclass(frozen=True)
class Rubric:
    name: str
    title: str
    items: tuple[RubricItem, ...]
    path: str
    defaults: tuple[tuple[str, float], ...] = ()  # the rubric's `points:` for every exercise
    only_found: bool = False  # the implicit rubric of `check` without --rubric: grade what is found


# --------------------------------------------------------------------------- YAML helpers


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, "", f"cannot read the file ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ManifestError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None


class _Fields:
    """Typed access to one YAML mapping, raising ManifestError naming file and field."""

    def __init__(self, path: Path, where: str, data: Any, allowed: Iterable[str]) -> None:
        self.path, self.where = path, where
        if not isinstance(data, Mapping):
            raise ManifestError(path, where or "top level", f"expected a mapping, got {_kind(data)}")
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
                raise ManifestError(path, self._name(key), f"unknown field{hint}")
        self.data = data

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else str(key)

    def error(self, key: str, problem: str) -> ManifestError:
        return ManifestError(self.path, self._name(key), problem)

    def get(self, key: str, types: type | tuple[type, ...], default: Any = ..., what: str = "") -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.error(key, f"required field is missing (expected {what or _names(types)})")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in _tuple(types):
            raise self.error(key, f"expected {what or _names(types)}, got {value!r}")
        if not isinstance(value, types):
            raise self.error(key, f"expected {what or _names(types)}, got {value!r}")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        value = self.get(key, str, default, "a string")
        if isinstance(value, str) and not value.strip() and default is ...:
            raise self.error(key, "must not be empty")
        return value

    def number(self, key: str, default: Any = ...) -> float:
        return self.get(key, (int, float), default, "a number")

    def shape(self, key: str, default: Any = ...) -> tuple[int, ...]:
        value = self.get(key, list, default, "a list of non-negative integers, e.g. [3, 4]")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
            raise self.error(key, f"expected a list of non-negative integers, e.g. [3, 4], got {value!r}")
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default, "one of " + ", ".join(choices))
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value


def _tuple(types: Any) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _names(types: Any) -> str:
    return " or ".join({"str": "a string", "list": "a list", "int": "an integer", "float": "a number",
                        "bool": "true or false", "dict": "a mapping"}.get(t.__name__, t.__name__)
                       for t in _tuple(types))


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:60]


# --------------------------------------------------------------------------- exercises

_INPUT_FIELDS = ("name", "kind", "shape", "dtype", "domain", "requires_grad", "value")
_OVERRIDE_FIELDS = ("shape", "domain", "value")


def _domain(path: Path, where: str, data: Any) -> Domain:
    if isinstance(data, str):
        data = {"kind": data}
    kinds = tuple(DOMAIN_FIELDS)
    probe = _Fields(path, where, data, ("kind", *{k for f in DOMAIN_FIELDS.values() for k in f}))
    kind = probe.choice("kind", kinds)
    fields = _Fields(path, where, data, ("kind", *DOMAIN_FIELDS[kind]))
    params = tuple((k, fields.number(k)) for k in DOMAIN_FIELDS[kind] if k in data)
    domain = Domain(kind, params)
    if kind in ("uniform", "randint") and domain.get("low") >= domain.get("high"):
        raise fields.error("high", "must be greater than low")
    if kind == "bernoulli" and not 0.0 <= domain.get("p") <= 1.0:
        raise fields.error("p", "must be a probability between 0 and 1")
    return domain


def _input(path: Path, where: str, data: Any) -> InputSpec:
    f = _Fields(path, where, data, _INPUT_FIELDS)
    name = f.text("name")
    if not name.isidentifier():
        raise f.error("name", f"expected a Python identifier, got {name!r}")
    kind = f.choice("kind", INPUT_KINDS, "tensor")
    if kind != "tensor":
        value = f.number("value")
        return InputSpec(name, kind, value=value, requires_grad=False, dtype=kind)
    dtype = f.choice("dtype", DTYPES, "float")
    domain = _domain(path, f"{where}.domain", data["domain"]) if "domain" in data else Domain()
    if dtype == "long" and domain.kind != "randint":
        raise f.error("domain", "a long input needs a randint domain, e.g. {kind: randint, low: 0, high: 5}")
    requires_grad = f.get("requires_grad", bool, dtype == "float", "true or false")
    if requires_grad and dtype != "float":
        raise f.error("requires_grad", "only float inputs can require grad")
    return InputSpec(name, "tensor", f.shape("shape"), dtype, domain, requires_grad)


def _override(path: Path, where: str, base: InputSpec, data: Any) -> InputSpec:
    f = _Fields(path, where, data, _OVERRIDE_FIELDS)
    if "value" in data and base.is_tensor:
        raise f.error("value", "only float/int inputs take a value; tensors take shape and domain")
    changes: dict[str, Any] = {}
    if "shape" in data:
        changes["shape"] = f.shape("shape")
    if "domain" in data:
        changes["domain"] = _domain(path, f"{where}.domain", data["domain"])
    if "value" in data:
        changes["value"] = f.number("value")
    return replace(base, **changes)


def _case(path: Path, where: str, data: Any, base: tuple[InputSpec, ...]) -> Case:
    f = _Fields(path, where, data, ("name", "inputs", "stability"))
    overrides = f.get("inputs", dict, {}, "a mapping from input name to overrides")
    names = [s.name for s in base]
    for key in overrides:
        if key not in names:
            raise ManifestError(path, f"{where}.inputs.{key}", f"no such input (inputs are: {', '.join(names)})")
    inputs = tuple(_override(path, f"{where}.inputs.{s.name}", s, overrides[s.name])
                   if s.name in overrides else s for s in base)
    return Case(f.text("name"), inputs, f.get("stability", bool, False, "true or false"))


def _reference(path: Path, expr: str, names: Iterable[str]) -> str:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ManifestError(path, "reference", f"not a valid Python expression ({exc.msg})") from None
    known = set(names) | set(REFERENCE_SCOPE)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in known:
            raise ManifestError(path, "reference", f"unknown name {node.id!r} (use the input names, torch, F or math)")
    return expr


def _tolerance(path: Path, data: Any) -> tuple[Tolerance, Tolerance]:
    f = _Fields(path, "tolerance", data or {}, ("float64", "float32"))
    out = []
    for key in ("float64", "float32"):
        t = _Fields(path, f"tolerance.{key}", f.data.get(key) or {}, ("rtol", "atol"))
        rtol, atol = DEFAULT_TOLERANCE[key]
        out.append(Tolerance(t.number("rtol", rtol), t.number("atol", atol)))
    return out[0], out[1]


_EXERCISE_FIELDS = ("id", "class", "aliases", "teaches", "formula", "reference", "inputs", "cases",
                    "tolerance", "forbidden")


def load_exercise(path: Path) -> Exercise:
    f = _Fields(path, "", _read_yaml(path), _EXERCISE_FIELDS)
    ex_id = f.text("id")
    class_name = f.text("class")
    aliases = f.get("aliases", list, [], "a list of class names")
    if not all(isinstance(a, str) and a.isidentifier() for a in aliases):
        raise f.error("aliases", f"expected a list of class names, got {aliases!r}")
    raw_inputs = f.get("inputs", list, what="a list of inputs")
    if not raw_inputs:
        raise f.error("inputs", "needs at least one input")
    base = tuple(_input(path, f"inputs[{i}]", d) for i, d in enumerate(raw_inputs))
    names = [s.name for s in base]
    if len(set(names)) != len(names):
        raise f.error("inputs", f"input names must be unique, got {names}")
    if not any(s.differentiable for s in base):
        raise f.error("inputs", "at least one input must be a float tensor that requires grad")
    raw_cases = f.get("cases", list, [{"name": "default"}], "a list of cases")
    cases = tuple(_case(path, f"cases[{i}]", d, base) for i, d in enumerate(raw_cases))
    if not cases or cases[0].stability:
        raise f.error("cases", "the first case must be an ordinary (non-stability) case")
    if len({c.name for c in cases}) != len(cases):
        raise f.error("cases", "case names must be unique")
    tol64, tol32 = _tolerance(path, f.data.get("tolerance"))
    forbidden = f.get("forbidden", list, [], "a list of aten op names, e.g. [aten::sigmoid_backward]")
    if not all(isinstance(op, str) and re.fullmatch(r"(aten::)?\w+", op) for op in forbidden):
        raise f.error("forbidden", f"expected aten op names such as aten::sigmoid_backward, got {forbidden!r}")
    forbidden = tuple(op if op.startswith("aten::") else f"aten::{op}" for op in forbidden)
    return Exercise(ex_id, class_name, tuple(aliases), f.text("teaches"), f.text("formula", ""),
                    _reference(path, f.text("reference"), names), cases, tol64, tol32, str(path), forbidden)


def exercise_dirs() -> list[Path]:
    """Built-in exercises, then any folders named by $GRADEGRAD_EXERCISES."""
    extra = [Path(p) for p in os.environ.get(EXERCISES_ENV, "").split(os.pathsep) if p]
    return [BUILTIN_EXERCISES, *extra]


def load_catalog(dirs: Iterable[Path] | None = None) -> dict[str, Exercise]:
    """Every exercise, by id, in file-name order; ids must be unique."""
    catalog: dict[str, Exercise] = {}
    for folder in exercise_dirs() if dirs is None else dirs:
        if not folder.is_dir():
            raise UsageError(f"exercise folder not found: {folder}")
        for path in sorted(folder.glob("*.yaml")):
            ex = load_exercise(path)
            if ex.id in catalog:
                raise ManifestError(path, "id", f"duplicate exercise id {ex.id!r} (also in {catalog[ex.id].path})")
            catalog[ex.id] = ex
    return catalog


# --------------------------------------------------------------------------- rubrics


def _points(path: Path, where: str, data: Any) -> dict[str, float]:
    f = _Fields(path, where, data, CHECK_IDS)
    points = {k: f.number(k) for k in data}
    for key, value in points.items():
        if value < 0:
            raise f.error(key, "points must not be negative")
    return points


def load_rubric(path: Path, catalog: Mapping[str, Exercise]) -> Rubric:
    f = _Fields(path, "", _read_yaml(path), ("name", "title", "points", "exercises"))
    defaults = _points(path, "points", f.get("points", dict, what="a mapping from check id to points"))
    entries = f.get("exercises", list, what="a list of exercise ids")
    items = []
    for i, entry in enumerate(entries):
        where = f"exercises[{i}]"
        if isinstance(entry, str):
            entry = {"id": entry}
        e = _Fields(path, where, entry, ("id", "points"))
        ex_id = e.text("id")
        if ex_id not in catalog:
            close = difflib.get_close_matches(ex_id, list(catalog), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise e.error("id", f"unknown exercise {ex_id!r}{hint}")
        points = {**defaults, **_points(path, f"{where}.points", e.get("points", dict, {}))}
        items.append(RubricItem(ex_id, tuple((c, float(points[c])) for c in CHECK_IDS if c in points)))
    if len({it.exercise for it in items}) != len(items):
        raise f.error("exercises", "an exercise is listed twice")
    name = f.text("name", path.stem)
    ordered = tuple((c, float(defaults[c])) for c in CHECK_IDS if c in defaults)
    return Rubric(name, f.text("title", name), tuple(items), str(path), ordered)


def rubric_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_RUBRICS.glob("*.yaml"))


def resolve_rubric(name_or_path: str | None, catalog: Mapping[str, Exercise]) -> Rubric:
    """`--rubric NAME|PATH`; without it, the catalog rubric restricted to classes found."""
    if name_or_path is None:
        full = load_rubric(BUILTIN_RUBRICS / "all.yaml", catalog)
        listed = {it.exercise for it in full.items}
        items = full.items + tuple(RubricItem(ex, full.defaults) for ex in catalog if ex not in listed)
        return replace(full, name="found", title="every exercise whose class is found",
                       items=items, only_found=True)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"rubric file not found: {path}")
        return load_rubric(path, catalog)
    candidate = BUILTIN_RUBRICS / f"{name_or_path}.yaml"
    if candidate.is_file():
        return load_rubric(candidate, catalog)
    names = rubric_names()
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UsageError(f"unknown rubric {name_or_path!r}: {hint}available: {', '.join(names)}")


def select_exercises(rubric: Rubric, only: Iterable[str], catalog: Mapping[str, Exercise]) -> Rubric:
    """Restrict a rubric to the `--exercise` ids given (all of them when none)."""
    only = list(only)
    for ex_id in only:
        if ex_id not in catalog:
            close = difflib.get_close_matches(ex_id, list(catalog), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"unknown exercise {ex_id!r}: {hint}known: {', '.join(catalog)}")
    if not only:
        return rubric
    in_rubric = {it.exercise for it in rubric.items}
    missing = [e for e in only if e not in in_rubric]
    if missing:
        raise UsageError(f"exercise {missing[0]!r} is not part of rubric {rubric.name!r}")
    items = tuple(it for it in rubric.items if it.exercise in only)
    return replace(rubric, items=items, only_found=False)
