"""`gradegrad grade --cluster`: a batch graded on a Dask cluster instead of this machine.

`dask_grader(address)` starts a `LocalCluster` (`local:N`: N worker processes here,
`cluster_local.py`) or connects to a Dask scheduler, checks that its workers run this very
gradegrad and torch, installs the plugins of `cluster_worker.py` (a fork server prepared in each
worker, a warden in each nanny), and yields a `batch.Remote`: `grade_folder` hands it what the
cache does not have.

A task grades a few submissions (`DaskGrader`: up to eight, one at a time at the end of the
batch). Each travels as data (`portable.py`: the file's bytes or the generated module's text,
never a path a worker cannot see), with the batch's rubric, exercises and options (some 65 kB of
JSON text, parsed once per batch on each worker); the worker grades them with gradegrad's own
contained evaluators, as `grade` does here, and sends each report back as a plain dict in JSON
text. Reports are recorded as their futures complete (the progress bar, the cache). A worker
lost mid-grade costs nothing: the scheduler runs its task elsewhere. A task whose every worker
died (`KilledWorker`, after `distributed.scheduler.allowed-failures` retries) is graded again
one submission a task; a single submission whose every worker died is that student's `error`
row, not cached, and the batch goes on. Dask is an optional extra (`gradegrad[dask]`), imported
only here and in `cluster_local.py`.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from gradegrad.batch import GRADER_ERROR, Record, Remote, grade_timed, unloaded_report
from gradegrad.catalog import Exercise, Rubric
from gradegrad.cluster_local import dask_module, exception_line, local_client, local_workers, take_early
from gradegrad.errors import GradegradError, UsageError
from gradegrad.options import Options
from gradegrad.portable import grading_context, pack_submission
from gradegrad.report import Report
from gradegrad.intake import SubmissionSource

CONNECT_TIMEOUT = 30.0  # seconds to reach the scheduler
WAIT_FOR_WORKERS = 60.0  # seconds for a first worker to join it
THREADS_REFRESH = 2.0  # seconds between two looks at how many worker threads the cluster has
QUEUED_PER_THREAD = 3  # tasks submitted per worker thread in a large batch (more than 2: Dask queues them)
CHUNK = 8  # submissions a task grades at most
CHUNKS_AHEAD = 3  # chunks of that size left per worker thread for a task to grade that many


@contextmanager
def dask_grader(address: str | None, jobs: int | None = None) -> Iterator[Remote | None]:
    """The `Remote` that grades on the cluster at `address` (None: grade here; yields None)."""
    if address is None:
        yield None
        return
    if jobs is not None:
        raise UsageError("--jobs and --cluster: on a cluster its workers decide how many submissions are "
                         "graded at once (dask worker --nworkers/--nthreads); leave out --jobs")
    distributed = dask_module()
    early = take_early(address)
    with early.taken() if early is not None else _ready_client(distributed, address) as client:
        yield DaskGrader(client)


@contextmanager
def _ready_client(distributed: Any, address: str) -> Iterator[Any]:
    """A client of the cluster at `address` whose workers are prepared to grade, as this machine
    would. A local cluster's are from their start (forks of this process, prepared by their
    preloads, their nannies given a warden: `cluster_local.py`), so its batch starts at once;
    another cluster's once this client has installed the plugins and checked every worker's grader."""
    count = local_workers(address)
    if count is not None:
        with local_client(distributed, count) as client:
            yield client
        return
    from gradegrad import cluster_worker

    with _remote_client(distributed, address) as client:
        client.register_plugin(cluster_worker.Warden())
        client.register_plugin(cluster_worker.Prepare())  # first: each worker starts its fork server
        _same_grader(client, address)
        yield client


@contextmanager
def _remote_client(distributed: Any, address: str) -> Iterator[Any]:
    """A client of the Dask scheduler at `address`, once it has a worker."""
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a bad address
        raise UsageError(f"--cluster {address}: cannot reach the Dask scheduler ({exception_line(exc)})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise UsageError(f"--cluster {address}: the Dask scheduler has no worker after {WAIT_FOR_WORKERS:g} s "
                             f"(start some: dask worker {address})") from None
        yield client
    finally:
        client.close()


def _same_grader(client: Any, address: str) -> None:
    """Wait until the workers are prepared; refuse those whose gradegrad or torch differ from this
    machine's (their verdicts could). One that joins later is checked by each of its tasks; when
    none answered (all of them restarting), the next that joins is asked, for WAIT_FOR_WORKERS."""
    from gradegrad.cluster_worker import describe, identity, ready

    mine = identity()
    deadline = time.monotonic() + WAIT_FOR_WORKERS
    replies = client.run(ready, on_error="ignore")  # a worker lost meanwhile: skipped
    while not replies and time.monotonic() < deadline:
        try:
            client.wait_for_workers(1, timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        replies = client.run(ready, on_error="ignore")
        if not replies:
            time.sleep(0.1)  # (the scheduler still lists a worker that is gone)
    for worker, theirs in sorted(replies.items()):
        if theirs != mine:
            raise UsageError(f"--cluster {address}: the Dask worker {worker} runs {describe(theirs)}, this machine "
                             f"{describe(mine)}: install the same on every worker (docs/cluster.md)")


class DaskGrader:
    """A `batch.Remote`: grade sources as tasks of `client`, recording each as it completes.

    A task grades a chunk of the batch: up to CHUNK submissions while every worker thread has
    CHUNKS_AHEAD chunks of that size still to submit, fewer towards the end, one a task for the
    last few (and for a batch too small to share out so). Each task costs the scheduler, the
    client and the worker a few milliseconds of CPU and a round trip between two submissions;
    chunks pay that once for several. A chunk whose task fails as a whole (its workers all died,
    `KilledWorker`) is graded again one submission a task, so that only the submission that kills
    workers gets the error row.

    Only a window of the batch is submitted at a time. A large batch keeps QUEUED_PER_THREAD
    tasks per worker thread submitted: Dask then holds them in its scheduler's queue (they are
    "root-ish") and hands a worker its next one as it finishes, one at a time with
    worker-saturation 1 (`--cluster local:N`). A small one keeps one per thread, which Dask would
    otherwise assign to workers straight away, several to a worker. Either way no task waits on
    a worker behind another, so a worker that dies takes only the chunk it was grading with it
    (and counts against `allowed-failures` for that one only). Tasks depend on nothing (the
    grading context travels in each, as one JSON string): Dask would send a task only to workers
    holding its dependencies, all of them to the same worker.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.threads, self.counted = 1, 0.0

    def __call__(self, todo: list[SubmissionSource], rubric: Rubric, catalog: Mapping[str, Exercise],
                 options: Options, record: Record) -> None:
        from distributed import as_completed

        from gradegrad import cluster_worker

        batch = _Batch(rubric, catalog, options, record)
        queue = [s for s in reversed(todo) if not batch.here(s)]  # popped from the end: in order
        alone: list[SubmissionSource] = []  # of chunks that failed as a whole: one a task from now on
        context = {"context": json.dumps(grading_context(rubric, catalog, options)), "token": uuid.uuid4().hex,
                   "identity": cluster_worker.identity()}
        running: dict[Any, list[SubmissionSource]] = {}
        completed = as_completed()
        try:
            self._fill(queue, alone, context, batch, running, completed)
            for future in completed:
                sources = running.pop(future)
                outcomes = batch.outcomes(sources, future)
                if outcomes is None:
                    alone.extend(reversed(sources))
                else:
                    for source, outcome in zip(sources, outcomes):
                        batch.record(source, *outcome)
                self._fill(queue, alone, context, batch, running, completed)
        finally:
            self.client.cancel(list(running))  # Ctrl-C: nothing more runs for this batch

    def _refresh(self) -> None:
        """How many worker threads the cluster has (looked at every THREADS_REFRESH seconds)."""
        if time.monotonic() - self.counted > THREADS_REFRESH:
            self.threads = max(1, sum(self.client.nthreads().values()))
            self.counted = time.monotonic()

    def _window(self, left: int) -> int:
        """How many tasks to keep submitted when `left` submissions are not done (see the class)."""
        return QUEUED_PER_THREAD * self.threads if left > 2 * self.threads else self.threads

    def _chunk(self, waiting: int) -> int:
        """How many submissions the next task grades when `waiting` are not submitted yet (see the
        class): the last few go one a task, so that no worker is left with several at the end."""
        return max(1, min(CHUNK, waiting // (CHUNKS_AHEAD * self.threads)))

    def _fill(self, queue: list[SubmissionSource], alone: list[SubmissionSource], context: dict,
              batch: "_Batch", running: dict[Any, list[SubmissionSource]], completed: Any) -> None:
        """Submit chunks of `alone` (one submission each) and then `queue` until the window is
        full (one whose file vanished gets its row at once)."""
        from gradegrad import cluster_worker

        while queue or alone:
            self._refresh()
            left = len(queue) + len(alone) + sum(map(len, running.values()))
            if len(running) >= self._window(left):
                return
            chunk = [alone.pop()] if alone else [queue.pop() for _ in range(min(len(queue), self._chunk(len(queue))))]
            packed = [(source, payload) for source in chunk if (payload := batch.pack(source)) is not None]
            if packed:
                future = self.client.submit(cluster_worker.grade_chunk, [payload for _, payload in packed], context,
                                            key=f"gradegrad-grade-{uuid.uuid4().hex}", pure=False)
                running[future] = [source for source, _ in packed]
                completed.add(future)


class _Batch:
    """One batch's rubric, exercises and options on this side, and how its outcomes are recorded."""

    def __init__(self, rubric: Rubric, catalog: Mapping[str, Exercise], options: Options, record: Record) -> None:
        self.rubric, self.catalog, self.options, self.record = rubric, catalog, options, record

    def here(self, source: SubmissionSource) -> bool:
        """A source that cannot be graded (an empty file...) needs no worker: its row is made here."""
        if source.problem is None:
            return False
        self.record(source, *grade_timed(source, self.rubric, self.catalog, self.options))
        return True

    def pack(self, source: SubmissionSource) -> dict | None:
        """The source as data; None when its files are gone or changed (its row is recorded, as
        grading it here would)."""
        try:
            return pack_submission(source)
        except (GradegradError, OSError) as exc:
            self.record(source, self.lost(source, str(exc)), False, 0.0)
            return None

    def lost(self, source: SubmissionSource, why: str) -> Report:
        return unloaded_report(str(source.origin), self.rubric, self.catalog, self.options, f"{GRADER_ERROR}: {why}")

    def outcomes(self, sources: list[SubmissionSource], future: Any) -> list[tuple[Report, bool, float]] | None:
        """(report, worth caching, seconds) of each source of a completed task, in order; a lost
        one is an error row. None: a task of several failed as a whole (grade them one by one)."""
        from distributed import KilledWorker

        try:
            results = future.result()
        except KilledWorker as exc:
            if len(sources) > 1:
                return None
            worker = getattr(exc.last_worker, "address", exc.last_worker)
            why = (f"every Dask worker grading it died before it finished ({exc.allowed_failures + 1} tries, the "
                   f"last on {worker}); see the workers' logs")
            return [(self.lost(sources[0], why), False, 0.0)]
        except Exception as exc:  # noqa: BLE001 - cancelled, a result Dask could not bring back
            if len(sources) > 1:
                return None
            return [(self.lost(sources[0], f"on the Dask cluster ({exception_line(exc)})"), False, 0.0)]
        if not isinstance(results, list) or len(results) != len(sources):
            return [(self.lost(source, "the Dask worker sent no report"), False, 0.0) for source in sources]
        return [self.outcome(source, data) for source, data in zip(sources, results)]

    def outcome(self, source: SubmissionSource, data: Any) -> tuple[Report, bool, float]:
        """(report, worth caching, seconds) of one result of a task."""
        try:
            if data.get("report") is None:
                return self.lost(source, str(data.get("problem", "the Dask worker sent no report"))), False, 0.0
            report = Report.from_json_line(data["report"])
            return report, data.get("keep") is True, float(data.get("seconds", 0.0))
        except Exception as exc:  # noqa: BLE001 - a report we cannot read
            return self.lost(source, f"on the Dask cluster ({exception_line(exc)})"), False, 0.0
