"""Grade many submissions: a pool of threads, each driving one submission's child processes.

The heavy work runs in the children `grading.grade` starts, so threads are enough here. One
submission's failure, whatever it is, becomes that student's report with status `error`; the
batch always finishes. Reports of unchanged submissions come from the cache (`cache.py`), and
progress is reported, in this thread, through a callback (the CLI draws it).
"""

from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping

import gradegrad
from gradegrad.cache import ResultCache, cache_key, grading_digest
from gradegrad.catalog import Exercise, Rubric, RubricItem
from gradegrad.registry import skipped_on
from gradegrad.errors import GradegradError
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.hygiene import clean_report
from gradegrad.intake import (Discovery, Skipped, SubmissionSource, generated_code, identical, locate,
                              relabel_traceback)
from gradegrad.intake.statements import IMPORT_FAILED, statement_source
from gradegrad.points import applicable
from gradegrad.report import CheckResult, ExerciseResult, LoadProblem, Report
from gradegrad.sandbox import scratch
from gradegrad.portable import grading_context
from gradegrad.workers import (JOBS_PER_PROCESS, Done, grade_in_processes, grade_preforked, preforked,
                               processes_for)

StudentStatus = Literal["passed", "failed", "error", "timeout", "invalid"]
GRADER_ERROR = "gradegrad could not grade this submission"


@dataclass(frozen=True)
class Graded:
    """One student's line of the gradebook."""

    name: str
    kind: str  # file | notebook | folder
    report: Report
    status: StudentStatus
    cached: bool = False
    seconds: float = 0.0  # spent grading it in this run (0 when cached)


@dataclass(frozen=True)
class BatchResult:
    folder: str
    rubric: str
    exercises: tuple[str, ...]  # the rubric's exercise ids, in order: the gradebook's columns
    graded: tuple[Graded, ...]  # one per student, by name
    skipped: tuple[Skipped, ...] = ()  # duplicates, stray files, links: not students
    identical: tuple[tuple[str, ...], ...] = ()  # students who handed in the very same code
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every student passed every check (and there was at least one)."""
        return bool(self.graded) and all(g.status == "passed" for g in self.graded)

    def count(self, status: StudentStatus) -> int:
        return sum(g.status == status for g in self.graded)

    @property
    def reused(self) -> int:
        return sum(g.cached for g in self.graded)


@dataclass(frozen=True)
class ProgressEvent:
    done: int
    total: int
    name: str
    status: StudentStatus
    score: float
    max_score: float
    cached: bool


OnProgress = Callable[[ProgressEvent], None]
Record = Callable[[SubmissionSource, Report, bool, float], None]  # (source, report, worth caching, seconds)
# grades the sources elsewhere (cluster.py: a Dask cluster), recording each as it comes back
Remote = Callable[[list[SubmissionSource], Rubric, Mapping[str, Exercise], Options, Record], None]


def student_status(report: Report, invalid: bool = False) -> StudentStatus:
    """The gradebook's status: invalid (not gradable), error (not loaded), timeout, passed, failed."""
    if invalid:
        return "invalid"
    if any(e.status == "timeout" for e in report.exercises):
        return "timeout"
    if report.error is not None:
        return "error"
    return "passed" if report.passed else "failed"


# --------------------------------------------------------------------------- one submission


def _not_run(ex: Exercise, item: RubricItem, message: str, device: str) -> ExerciseResult:
    checks = tuple(CheckResult(cid, "skipped", 0.0, 0.0, skipped_on(cid, device)) if skipped_on(cid, device)
                   else CheckResult(cid, "error", 0.0, points, f"not run: {message}")
                   for cid, points in applicable(ex, item))
    return ExerciseResult(ex.id, None, "error", 0.0, sum(c.max_points for c in checks), checks, ex.teaches)


def unloaded_report(origin: str, rubric: Rubric, catalog: Mapping[str, Exercise], options: Options,
                    error: str, trace: str | None = None, notes: tuple[str, ...] = (), why: str = "") -> Report:
    """The report of a submission that was never loaded: every exercise 0, its maximum kept."""
    results = () if rubric.only_found else tuple(_not_run(catalog[it.exercise], it, why or error, options.device)
                                                 for it in rubric.items)
    return clean_report(Report(origin, options.device, options.seed, rubric.name, 0.0,
                               sum(r.max_score for r in results), results, notes=notes, error=error,
                               error_traceback=trace, gradegrad_version=gradegrad.__version__))


