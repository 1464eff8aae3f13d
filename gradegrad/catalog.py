"""Load and validate exercise manifests and rubrics into frozen dataclasses.

Manifests (`exercises/*.yaml`) and rubrics (`rubrics/*.yaml`) are instructor data: every mistake
in them is a `ManifestError` naming the file, the field and what is expected. See
docs/exercises.md for the manifest reference.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from gradegrad.errors import ManifestError, UsageError

def _data_root() -> Path:
    """The repository (a checkout or an editable install), or the data packaged in the wheel."""
    package = Path(__file__).resolve().parent
    packaged = package / "data"
    return packaged if (packaged / "exercises").is_dir() else package.parent


DATA_ROOT = _data_root()
BUILTIN_EXERCISES = DATA_ROOT / "exercises"
BUILTIN_RUBRICS = DATA_ROOT / "rubrics"
EXERCISES_ENV = "GRADEGRAD_EXERCISES"
RUBRICS_ENV = "GRADEGRAD_RUBRICS"

CHECK_IDS = ("found", "forward", "backward", "gradcheck", "needs_input_grad", "float32",
             "stability", "inputs_unchanged", "device", "hand_written", "efficiency", "double_backward", "jvp",
             "wraps_function", "training",
             "parameters")  # training loops: the final parameters (gradegrad.kinds.training)
KINDS = ("function", "module", "vjp", "chain", "formula",  # what students hand in; docs/exercises.md, "Kinds"
         "ode", "deq", "jacobian", "training", "jax_vjp", "ode_field")
DATA_KINDS = ("chain", "formula", "jacobian", "training")  # kinds whose manifest has no inputs, cases or reference
EXTRAS = {"jax": ("jax", "haiku", "optax"), "ode": ("torchdiffeq",)}  # pyproject's extras: the modules each brings
LOOPS = ("numpy_sgd", "torch_sgd", "haiku_optax")  # training: the notes' loops (gradegrad.kinds.training)
ORIENTATIONS = ("m_by_n", "n_by_m")  # jacobian: rows are outputs (J), or rows are inputs (J^T, seed 003's loop)
INPUT_KINDS = ("tensor", "float", "int")
DTYPES = ("float", "long")
DOMAIN_FIELDS = {
    "normal": {"mean": 0.0, "std": 1.0, "min_abs": 0.0},
    "uniform": {"low": -1.0, "high": 1.0},
    "bernoulli": {"p": 0.5},
    "randint": {"low": 0, "high": 2},
}
REFERENCE_SCOPE = ("torch", "F", "math", "solvers")  # solvers: gradegrad.kinds.solvers (RK4, fixed points)
# A reference is evaluated in the grader (with every right the grader has): a manifest may come from a
# course folder named in a project's config, which a student's repository can hold too. So it is kept to
# what a formula needs (reference.py also refuses attribute chains that reach a module outside torch's
# math: torch.os, torch.hub, ...).
REFERENCE_NODES = (ast.Expression, ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Call, ast.keyword,
                   ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp,
                   ast.BoolOp, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
REFERENCE_DENIED = frozenset({"load", "save", "from_file", "load_library", "compile", "hub", "ops", "classes",
                              "library", "utils", "jit", "storage", "untyped_storage", "register_hook", "system",
                              "open", "exec", "eval", "set_default_device", "set_default_dtype",
                              # out of torch into NumPy (ndarray.dump writes a pickle anywhere) or raw memory
                              "numpy", "dump", "dumps", "tofile", "ctypes", "data_ptr",
                              # the grader's own global state
                              "manual_seed", "seed", "use_deterministic_algorithms", "share_memory_",
                              # TorchScript compiled or loaded from a string or a file, threads, environments
                              "CompilationUnit", "define", "import_ir_module", "import_ir_module_from_buffer",
                              "parse_ir", "fork", "wait", "get_file_path", "prepare_multiprocessing_environment"})


def _denied(attr: str) -> bool:
    """An attribute a reference may not use: Python's internals (_x, __x__), an in-place method (x_: it
    would write to the grader's inputs), a setter of torch's global state (set_x), a hook (register_x),
    or one listed above."""
    return attr.startswith(("_", "set_", "register_")) or attr.endswith("_") or attr in REFERENCE_DENIED
DEFAULT_TOLERANCE = {"float64": (1e-7, 1e-7), "float32": (1e-4, 1e-5)}


def _hash_once(self) -> int:
    """The hash of a frozen exercise's fields, computed once: an exercise (and its cases) is part of
    every reference memo's key, and hashing its nested fields each time cost more than the lookup."""
    try:
        return self.__dict__["_hash"]
    except KeyError:
        value = hash(tuple(getattr(self, f.name) for f in fields(self)))
        object.__setattr__(self, "_hash", value)
        return value


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
    include: tuple[float, ...] = ()  # values every draw holds, as its first elements (decisive values)

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

    __hash__ = _hash_once


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Efficiency:
    """How the inputs grow for the `efficiency` check: shapes where "n" takes each of `sizes`."""

    sizes: tuple[int, ...]  # values of n, increasing (e.g. 256, 1024, 4096)
    shapes: tuple[tuple[str, tuple[int | str, ...]], ...]  # input name -> shape; inputs not named keep theirs

    def shape(self, name: str, n: int) -> tuple[int, ...] | None:
        """The shape of input `name` at size n (None: the input keeps its manifest shape)."""
        dims = dict(self.shapes).get(name)
        return None if dims is None else tuple(n if d == "n" else int(d) for d in dims)


