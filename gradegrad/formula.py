"""The lab's homework: a random formula per student, differentiated by hand, graded here.

`gradegrad formula --student NAME` prints the student's own expression f(x1, ..., xn) and point,
both derived from the name (the same name always gives the same formula, two names differ). The
student hands in the gradient at that point as YAML or JSON: data, read with `yaml.safe_load` or
`json`, never run. It is compared with torch autograd of the same expression, each component on
its own, for partial credit. No student code runs, so no child process is needed. An answer is
graded for the student the grader names (`--student`, or the answer file's name), never for the
name written inside it.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

import gradegrad
from gradegrad.cases import stable_seed
from gradegrad.catalog import Exercise
from gradegrad.errors import ManifestError, SubmissionError
from gradegrad.hygiene import clean_report, one_line
from gradegrad.report import CheckResult, ExerciseResult, Report
from gradegrad.variants import normalize

UNARY = ("exp", "log", "sin", "cos", "tanh", "sigmoid", "square")
BINARY = ("+", "-", "*")
POINT_VALUES = (-2, -1, 1, 2, 3)
MAX_ATTEMPTS = 2000
LIMIT = 100.0  # |f| and every |df/dxi| stay below this: numbers one can compute by hand
SMALLEST = 0.05  # and every |df/dxi| above this, so that no component is (nearly) free
MAX_ANSWER = 64 << 10  # bytes of an answer file


@dataclass(frozen=True)
class Node:
    """One node of the expression: a variable (its index), a unary function, or a binary operator."""

    op: str  # "var", one of UNARY, or one of BINARY
    args: tuple["Node", ...] = ()
    index: int = 0  # for "var": x1 is 0


@dataclass(frozen=True)
class Formula:
    student: str  # normalised name
    exercise: str
    expr: Node
    point: tuple[int, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(len(self.point)))

    @property
    def text(self) -> str:
        return render(self.expr)


class _Rejected(Exception):
    """This draw is not a good exercise (log of a non-positive number, huge values)."""


# --------------------------------------------------------------------------- drawing


def _draw(rng: random.Random, n: int) -> Node:
    """Every variable once, plus one of them again, combined pairwise into one tree."""
    items = [Node("var", index=i) for i in range(n)] + [Node("var", index=rng.randrange(n))]
    rng.shuffle(items)
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        node = Node(rng.choice(BINARY), (items[i], items[i + 1]))
        if rng.random() < 0.45:
            node = Node(rng.choice(UNARY), (node,))
        items[i:i + 2] = [node]
    return items[0] if items[0].op in UNARY else Node(rng.choice(UNARY), (items[0],))


def make_formula(ex: Exercise, student: str) -> Formula:
    """The student's formula and point: deterministic from the exercise id and the name."""
    name = normalize(student)
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(stable_seed("formula", ex.id, name, attempt))
        formula = Formula(name, ex.id, _draw(rng, ex.spec.variables),
                          tuple(rng.choice(POINT_VALUES) for _ in range(ex.spec.variables)))
        try:
            gradient(formula)
        except _Rejected:
            continue
        return formula
    raise ManifestError(ex.path, "variables", f"no well-conditioned formula of {ex.spec.variables} variables "
                        f"found in {MAX_ATTEMPTS} draws: use fewer variables")


# --------------------------------------------------------------------------- evaluation


def evaluate(node: Node, x: torch.Tensor) -> torch.Tensor:
    """f at x, with torch operations (differentiable); raises _Rejected outside the nice domain."""
    if node.op == "var":
        return x[node.index]
    if node.op in BINARY:
        a, b = (evaluate(n, x) for n in node.args)
        return a + b if node.op == "+" else a - b if node.op == "-" else a * b
    a = evaluate(node.args[0], x)
    if node.op == "log" and float(a.detach()) <= 0.05:
        raise _Rejected()
    if node.op == "exp" and abs(float(a.detach())) > 6:
        raise _Rejected()
    functions = {"exp": torch.exp, "log": torch.log, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh,
                 "sigmoid": torch.sigmoid, "square": torch.square}
    return functions[node.op](a)


def value_and_gradient(formula: Formula) -> tuple[float, list[float]]:
    """f(point) and ∇f(point) by torch autograd, in float64."""
    x = torch.tensor(formula.point, dtype=torch.float64, requires_grad=True)
    value = evaluate(formula.expr, x)
    grad, = torch.autograd.grad(value, x)
    result = float(value.detach()), [float(g) for g in grad]
    if not all(math.isfinite(v) and abs(v) < LIMIT for v in (result[0], *result[1])):
        raise _Rejected()
    if not all(abs(g) >= SMALLEST for g in result[1]):
        raise _Rejected()  # a (nearly) zero component would be right for any answer near 0
    return result