def _relabel_problem(problem: LoadProblem, source: SubmissionSource, fix) -> LoadProblem:
    """Name the student's file (and notebook cell) where the code that raised starts."""
    trace = fix(problem.traceback)
    problem = replace(problem, message=fix(problem.message) or "")  # a SyntaxError's "(generated.py, line 169)"
    if not source.generated:
        load = source.load or source.origin
        return replace(problem, file=str(load.relative_to(source.origin.parent)), traceback=trace)
    where = locate(source, problem.line) if problem.line else None
    if where is None:
        return replace(problem, file=source.display, traceback=trace)
    # the trace has the line; a statement of a .py run statement by statement starts where it raised
    statements = where.cell is None and sum(seg.origin == where.file for seg in source.segments) > 1
    return replace(problem, file=where.file, line=where.line if statements else None, cell=where.cell, traceback=trace)


def _relabel(report: Report, source: SubmissionSource, loaded: Path, label: str) -> Report:
    """Name the student's files in the report as given, not the (resolved, generated) file loaded."""
    path = str(loaded.resolve())
    fix = lambda text: relabel_traceback(text, path, source, label)  # noqa: E731
    exercises = tuple(replace(e, checks=tuple(replace(c, traceback=fix(c.traceback), message=fix(c.message) or "")
                                              for c in e.checks)) for e in report.exercises)
    return replace(report, submission=str(source.origin), exercises=exercises, error=fix(report.error),
                   error_traceback=fix(report.error_traceback), notes=report.notes + source.notes,
                   load_problems=tuple(_relabel_problem(p, source, fix) for p in report.load_problems))


def _grade_generated(source: SubmissionSource, rubric: Rubric, catalog: Mapping[str, Exercise],
                     options: Options, code: str | None = None) -> Report:
    code = generated_code(source) if code is None else code
    with scratch.folder("source") as folder:
        loaded = Path(folder) / f"{source.name if source.name.isidentifier() else 'submission'}.py"
        loaded.write_text(code, encoding="utf-8")
        del code
        return _relabel(grade(loaded, rubric, catalog, options, student=source.name), source, loaded,
                        source.display)


def grade_source(source: SubmissionSource, rubric: Rubric, catalog: Mapping[str, Exercise],
                 options: Options, code: str | None = None) -> Report:
    """Grade one submission; a problem with its files is a report, not an exception. `code` is its
    generated module when that was built elsewhere (a Dask worker has no access to the files)."""
    if source.problem is not None:
        return unloaded_report(str(source.origin), rubric, catalog, options, f"not graded: {source.problem}",
                               notes=source.notes, why=source.problem)
    if source.generated:
        return clean_report(_grade_generated(source, rubric, catalog, options, code))
    report = clean_report(_relabel(grade(source.load, rubric, catalog, options, student=source.name), source,
                                   source.load, str(source.load)))
    split = statement_source(source) if report.error and IMPORT_FAILED.match(report.error) else None
    if split is None:
        return report
    return clean_report(_grade_generated(*split[:1], rubric, catalog, options, code=split[1]))


def _grade_safely(source: SubmissionSource, rubric: Rubric, catalog: Mapping[str, Exercise],
                  options: Options, code: str | None = None) -> tuple[Report, bool]:
    """(report, worth caching): gradegrad's own failure is this student's error, never the batch's."""
    try:
        return grade_source(source, rubric, catalog, options, code), True
    except (GradegradError, OSError) as exc:
        return unloaded_report(str(source.origin), rubric, catalog, options, f"{GRADER_ERROR}: {exc}"), False
    except Exception as exc:  # a bug in gradegrad: kept with its traceback, for the TA to report
        return unloaded_report(str(source.origin), rubric, catalog, options,
                               f"{GRADER_ERROR} (internal error {type(exc).__name__}: {exc})",
                               traceback.format_exc()), False


# --------------------------------------------------------------------------- the pool