@dataclass(frozen=True)
class KindSpec:
    """What an exercise's kind adds to the common fields (docs/exercises.md, "Kinds")."""

    init: tuple[str, ...] = ()  # module: inputs passed to the constructor (e.g. alpha), not to forward
    wraps: bool = True  # module: the output must come from the student's own Function (wraps_function)
    compose: bool = False  # function: a plain function composing the student's Functions also answers it
    upstream: str = "random"  # vjp: "random" u, or "none": vjp(None), a loss at the end of a chain
    steps: int = 3  # chain: SGD steps whose losses must match the reference run
    lr: float = 0.01  # chain: SGD learning rate
    variables: int = 5  # formula: the expression's variables x1 .. xn
    rtol: float = 0.01  # formula: tolerance on each gradient component
    atol: float = 0.01
    extra: str = ""  # any kind: the optional extra (EXTRAS) whose packages the exercise needs
    memory: tuple[str, tuple[int, ...]] | None = None  # ode: (the int input that grows, its sizes)
    orientation: str = "m_by_n"  # jacobian: "m_by_n" (J, rows are outputs) or "n_by_m" (J^T)
    loop: str = ""  # training: which of the notes' loops (LOOPS)
    epochs: int = 10  # training: epochs whose losses are compared
    times: tuple[float, float, int] = (0.0, 1.0, 11)  # ode_field: torch.linspace(start, end, points)


@dataclass(frozen=True)
class Variant:
    """One per-student alternative of an exercise: its cases with the variant's overrides applied."""

    label: str  # what changes, e.g. "alpha=0.1, x.shape=[6]"
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Mistake:
    """A mistake students commonly make, as the numbers it gives: what forward returns with it
    (`output`), or the gradient of an input (`gradients`, by input name). Expressions over the input
    names, `out` (the reference's output) and `grad_output`, evaluated by the grader like `reference`."""

    says: str  # what is wrong, in the student's terms
    output: str | None = None
    gradients: tuple[tuple[str, str], ...] = ()


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
    efficiency: Efficiency | None = None  # how inputs grow for the efficiency check (None: not checked)
    kind: str = "function"  # one of KINDS
    spec: KindSpec = KindSpec()  # the kind's own fields
    variants: tuple[Variant, ...] = ()  # per-student alternatives, used by a rubric with `variants: true`
    mistakes: tuple[Mistake, ...] = ()  # common mistakes the diagnosis names when a student's numbers match

    __hash__ = _hash_once

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


VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")  # Gradescope's words


