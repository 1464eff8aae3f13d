"""Grade one submission against a rubric: load it in a child, run the checks, build a Report."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Mapping

import gradegrad
from gradegrad.catalog import Exercise, Rubric, RubricItem
from gradegrad.registry import checks_for, reads_of, skipped_on, warm_for
from gradegrad.discovery import Match, normalize
from gradegrad.errors import GradegradError, SubmissionError
from gradegrad.evaluation import Runner
from gradegrad.hygiene import clean_error, clean_report
from gradegrad.kinds import extras, match_submission, noun
from gradegrad.report import CheckResult, ExerciseResult, LoadProblem, Report
from gradegrad.options import Options
from gradegrad.points import applicable
from gradegrad.sandbox.remote import Loaded, Submission
from gradegrad.sandbox.zygote import warm_later
from gradegrad.variants import personalise, student_name
from gradegrad.verdict import CheckContext, Verdict


def _result(cid: str, verdict: Verdict, max_points: float, seconds: float = 0.0) -> CheckResult:
    if verdict.status == "skipped":
        return CheckResult(cid, "skipped", 0.0, 0.0, verdict.message, seconds=seconds)
    points = max_points if verdict.status == "passed" else 0.0
    return CheckResult(cid, verdict.status, points, max_points, verdict.message, verdict.diagnosis,
                       verdict.worst, verdict.traceback, seconds)


def _status(verdicts: dict[str, Verdict], item: RubricItem) -> str:
    """The exercise's status; a failed check worth 0 points is a flag and does not fail it."""
    counted = [v for cid, v in verdicts.items() if cid == "found" or item.points_for(cid) > 0 or v.status == "error"]
    if any(v.timed_out for v in counted):
        return "timeout"
    for status in ("error", "failed"):
        if any(v.status == status for v in counted):
            return status
    return "passed"


def _exercise_result(ex: Exercise, item: RubricItem, class_name: str | None, status: str,
                     verdicts: dict[str, Verdict], device: str, hint: str = "",
                     seconds: Mapping[str, float] | None = None) -> ExerciseResult:
    """The exercise's results; a check that never runs on `device` counts 0 of 0 whatever happened
    (so that its maximum is `points.maximum`, the one `list` and `show` print)."""
    took = seconds or {}
    checks = tuple(_result(cid, _unless_skipped(cid, device, v), item.points_for(cid), took.get(cid, 0.0))
                   for cid, v in verdicts.items())
    return ExerciseResult(ex.id, class_name, status, sum(c.points for c in checks),
                          sum(c.max_points for c in checks), checks, ex.teaches, hint)


def _rubric_checks(ex: Exercise, item: RubricItem) -> list[str]:
    return [cid for cid, _ in applicable(ex, item)]


def grade_exercise(sub: Submission, ex: Exercise, item: RubricItem, match: Match, options: Options,
                   budget: float | None = None) -> ExerciseResult:
    """Run the rubric's checks for one exercise, in order; `found` gates the others.

    `budget` is what is left of the submission's time limit; the exercise gets the smaller of it
    and the per-exercise limit.
    """
    ids = _rubric_checks(ex, item)
    absent = extras.missing(ex)
    if absent:  # the grading machine lacks the exercise's optional packages: not graded, 0 of 0
        why = extras.unavailable_message(ex, absent)
        return _exercise_result(ex, item, match.info and match.info.name, "unavailable",
                                {cid: Verdict("skipped", why) for cid in ids}, options.device, why)
    if match.info is None:
        missing = Verdict("failed", f"no {noun(ex)} {ex.class_name} in the submission", "missing")
        verdicts = {cid: missing for cid in ids}
        return _exercise_result(ex, item, None, "missing", verdicts, options.device, match.hint)
    limit = options.limits.timeout if budget is None else min(options.limits.timeout, budget)
    if limit <= 0:
        over = Verdict("error", f"not run: the submission's time limit "
                       f"({options.limits.submission_timeout:g} s) was reached", timed_out=True)
        return _exercise_result(ex, item, match.info.name, "timeout", {cid: over for cid in ids}, options.device)
    sub.begin_exercise()
    runner = Runner(sub, ex, match.info.name, options.seed, limit, reads_of(ex, ids, options.device))
    ctx = CheckContext(ex, match.info, runner, options.device)
    checks = checks_for(ex.kind)
    start = time.perf_counter()
    found = checks["found"](ctx)
    seconds = {"found": time.perf_counter() - start}
    verdicts: dict[str, Verdict] = {}
    for cid in ids:
        if cid == "found" or found.status != "passed":
            verdicts[cid] = found if cid == "found" else Verdict("failed", "not run: " + found.message)
        else:
            start = time.perf_counter()
            verdicts[cid] = _run_check(checks[cid], ctx, cid)
            seconds[cid] = time.perf_counter() - start
    verdicts = _unfinished(verdicts)
    return _exercise_result(ex, item, match.info.name, _status(verdicts, item), verdicts, options.device,
                            match.hint, seconds=seconds)