def _graded(source: SubmissionSource, report: Report, cached: bool, seconds: float) -> Graded:
    return Graded(source.name, source.kind, report, student_status(report, source.problem is not None),
                  cached, seconds)


def _event(done: int, total: int, g: Graded) -> ProgressEvent:
    return ProgressEvent(done, total, g.name, g.status, g.report.score, g.report.max_score, g.cached)


def grade_timed(source: SubmissionSource, rubric: Rubric, catalog: Mapping[str, Exercise],
                options: Options, code: str | None = None) -> tuple[Report, bool, float]:
    """(report, worth caching, seconds): what every pool runs per submission (a cluster's workers too)."""
    start = time.monotonic()
    report, keep = _grade_safely(source, rubric, catalog, options, code)
    return report, keep, time.monotonic() - start


def _grade_in_threads(todo: list[SubmissionSource], grade_one, jobs: int, record) -> None:
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="gradegrad") as pool:
        running: dict[Future, SubmissionSource] = {pool.submit(grade_one, s): s for s in todo}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    record(running.pop(future), *future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: start nothing new
            raise


def _record_all(results: Iterator[Done], record, rubric: Rubric, catalog: Mapping[str, Exercise],
                options: Options) -> None:
    """Record what grading processes send back; a submission lost with its process is the student's error."""
    for done in results:
        if done.report is None:
            record(done.source, unloaded_report(str(done.source.origin), rubric, catalog, options,
                                                f"{GRADER_ERROR}: its grading process ended first"), False, 0.0)
        else:
            record(done.source, done.report, done.keep, done.seconds)


def grade_folder(found: Discovery, rubric: Rubric, catalog: Mapping[str, Exercise], options: Options,
                 jobs: int, cache: ResultCache | None = None,
                 on_progress: OnProgress | None = None, processes: int | None = None,
                 remote: Remote | None = None) -> BatchResult:
    """Grade every source of `found`, `jobs` at a time, reusing cached reports.

    With a few jobs, threads of this process drive the children; with more, forked grading
    processes share the batch (`workers.processes_for`; `processes` overrides how many). A
    `remote` (a Dask cluster, `cluster.py`) grades what the cache does not have instead.
    """
    start = time.monotonic()
    cache = cache or ResultCache(None)
    notify = on_progress or (lambda event: None)
    digest = grading_digest(rubric, catalog, options)
    total, results = len(found.sources), {}
    todo = []
    for source in found.sources:
        hit = cache.get(cache_key(source.digest, digest, source.name))  # a report names its student's files
        if hit is None:
            todo.append(source)
            continue
        hit = clean_report(replace(hit, submission=str(source.origin)))  # as a fresh report is cleaned
        results[source.name] = _graded(source, hit, True, 0.0)
        notify(_event(len(results), total, results[source.name]))

    def record(source: SubmissionSource, report: Report, keep: bool, seconds: float) -> None:
        if keep:
            try:
                cache.put(cache_key(source.digest, digest, source.name), report)
            except Exception:  # noqa: BLE001 - a report the cache cannot hold is graded again next time
                pass
        results[source.name] = _graded(source, report, False, seconds)
        notify(_event(len(results), total, results[source.name]))

    grade_one = lambda s: grade_timed(s, rubric, catalog, options)  # noqa: E731
    processes = min(processes_for(jobs) if processes is None else processes, len(todo) // JOBS_PER_PROCESS)
    if remote is not None:
        remote(todo, rubric, catalog, options, record)
    elif preforked():  # the console script's workers, forked before anything was read
        _record_all(grade_preforked(todo, grading_context(rubric, catalog, options), jobs), record,
                    rubric, catalog, options)
    elif processes > 1 and hasattr(os, "fork"):
        _record_all(grade_in_processes(todo, grade_one, processes, threads=-(-jobs // processes)), record,
                    rubric, catalog, options)
    else:
        _grade_in_threads(todo, grade_one, jobs, record)
    graded = tuple(results[s.name] for s in found.sources)
    return BatchResult(str(found.folder), rubric.name, tuple(it.exercise for it in rubric.items), graded,
                       found.skipped, tuple(identical(found.sources)), time.monotonic() - start)