@dataclass(frozen=True)
class RubricItem:
    exercise: str
    points: tuple[tuple[str, float], ...]  # (check id, points), in CHECK_IDS order
    visibility: tuple[tuple[str, str], ...] = ()  # Gradescope: check id (or "default") -> one of VISIBILITIES

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
    total: float | None = None  # the points the exercises must add up to (checked by `gradegrad validate`)
    variants: bool = False  # derive each student's variant of the exercises from the student's name
    visibility: tuple[tuple[str, str], ...] = ()  # Gradescope: check id (or "default") -> one of VISIBILITIES
    stdout_visibility: str = "hidden"  # Gradescope: whether students see what the autograder printed


# --------------------------------------------------------------------------- YAML helpers

# libyaml's safe loader where PyYAML was built with it (the wheels are): the same data as
# yaml.safe_load, read 7 times faster (some 60 ms of every command's start for the built-in files)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, "", f"cannot read the file ({exc})") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ManifestError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                            mark.line + 1 if mark else None) from None


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

    def count(self, key: str, default: int, low: int, high: int, what: str) -> int:
        """An integer from `low` to `high` (`what`: "steps", "epochs", ...)."""
        value = self.get(key, int, default, f"a number of {what} between {low} and {high}")
        if not low <= value <= high:
            raise self.error(key, f"expected a number of {what} between {low} and {high}, got {value}")
        return value

    def learning_rate(self, key: str = "lr", default: float = 0.01) -> float:
        value = self.number(key, default)
        if not 0 < value < 1:
            raise self.error(key, f"expected a learning rate between 0 and 1, got {value}")
        return float(value)

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

_INPUT_FIELDS = ("name", "kind", "shape", "dtype", "domain", "requires_grad", "value", "include")
_OVERRIDE_FIELDS = ("shape", "domain", "value", "include")


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
    spec = InputSpec(name, "tensor", f.shape("shape"), dtype, domain, requires_grad)
    return _with_include(f, spec)


def _with_include(f: "_Fields", spec: InputSpec) -> InputSpec:
    """`include`: a list of numbers the tensor holds (its first elements), at most one per element."""
    if "include" not in f.data:
        return spec
    if not spec.is_tensor:
        raise f.error("include", "only tensor inputs take include; a float/int input takes value")
    values = f.get("include", list, what="a list of numbers, e.g. [-1000, 1000]")
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise f.error("include", f"expected a non-empty list of numbers, e.g. [-1000, 1000], got {values!r}")
    if not all(math.isfinite(v) for v in values):
        raise f.error("include", f"expected finite numbers, got {values!r}")
    if spec.dtype == "long" and not all(float(v).is_integer() and spec.domain.get("low") <= v < spec.domain.get("high")
                                        for v in values):
        raise f.error("include", f"a long input includes integers in [low, high) of its domain, got {values!r}")
    return replace(spec, include=tuple(float(v) for v in values))


def _check_include(f: "_Fields", spec: InputSpec, key: str) -> None:
    """The included values fit in the tensor's shape (checked once the case's shape is known)."""
    room = math.prod(spec.shape)
    if spec.include and len(spec.include) > room:
        raise f.error(key, f"{len(spec.include)} values to include, but shape {list(spec.shape)} holds {room}")


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
    return _with_include(f, replace(base, **changes))


def _case(path: Path, where: str, data: Any, base: tuple[InputSpec, ...]) -> Case:
    f = _Fields(path, where, data, ("name", "inputs", "stability"))
    overrides = f.get("inputs", dict, {}, "a mapping from input name to overrides")
    names = [s.name for s in base]
    for key in overrides:
        if key not in names:
            raise ManifestError(path, f"{where}.inputs.{key}", f"no such input (inputs are: {', '.join(names)})")
    inputs = tuple(_override(path, f"{where}.inputs.{s.name}", s, overrides[s.name])
                   if s.name in overrides else s for s in base)
    for spec in inputs:
        _check_include(f, spec, f"inputs.{spec.name}")
    return Case(f.text("name"), inputs, f.get("stability", bool, False, "true or false"))


