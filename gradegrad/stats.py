"""What a TA acts on after a batch: the score histogram, pass rates, common mistakes, failures.

Pure functions from a `BatchResult` to a frozen `Summary` that `render/summary.py` draws.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from gradegrad.batch import BatchResult, Graded
from gradegrad.catalog import CHECK_IDS
from gradegrad.diagnosis import known_words

BINS = 10  # histogram bars, by percentage of the maximum


@dataclass(frozen=True)
class Rate:
    passed: int
    total: int  # students for whom the check (or exercise) applied

    @property
    def percent(self) -> float:
        return 100.0 * self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class ExerciseRates:
    exercise: str
    overall: Rate  # students who passed the whole exercise
    checks: tuple[tuple[str, Rate], ...]  # per check id, in CHECK_IDS order


@dataclass(frozen=True)
class Mistake:
    exercise: str
    check: str
    diagnosis: str
    students: tuple[str, ...]
    says: str = ""  # a known_mistake's own words (each common mistake of a manifest counts apart)


@dataclass(frozen=True)
class Trouble:
    """A student whose submission errored, timed out or could not be graded."""

    name: str
    status: str
    reason: str


@dataclass(frozen=True)
class Summary:
    students: int
    histogram: tuple[tuple[str, int], ...]  # (label such as "90-100%", students)
    mean: float  # percent of the maximum
    median: float
    passed_all: int
    rates: tuple[ExerciseRates, ...]
    checks: tuple[tuple[str, Rate], ...]  # each check over every exercise, in CHECK_IDS order
    mistakes: tuple[Mistake, ...]  # most common first
    troubles: tuple[Trouble, ...]


def percent(g: Graded) -> float:
    r = g.report
    return 100.0 * r.score / r.max_score if r.max_score else 0.0


def histogram(values: list[float], bins: int = BINS) -> tuple[tuple[str, int], ...]:
    width = 100 // bins
    counts = [0] * bins
    for v in values:
        counts[min(int(v // width), bins - 1)] += 1
    return tuple((f"{i * width}-{(i + 1) * width}%", counts[i]) for i in range(bins))


def _graded_normally(g: Graded) -> bool:
    return g.status not in ("invalid", "error")


def exercise_rates(result: BatchResult) -> tuple[ExerciseRates, ...]:
    """Among the students whose code loaded: who passed each exercise, and each check among those
    who wrote the class (`found` among all), so that a missing class does not read as a wrong backward."""
    loaded = [g for g in result.graded if _graded_normally(g)]
    rates = []
    for ex_id in result.exercises:
        results = [e for g in loaded for e in g.report.exercises if e.id == ex_id]
        checks: dict[str, list[bool]] = {}
        for e in results:
            for c in e.checks:
                if c.status != "skipped" and (e.status != "missing" or c.id == "found"):
                    checks.setdefault(c.id, []).append(c.status == "passed")
        ordered = tuple((cid, Rate(sum(checks[cid]), len(checks[cid]))) for cid in CHECK_IDS if cid in checks)
        rates.append(ExerciseRates(ex_id, Rate(sum(e.status == "passed" for e in results), len(results)), ordered))
    return tuple(rates)


def check_rates(rates: tuple[ExerciseRates, ...]) -> tuple[tuple[str, Rate], ...]:
    """Each check's pass rate over every exercise it applied to."""
    totals: dict[str, list[int]] = {}
    for r in rates:
        for cid, rate in r.checks:
            total = totals.setdefault(cid, [0, 0])
            total[0] += rate.passed
            total[1] += rate.total
    return tuple((cid, Rate(*totals[cid])) for cid in CHECK_IDS if cid in totals)


def common_mistakes(result: BatchResult, limit: int = 10) -> tuple[Mistake, ...]:
    """The diagnoses of the first failing check of each exercise, by how many students made them."""
    who: dict[tuple[str, str, str, str], list[str]] = {}
    for g in result.graded:
        for e in g.report.exercises:
            problem = e.first_problem
            if problem is not None and problem.diagnosis:
                says = known_words(problem.message) if problem.diagnosis in ("known_mistake", "scale_error") else ""
                who.setdefault((e.id, problem.id, problem.diagnosis, says), []).append(g.name)
    ranked = sorted(who.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return tuple(Mistake(ex, check, code, tuple(names), says) for (ex, check, code, says), names in ranked[:limit])


def _reason(g: Graded) -> str:
    if g.report.error:
        return g.report.error.split("\n")[0]
    timed = [e for e in g.report.exercises if e.status == "timeout"]
    if timed:
        problem = timed[0].first_problem
        return f"{', '.join(e.id for e in timed)}: {problem.message if problem else 'timed out'}"
    return ""


def troubles(result: BatchResult) -> tuple[Trouble, ...]:
    return tuple(Trouble(g.name, g.status, _reason(g)) for g in result.graded
                 if g.status in ("error", "timeout", "invalid"))


def summarize(result: BatchResult) -> Summary:
    values = [percent(g) for g in result.graded]
    rates = exercise_rates(result)
    return Summary(len(values), histogram(values), statistics.fmean(values) if values else 0.0,
                   statistics.median(values) if values else 0.0, result.count("passed"), rates,
                   check_rates(rates), common_mistakes(result), troubles(result))
