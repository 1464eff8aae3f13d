"""A TA's `gradegrad grade`: the batch, then the roster and the manual adjustments over it.

`grade_course` grades the folder (`batch.grade_folder`, whose cache keeps the grader's own
reports), applies each student's adjustments to their report (so every writer shows them and a
regrade keeps them) and matches submissions to the roster. The result, a `Gradebook`, is what
every file in `--out` and the summary are written from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from gradegrad.adjustments import AdjustmentRow, apply, assign
from gradegrad.batch import BatchResult, OnProgress, Remote, grade_folder
from gradegrad.cache import ResultCache
from gradegrad.catalog import Exercise, Rubric
from gradegrad.options import Options
from gradegrad.points import rubric_maximum
from gradegrad.roster import RosterMatch, Student, match
from gradegrad.intake import Discovery


@dataclass(frozen=True)
class Gradebook:
    batch: BatchResult  # every report with its adjustments applied
    maximum: float  # the rubric's maximum on the device: every student's `max`
    assignment: str  # the gradebook column's name in Canvas and Moodle
    roster: RosterMatch | None = None  # None without --roster
    not_applied: tuple[tuple[str, str], ...] = ()  # adjustments for students without a submission: (student, why)
    adjusted: int = 0  # adjustments applied


def grade_course(found: Discovery, rubric: Rubric, catalog: Mapping[str, Exercise], options: Options, jobs: int,
                 cache: ResultCache, on_progress: OnProgress | None = None, students: tuple[Student, ...] | None = None,
                 rows: tuple[AdjustmentRow, ...] = (), adjustments_file: str = "adjustments.csv",
                 assignment: str | None = None, remote: Remote | None = None) -> Gradebook:
    """Grade every submission of `found` (here, or on `remote`: a Dask cluster), then apply
    adjustments and match the roster."""
    names = [s.name for s in found.sources]
    roster = match(students, names) if students is not None else None
    applied = assign(rows, names, roster, adjustments_file)  # a bad row stops here, before any grading
    batch = grade_folder(found, rubric, catalog, options, jobs, cache, on_progress, remote=remote)
    graded = tuple(replace(g, report=apply(g.report, applied.by_submission.get(g.name, ()))) for g in batch.graded)
    return Gradebook(replace(batch, graded=graded), rubric_maximum(rubric, catalog, options.device),
                     assignment or rubric.title, roster, applied.not_applied,
                     sum(len(v) for v in applied.by_submission.values()))