def _reference(path: Path, expr: str, names: Iterable[str], field: str = "reference",
               words: str = "the input names, torch, F or math") -> str:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ManifestError(path, field, f"not a valid Python expression ({exc.msg})") from None
    known = set(names) | set(REFERENCE_SCOPE)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in known:
            raise ManifestError(path, field, f"unknown name {node.id!r} (use {words})")
        if not isinstance(node, REFERENCE_NODES):
            raise ManifestError(path, field, f"{type(node).__name__} is not allowed: a reference is arithmetic, "
                                "indexing and calls of torch, F, math or the inputs' methods")
        if isinstance(node, ast.Attribute) and _denied(node.attr):
            raise ManifestError(path, field, f"attribute {node.attr!r} is not allowed (it reads or writes "
                                "files, loads code, writes in place, changes the grader's state or reaches "
                                "Python's internals)")
    return expr


MISTAKE_NAMES = ("out", "grad_output")  # what a mistake's expressions may use besides the inputs


def _mistakes(path: Path, data: Any, base: tuple[InputSpec, ...]) -> tuple[Mistake, ...]:
    if not isinstance(data, list):
        raise ManifestError(path, "mistakes", f"expected a list of mistakes, e.g. [{{says: ..., gradient: "
                            f"{{x: 'grad_output * out * (1 + out)'}}}}], got {_kind(data)}")
    names = [s.name for s in base]
    clash = [n for n in names if n in MISTAKE_NAMES]
    if clash:
        raise ManifestError(path, "mistakes", f"an input is named {clash[0]!r}, a name that mistakes give the "
                            "reference's output or the upstream gradient: rename the input")
    words = f"the input names ({', '.join(names)}), out, grad_output, torch, F or math"
    differentiable = [s.name for s in base if s.differentiable]
    found = []
    for i, item in enumerate(data):
        f = _Fields(path, f"mistakes[{i}]", item, ("says", "output", "gradient"))
        says = f.text("says")
        output = f.get("output", str, None, "an expression for the wrong output")
        if output is not None:  # forward has no upstream gradient
            output = _reference(path, output, [*names, "out"], f.where + ".output",
                                words.replace(", grad_output", ""))
        grads = f.get("gradient", dict, {}, "a mapping from input name to an expression for its wrong gradient")
        for name, expr in grads.items():
            if name not in differentiable:
                raise f.error(f"gradient.{name}", f"no input with a gradient is named so (they are: "
                              f"{', '.join(differentiable)})")
            if not isinstance(expr, str) or not expr.strip():
                raise f.error(f"gradient.{name}", f"expected an expression, got {expr!r}")
            _reference(path, expr, [*names, *MISTAKE_NAMES], f"{f.where}.gradient.{name}", words)
        if output is None and not grads:
            raise f.error("says", "a mistake needs an `output` or a `gradient` (what its numbers are)")
        found.append(Mistake(says.strip(), output, tuple((str(k), v) for k, v in grads.items())))
    return tuple(found)


def _tolerance(path: Path, data: Any) -> tuple[Tolerance, Tolerance]:
    f = _Fields(path, "tolerance", data or {}, ("float64", "float32"))
    out = []
    for key in ("float64", "float32"):
        t = _Fields(path, f"tolerance.{key}", f.data.get(key) or {}, ("rtol", "atol"))
        rtol, atol = DEFAULT_TOLERANCE[key]
        out.append(Tolerance(t.number("rtol", rtol), t.number("atol", atol)))
    return out[0], out[1]


_EXERCISE_FIELDS = ("id", "class", "aliases", "teaches", "formula", "reference", "inputs", "cases",
                    "tolerance", "forbidden", "efficiency", "extra", "mistakes")