def _unfinished(verdicts: dict[str, Verdict]) -> dict[str, Verdict]:
    """An untouched stub of `gradegrad template` (every check raised NotImplementedError) scores 0.
    A check that ran out of time (a loaded machine) says nothing either way: the others decide."""
    ran = [v for cid, v in verdicts.items() if cid != "found" and v.status != "skipped" and not v.timed_out]
    if not ran or verdicts.get("found", Verdict("failed")).status != "passed" \
            or not all(v.status == "error" and "NotImplementedError" in v.message for v in ran):
        return verdicts
    stub = Verdict("failed", "not implemented yet: it still raises NotImplementedError", "not_implemented")
    return {**verdicts, "found": stub}


def _run_check(check, ctx: CheckContext, cid: str) -> Verdict:
    """Run one check; a bug in gradegrad costs this check, never the rest of the batch."""
    try:
        return check(ctx)
    except GradegradError:
        raise  # a configuration error (e.g. a broken reference): the user must fix it
    except Exception as exc:  # noqa: BLE001 - reported with the grader's own traceback
        trace = "".join(traceback.format_exception(exc))
        return Verdict("error", f"internal error in gradegrad's {cid} check ({type(exc).__name__}: {exc}); "
                       "please report it with this submission", traceback=trace)


def _unless_skipped(cid: str, device: str, verdict: Verdict) -> Verdict:
    """`verdict`, or skipped for a check that never runs on this device (so maxima agree)."""
    why = skipped_on(cid, device)
    return Verdict("skipped", why) if why else verdict


def _load_failure(ex: Exercise, item: RubricItem, loaded: Loaded, device: str) -> ExerciseResult:
    timed_out = loaded.error.get("kind") == "timeout"
    verdict = Verdict("error", "not run: the submission could not be imported", timed_out=timed_out)
    verdicts = {cid: verdict for cid in _rubric_checks(ex, item)}
    return _exercise_result(ex, item, None, "timeout" if timed_out else "error", verdicts, device)


def _load_message(error: dict) -> str:
    kind = error.get("kind")
    if kind in ("timeout", "crash", "protocol"):
        return str(error.get("message", "the submission could not be loaded"))
    if kind == "exit":
        return "the submission called sys.exit() while being imported"
    if kind == "memory":
        return "memory limit: the submission ran out of memory while being imported"
    text = f"importing the submission raised {error.get('type', 'an exception')}: {error.get('message', '')}".rstrip(": ")
    return text + _extra_hint(error)


def _extra_hint(error: dict) -> str:
    """For `import jax` / `import torchdiffeq` failing: which gradegrad extra brings the package."""
    message = str(error.get("message", ""))
    if error.get("type") not in ("ModuleNotFoundError", "ImportError") or "No module named" not in message:
        return ""
    extra = extras.extra_for_module(message.split("No module named", 1)[1].strip(" '\""))
    return f" (the exercises that use it need {extras.install_hint(extra)})" if extra else ""


