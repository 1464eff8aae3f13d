"""Progress of a batch: a Rich bar on a terminal, one plain line per submission otherwise."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from gradegrad.batch import OnProgress, ProgressEvent


class RateColumn(ProgressColumn):
    """Submissions per minute."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed * 60:.1f}/min" if speed else "-/min", "dim")


def _line(event: ProgressEvent) -> str:
    cached = " (cached)" if event.cached else ""
    return (f"[{event.done}/{event.total}] {event.name}: {event.status} "
            f"{event.score:g}/{event.max_score:g}{cached}")


@contextmanager
def progress_reporter(console: Console, total: int) -> Iterator[OnProgress]:
    """Yield the callback `grade_folder` calls after each submission."""
    if not console.is_terminal:
        yield lambda event: console.print(_line(event), markup=False, highlight=False)
        return
    columns = (TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def advance(event: ProgressEvent) -> None:
            progress.update(task, completed=event.done, description=event.name)

        yield advance