def _efficiency(path: Path, data: Any, base: tuple[InputSpec, ...]) -> Efficiency:
    f = _Fields(path, "efficiency", data, ("sizes", "inputs"))
    sizes = f.get("sizes", list, [256, 1024, 4096], "a list of increasing sizes, e.g. [256, 1024, 4096]")
    if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes) \
            or sorted(set(sizes)) != sizes:
        raise f.error("sizes", "expected at least two increasing positive integers, e.g. [256, 1024, 4096], "
                      f"got {sizes!r}")
    shapes = f.get("inputs", dict, what="a mapping from input name to a shape with n, e.g. {x: [n]}")
    tensors = [s.name for s in base if s.is_tensor]
    for name, dims in shapes.items():
        if name not in tensors:
            raise f.error(f"inputs.{name}", f"no such tensor input (tensor inputs are: {', '.join(tensors)})")
        if not isinstance(dims, list) or not all(d == "n" or (isinstance(d, int) and not isinstance(d, bool)
                                                               and d >= 0) for d in dims):
            raise f.error(f"inputs.{name}", f"expected a shape of integers and n, e.g. [n, 8], got {dims!r}")
    if not any("n" in dims for dims in shapes.values()):
        raise f.error("inputs", "at least one input's shape must contain n, e.g. {x: [n]}")
    return Efficiency(tuple(sizes), tuple((name, tuple(dims)) for name, dims in shapes.items()))


def load_exercise(path: Path) -> Exercise:
    return exercise_from_data(path, _read_yaml(path))


def exercise_from_data(path: Path, data: Any) -> Exercise:
    """An exercise from parsed YAML (`gradegrad validate` runs it again on corrected data)."""
    f = _Fields(path, "", data, _EXERCISE_FIELDS + _KIND_FIELDS)
    kind = f.choice("kind", KINDS, "function")
    if kind in DATA_KINDS:
        return _data_exercise(path, f, kind)
    ex_id = f.text("id")
    class_name = _class_name(f)
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
    efficiency = _efficiency(path, f.data["efficiency"], base) if f.data.get("efficiency") is not None else None
    free = ("t",) if kind == "ode_field" else ()  # the field's time
    mistakes = _mistakes(path, f.data["mistakes"], base) if f.data.get("mistakes") is not None else ()
    ex = Exercise(ex_id, class_name, tuple(aliases), f.text("teaches"), f.text("formula", ""),
                 _reference(path, f.text("reference"), [*names, *free]), cases, tol64, tol32, str(path), forbidden,
                 efficiency, mistakes=mistakes)
    return _with_kind(path, f, kind, base, raw_cases, ex)


# --------------------------------------------------------------------------- kinds

_KIND_FIELDS = ("kind", "init", "wraps", "compose", "upstream", "variants", "steps", "lr", "variables", "memory", "orientation",
                "loop", "epochs", "times")
_OWN_FIELDS = {"function": ("compose", "mistakes"), "module": ("init", "wraps", "mistakes"), "vjp": ("upstream", "mistakes"), "chain": ("steps", "lr"),
               "formula": ("variables", "tolerance"), "jax_vjp": ("upstream", "mistakes"), "ode": ("memory",),
               "jacobian": ("orientation",), "training": ("loop", "epochs", "lr"),
               "ode_field": ("times",)}  # fields only these kinds take
_DATA_FIELDS = {"chain": ("id", "kind", "class", "aliases", "teaches", "formula", "steps", "lr", "extra"),
                "formula": ("id", "kind", "teaches", "formula", "variables", "tolerance"),
                "jacobian": ("id", "kind", "class", "aliases", "teaches", "formula", "orientation", "tolerance"),
                "training": ("id", "kind", "class", "aliases", "teaches", "formula", "loop", "epochs", "lr",
                             "tolerance", "extra")}


def _class_name(f: _Fields) -> str:
    name = f.text("class")
    if not name.isidentifier():
        raise f.error("class", f"expected a Python name (students define it), got {name!r}")
    return name


def _refuse_foreign(f: _Fields, kind: str, allowed: Iterable[str]) -> None:
    for key in f.data:
        if key not in allowed:
            raise f.error(key, f"not used by kind: {kind} (see docs/exercises.md, \"Kinds\")")