def _load_problem(problem: dict, path: Path) -> LoadProblem:
    """Top-level code that raised (or ran too long) while the rest of the submission loaded."""
    problem = clean_error(problem)
    line = next((problem[k] for k in ("at", "line") if type(problem.get(k)) is int), None)
    kind = problem.get("kind") if problem.get("kind") in ("exit", "memory", "timeout") else "exception"
    message = {"exit": "called sys.exit()", "memory": "ran out of memory",
               "timeout": str(problem.get("message", ""))}.get(kind)
    if message is None:
        message = f"{problem.get('type', 'an exception')}: {problem.get('message', '')}".rstrip(": ")
    return LoadProblem(str(path), line, None, kind, message, str(problem.get("traceback") or "") or None)


def check_path(path: Path) -> Path:
    if not path.exists():
        raise SubmissionError(f"submission not found: {path}")
    if not path.is_file():
        raise SubmissionError(f"not a file: {path} (give the .py file of the submission)")
    return path


def grade(path: Path, rubric: Rubric, catalog: Mapping[str, Exercise], options: Options,
          student: str | None = None) -> Report:
    """Grade `path` against `rubric`; student code runs only in child processes.

    `student` picks the per-student variants of a rubric with `variants: true` (default: the
    submission's file name).
    """
    check_path(path)
    sub = Submission(path, options.device, options.limits)
    results: list[ExerciseResult] = []
    notes: list[str] = []
    error = trace = None
    not_graded: list[str] = []
    problems: tuple[LoadProblem, ...] = ()
    try:
        loaded = sub.load()
        exercises = [(catalog[it.exercise], it) for it in rubric.items]
        if rubric.variants:
            exercises, options, note = personalise(exercises, student or student_name(path), options)
            notes.append(note)
        problems = tuple(_load_problem(p, path) for p in loaded.problems)
        if loaded.error:
            error, trace = _load_message(loaded.error), loaded.error.get("traceback") or None
            if not rubric.only_found:
                results = [_load_failure(ex, it, loaded, options.device) for ex, it in exercises]
        else:
            matches = match_submission([ex for ex, _ in exercises], loaded)
            warm_later({m for ex, _ in exercises if matches[ex.id].info is not None for m in warm_for(ex)})
            deadline = time.monotonic() + options.limits.submission_timeout
            for ex, it in exercises:
                m = matches[ex.id]
                if m.info is None and rubric.only_found and not m.hint:
                    not_graded.append(ex.id)
                    continue
                results.append(grade_exercise(sub, ex, it, m, options, deadline - time.monotonic()))
            if rubric.only_found:
                notes.append(_found_note(results, catalog))
    finally:
        output = sub.close()
    return clean_report(Report(str(path), options.device, options.seed, rubric.name,
                               sum(r.score for r in results), sum(r.max_score for r in results), tuple(results),
                               output, tuple(notes), error, trace, sub.protections, gradegrad.__version__,
                               load_problems=problems, not_graded=tuple(not_graded),
                               missing_protections=sub.missing_protections))


def _found_note(results: list[ExerciseResult], catalog: Mapping[str, Exercise]) -> str:
    catalog = {k: ex for k, ex in catalog.items() if ex.kind != "formula"}  # graded by `gradegrad formula`
    found = [r for r in results if r.status != "missing"]
    if not found:
        names = ", ".join(ex.class_name for ex in list(catalog.values())[:6])
        return f"no exercise class found (expected names such as {names}); see `gradegrad check --help`"
    graded = {r.id for r in results}
    taken = {normalize(r.class_name): r for r in found if r.class_name}  # LeakyReLU, a Function, is no module

    def absent_one(ex: Exercise) -> str:
        if ex.kind == "function":
            return ex.class_name
        other = taken.get(normalize(ex.class_name))
        mine = f"; your {other.class_name} is graded as {other.id}" if other else ""
        return f"{ex.class_name} ({ex.kind} {ex.id}{mine})"

    absent = [absent_one(ex) for ex in catalog.values() if ex.id not in graded]
    more = f"; not found: {', '.join(absent)}" if absent else ""
    return (f"graded the {len(found)} exercise(s) whose class was found, out of {len(catalog)} in the "
            f"catalog{more}. Pass --rubric to grade a fixed set.")