def gradient(formula: Formula) -> list[float]:
    return value_and_gradient(formula)[1]


_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


def render(node: Node, parent: int = 0, right_of_minus: bool = False) -> str:
    """Infix text with only the parentheses needed, e.g. log(exp(x1 * x2)^2 + sin(x3) * x5)."""
    if node.op == "var":
        return f"x{node.index + 1}"
    if node.op in BINARY:
        p = _PRECEDENCE[node.op]
        text = f"{render(node.args[0], p)} {node.op} {render(node.args[1], p, node.op == '-')}"
        return f"({text})" if p < parent or (p == parent and right_of_minus) else text
    inner = node.args[0]
    if node.op == "square":
        return f"({render(inner)})^2" if inner.op in BINARY else f"{render(inner, 3)}^2"
    return f"{node.op}({render(inner)})"


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    student: str | None
    gradient: tuple[float | None, ...]  # None where a component is missing or not a number


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def read_answer(path: Path, n: int) -> Answer:
    """`gradient: [..]` (or `{x1: .., x2: ..}`) and optionally `student: NAME`, in YAML or JSON."""
    try:
        if path.stat().st_size > MAX_ANSWER:
            raise SubmissionError(f"{path}: an answer file is at most {MAX_ANSWER >> 10} KB")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        raise SubmissionError(f"answer file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SubmissionError(f"{path}: not valid {kind} ({one_line(exc, 200)})") from None
    if not isinstance(data, dict) or "gradient" not in data:
        raise SubmissionError(f"{path}: expected a mapping with `gradient: [df/dx1, ..., df/dx{n}]`")
    raw = data["gradient"]
    if isinstance(raw, dict):
        raw = [raw.get(f"x{i + 1}") for i in range(n)]
    if not isinstance(raw, list):
        raise SubmissionError(f"{path}: `gradient` must be a list of {n} numbers or a mapping x1: ..., x{n}: ...")
    values = tuple(_number(v) for v in raw[:n]) + (None,) * max(0, n - len(raw))
    student = data.get("student")
    return Answer(str(student) if student is not None else None, values)


@dataclass(frozen=True)
class Identity:
    """Whose formula an answer is graded against: the grader's word, never the answer's."""

    name: str
    source: str  # "--student" or "the answer file's name"
    claimed: str | None = None  # the `student:` written in the answer, when it names someone else

    def note(self) -> str:
        text = (f"graded for student '{normalize(self.name)}' (from {self.source}); the name written in an "
                "answer file is never used")
        if self.claimed is not None:
            text += f": this one says it is for '{one_line(self.claimed)}'"
        return text


def identity(student: str | None, path: Path | None, answer: Answer | None) -> Identity:
    """The student named by the grader (`--student`, else the answer file's name, ada_lovelace.yaml)."""
    name, source = (student, "--student") if student else (path.stem if path else "", "the answer file's name")
    claimed = answer.student if answer and answer.student and normalize(answer.student) != normalize(name) else None
    return Identity(name, source, claimed)


def _component(i: int, got: float | None, expected: float, ex: Exercise) -> CheckResult:
    name = f"df/dx{i + 1}"
    if got is None:
        return CheckResult(name, "failed", 0.0, 1.0, "missing, or not a number", "missing_gradient")
    tol = ex.spec.atol + ex.spec.rtol * abs(expected)
    if abs(got - expected) <= tol:
        return CheckResult(name, "passed", 1.0, 1.0)
    code = "sign_error" if abs(got + expected) <= tol else "wrong_values"
    return CheckResult(name, "failed", 0.0, 1.0, f"got {got:.6g}, expected {expected:.6g}", code)


def grade_answer(ex: Exercise, formula: Formula, answer: Answer, path: Path, who: Identity | None = None) -> Report:
    """One point per gradient component within the exercise's tolerance, against the formula of the
    student the grader named (`who`)."""
    checks = tuple(_component(i, g, e, ex) for i, (g, e) in enumerate(zip(answer.gradient, gradient(formula))))
    score = sum(c.points for c in checks)
    status = "passed" if score == len(checks) else "failed"
    result = ExerciseResult(ex.id, None, status, score, float(len(checks)), checks, ex.teaches)
    note = (f"formula of student '{formula.student}': f({', '.join(formula.variables)}) = {formula.text} "
            f"at x = {formula.point}")
    notes = (note, who.note()) if who is not None else (note,)
    return clean_report(Report(str(path), "cpu", 0, "formula", score, float(len(checks)), (result,), notes=notes,
                               gradegrad_version=gradegrad.__version__))