def _with_kind(path: Path, f: _Fields, kind: str, base: tuple[InputSpec, ...], raw_cases: list,
               ex: Exercise) -> Exercise:
    """Check and add what the kind (function, module, vjp) takes; and the per-student variants."""
    others = {k for fields in _OWN_FIELDS.values() for k in fields} - {"tolerance"}
    _refuse_foreign(f, kind, [k for k in f.data if k not in others or k in _OWN_FIELDS.get(kind, ())])
    spec = KindSpec(extra=_extra(f))
    if kind == "module":
        init = f.get("init", list, [], "a list of input names, e.g. [alpha]")
        scalars = [s.name for s in base if not s.is_tensor]
        for name in init:
            if name not in scalars:
                raise f.error("init", f"{name!r} is not a float/int input (those are: {', '.join(scalars) or 'none'})")
        spec = replace(spec, init=tuple(init), wraps=f.get("wraps", bool, True, "true or false"))
    if kind in ("vjp", "jax_vjp"):
        if len(base) != 2 or not all(s.is_tensor for s in base) or not base[0].differentiable:
            raise f.error("inputs", "a vjp function takes two arrays f(x, p), and x must require grad")
        spec = replace(spec, upstream=f.choice("upstream", ("random", "none"), "random"))
    if kind == "function":
        spec = replace(spec, compose=f.get("compose", bool, False, "true or false"))
    if kind == "ode":
        spec = replace(spec, memory=_memory(f, base))
    if kind == "ode_field":
        spec = replace(spec, times=_times(f))
        if len(base) != 1 or not base[0].differentiable:
            raise f.error("inputs", "an ODE field takes one input, the initial state y, a float tensor")
    if kind == "jax_vjp" and not spec.extra:
        spec = replace(spec, extra="jax")
    if kind == "ode_field" and not spec.extra:
        spec = replace(spec, extra="ode")
    return replace(ex, kind=kind, spec=spec, variants=_variants(path, f, base, raw_cases))


def _extra(f: _Fields) -> str:
    """The optional extra an exercise needs (its packages are checked before it is graded)."""
    return f.choice("extra", tuple(EXTRAS), "") if "extra" in f.data else ""


def _memory(f: _Fields, base: tuple[InputSpec, ...]) -> tuple[str, tuple[int, ...]] | None:
    """ode: `memory: {input: steps, sizes: [16, 64, 256]}`, the int input whose growth must not
    grow what forward keeps for backward."""
    if f.data.get("memory") is None:
        return None
    m = _Fields(f.path, "memory", f.data["memory"], ("input", "sizes"))
    name = m.text("input")
    ints = [s.name for s in base if s.kind == "int"]
    if name not in ints:
        raise m.error("input", f"expected an int input (those are: {', '.join(ints) or 'none'}), got {name!r}")
    sizes = m.get("sizes", list, [16, 64, 256], "a list of increasing step counts, e.g. [16, 64, 256]")
    if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes) \
            or sorted(set(sizes)) != sizes:
        raise m.error("sizes", f"expected at least two increasing positive integers, e.g. [16, 64, 256], got {sizes!r}")
    return name, tuple(sizes)


def _times(f: _Fields) -> tuple[float, float, int]:
    """ode_field: `times: [0, 1, 11]`, the time grid torch.linspace(start, end, points)."""
    value = f.get("times", list, [0.0, 1.0, 11], "[start, end, points], e.g. [0, 1, 11]")
    ok = (len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and isinstance(value[2], int) and 2 <= value[2] <= 1000 and value[1] > value[0])
    if not ok:
        raise f.error("times", f"expected [start, end, points] with end > start and 2 to 1000 points, got {value!r}")
    return float(value[0]), float(value[1]), int(value[2])


def _variants(path: Path, f: _Fields, base: tuple[InputSpec, ...], raw_cases: list) -> tuple[Variant, ...]:
    """Each variant overrides inputs (shape, domain, value) before the cases' own overrides."""
    raw = f.get("variants", list, [], "a list of input overrides, e.g. [{alpha: {value: 0.1}}]")
    variants = []
    names = [s.name for s in base]
    for i, overrides in enumerate(raw):
        where = f"variants[{i}]"
        if not isinstance(overrides, Mapping):
            raise f.error(where, "expected a mapping from input name to overrides, e.g. {alpha: {value: 0.1}}")
        for key in overrides:
            if key not in names:
                raise ManifestError(path, f"{where}.{key}", f"no such input (inputs are: {', '.join(names)})")
        inputs = tuple(_override(path, f"{where}.{s.name}", s, overrides[s.name]) if s.name in overrides else s
                       for s in base)
        cases = tuple(_case(path, f"cases[{j}]", d, inputs) for j, d in enumerate(raw_cases))
        variants.append(Variant(_describe_override(overrides), cases))
    return tuple(variants)


def _describe_override(overrides: Mapping[str, Any]) -> str:
    parts = []
    for name, changed in overrides.items():
        for key, value in (changed or {}).items():
            parts.append(f"{name}={value}" if key == "value" else f"{name}.{key}={value}")
    return ", ".join(parts) or "as written"


def _data_exercise(path: Path, f: _Fields, kind: str) -> Exercise:
    """A chain or formula exercise: fixed data in gradegrad, only a few numbers in the manifest."""
    _refuse_foreign(f, kind, _DATA_FIELDS[kind])
    ex_id = f.text("id")
    class_name = _class_name(f) if kind != "formula" else ""
    aliases = tuple(f.get("aliases", list, [], "a list of function names"))
    if not all(isinstance(a, str) and a.isidentifier() for a in aliases):
        raise f.error("aliases", f"expected a list of function names, got {list(aliases)!r}")
    spec = KindSpec(extra=_extra(f) if "extra" in _DATA_FIELDS[kind] else "")
    if kind == "chain":
        spec = replace(spec, steps=f.count("steps", 3, 1, 100, "steps"), lr=f.learning_rate())
    elif kind == "jacobian":
        spec = replace(spec, orientation=f.choice("orientation", ORIENTATIONS, "m_by_n"))
    elif kind == "training":
        spec = _training(f, spec)
    else:
        variables = f.count("variables", 5, 2, 9, "variables")
        tol = _Fields(path, "tolerance", f.data.get("tolerance") or {}, ("rtol", "atol"))
        spec = KindSpec(variables=variables, rtol=float(tol.number("rtol", 0.01)), atol=float(tol.number("atol", 0.01)))
    tol64, tol32 = (Tolerance(*DEFAULT_TOLERANCE["float64"]), Tolerance(*DEFAULT_TOLERANCE["float32"]))
    if kind in ("jacobian", "training"):
        tol64, tol32 = _tolerance(path, f.data.get("tolerance"))
    return Exercise(ex_id, class_name, aliases, f.text("teaches"), f.text("formula", ""), "",
                    (Case("default", ()),), tol64, tol32, str(path), kind=kind, spec=spec)


def _training(f: _Fields, spec: KindSpec) -> KindSpec:
    """training: which of the notes' loops, how many epochs, the learning rate."""
    loop = f.choice("loop", LOOPS)
    epochs = f.count("epochs", 10, 1, 100, "epochs")
    extra = spec.extra or ("jax" if loop == "haiku_optax" else "")
    return replace(spec, loop=loop, epochs=epochs, lr=f.learning_rate(), extra=extra)


def exercise_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """Built-in exercises, then any folders named by $GRADEGRAD_EXERCISES, then `extra` (--exercises)."""
    env = [Path(p) for p in os.environ.get(EXERCISES_ENV, "").split(os.pathsep) if p]
    return _unique([BUILTIN_EXERCISES, *env, *extra])


def rubric_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """Where `--rubric NAME` looks: built-in rubrics, $GRADEGRAD_RUBRICS, then `extra` (--rubrics)."""
    env = [Path(p) for p in os.environ.get(RUBRICS_ENV, "").split(os.pathsep) if p]
    return _unique([BUILTIN_RUBRICS, *env, *extra])


def _unique(folders: list[Path]) -> list[Path]:
    """Each folder once, however often it is named (by the environment and by a flag)."""
    seen: dict[Path, Path] = {}
    for folder in folders:
        seen.setdefault(Path(folder).resolve(), Path(folder))
    return list(seen.values())


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


def _visibility(path: Path, where: str, data: Any) -> tuple[tuple[str, str], ...]:
    """`visibility: {default: visible, efficiency: after_due_date}`: who sees each check on Gradescope."""
    f = _Fields(path, where, data, ("default", *CHECK_IDS))
    return tuple((k, f.choice(k, VISIBILITIES)) for k in ("default", *CHECK_IDS) if k in data)


def load_rubric(path: Path, catalog: Mapping[str, Exercise]) -> Rubric:
    return rubric_from_data(path, _read_yaml(path), catalog)


def rubric_from_data(path: Path, data: Any, catalog: Mapping[str, Exercise]) -> Rubric:
    """A rubric from parsed YAML (`gradegrad validate` runs it again on corrected data)."""
    f = _Fields(path, "", data, ("name", "title", "points", "exercises", "total", "variants", "visibility",
                                 "stdout_visibility"))
    defaults = _points(path, "points", f.get("points", dict, what="a mapping from check id to points"))
    entries = f.get("exercises", list, what="a list of exercise ids")
    items = []
    for i, entry in enumerate(entries):
        where = f"exercises[{i}]"
        if isinstance(entry, str):
            entry = {"id": entry}
        e = _Fields(path, where, entry, ("id", "points", "visibility"))
        ex_id = e.text("id")
        if ex_id not in catalog:
            close = difflib.get_close_matches(ex_id, list(catalog), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise e.error("id", f"unknown exercise {ex_id!r}{hint}")
        if catalog[ex_id].kind == "formula":
            raise e.error("id", f"{ex_id} is a formula exercise: it is graded by `gradegrad formula`, not by a rubric")
        points = {**defaults, **_points(path, f"{where}.points", e.get("points", dict, {}))}
        seen = _visibility(path, f"{where}.visibility", entry["visibility"]) if entry.get("visibility") else ()
        items.append(RubricItem(ex_id, tuple((c, float(points[c])) for c in CHECK_IDS if c in points), seen))
    if len({it.exercise for it in items}) != len(items):
        raise f.error("exercises", "an exercise is listed twice")
    name = f.text("name", path.stem)
    ordered = tuple((c, float(defaults[c])) for c in CHECK_IDS if c in defaults)
    total = f.number("total", None)
    visibility = _visibility(path, "visibility", data["visibility"]) if data.get("visibility") else ()
    return Rubric(name, f.text("title", name), tuple(items), str(path), ordered,
                  total=None if total is None else float(total),
                  variants=f.get("variants", bool, False, "true or false"), visibility=visibility,
                  stdout_visibility=f.choice("stdout_visibility", VISIBILITIES, "hidden"))


def rubric_names(dirs: Iterable[Path] | None = None) -> list[str]:
    return sorted({p.stem for d in (rubric_dirs() if dirs is None else dirs) for p in Path(d).glob("*.yaml")})


def resolve_rubric(name_or_path: str | None, catalog: Mapping[str, Exercise],
                   dirs: Iterable[Path] | None = None) -> Rubric:
    """`--rubric NAME|PATH`; without it, the catalog rubric restricted to classes found."""
    if name_or_path is None:
        full = load_rubric(BUILTIN_RUBRICS / "all.yaml", catalog)
        listed = {it.exercise for it in full.items}
        items = full.items + tuple(RubricItem(ex, full.defaults) for ex in catalog
                                   if ex not in listed and catalog[ex].kind != "formula")
        return replace(full, name="found", title="every exercise whose class is found",
                       items=items, only_found=True)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"rubric file not found: {path}")
        return load_rubric(path, catalog)
    dirs = rubric_dirs() if dirs is None else list(dirs)
    for folder in reversed(dirs):  # a course's own rubric wins over a built-in one of the same name
        candidate = Path(folder) / f"{name_or_path}.yaml"
        if candidate.is_file():
            return load_rubric(candidate, catalog)
    names = rubric_names(dirs)
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
