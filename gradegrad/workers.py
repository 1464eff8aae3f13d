"""Grading processes: a batch split over several grader processes, each with its own zygote.

One grader process spends about as much CPU per submission (references, gradcheck, comparing) as
the submission's child does, and that work holds its GIL: threads in one process grade at most
about one submission at a time. With two jobs or more, `grade_folder` grades in worker processes
instead. Workers never run student code themselves, and nothing they send is unpickled: each
report comes back as one JSON line (`Report.json_line`) on a pipe.

- **Forked at the start** (`prefork`, the console script): before the grader has read anything
  but its command line, it forks one worker per process the batch will use. Each worker at once
  forks its own fork server from itself (sharing torch's pages, as the console script's does,
  `forget.py`), then waits. Once the batch is read and the cache consulted, `grade_preforked`
  sends each worker the grading context (`portable.py`: rubric, exercises, options as JSON), then
  one submission at a time (its source as data), the next as soon as it reports one, so that slow
  submissions do not pile up on one worker; then it closes the pipe, and the worker exits.
- **Forked late** (`grade_in_processes`, gradegrad used as a library): a fork of the grader as it
  is when the batch starts; it starts a fresh fork server (`python -I`), so that no evaluator
  ever holds the batch's data.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from gradegrad.report import Report
from gradegrad.intake import SubmissionSource

JOBS_PER_PROCESS = 2  # submissions one late worker keeps busy (each starts a fresh fork server: few of them)
READ_SIZE = 1 << 16
EXIT_GRACE = 10.0  # seconds a worker that sent everything may take to stop its fork server

Grade = Callable[[SubmissionSource], tuple[Report, bool, float]]  # (report, worth caching, seconds)
_RUNNING: set[int] = set()  # pids of this process's grading workers, for `stop_all`
_PREFORKED: list["_Worker"] = []  # workers forked at the start, waiting for their share


@dataclass(frozen=True)
class Done:
    """One submission graded by a worker, or lost with it (`report` None)."""

    source: SubmissionSource
    report: Report | None
    keep: bool = False
    seconds: float = 0.0


def default_jobs() -> int:
    """The CPU cores this process may use (a container's share, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def processes_for(jobs: int) -> int:
    """How many late grading processes `jobs` submissions at once need (1: grade in this process)."""
    return max(1, jobs // JOBS_PER_PROCESS) if jobs >= 2 * JOBS_PER_PROCESS else 1


def preforks_for(jobs: int) -> int:
    """How many workers the console script forks at its start for `jobs` submissions at once: one
    each (a worker and its fork server are forks, sharing torch's pages), none for one job."""
    return jobs if jobs >= 2 else 0


def _share(sources: Sequence[SubmissionSource], processes: int) -> list[list[int]]:
    """Indices of `sources` per worker, dealt round-robin so that each gets a similar mix."""
    shares = [list(range(k, len(sources), processes)) for k in range(processes)]
    return [s for s in shares if s]


def _become_worker() -> None:
    """In a freshly forked worker: forget the parent's fork server and child bookkeeping."""
    from gradegrad.sandbox import reaper, zygote

    if zygote._ZYGOTE is not None:
        zygote._ZYGOTE.sock.close()  # the parent's zygote stays the parent's
    zygote._ZYGOTE, zygote._ZYGOTE_FAILED = None, False
    _RUNNING.clear()
    zygote._START_LOCK = threading.Lock()
    reaper.LOCK, reaper.LIVE, reaper._enabled = threading.RLock(), set(), False
    reaper.enable_subreaper()  # not inherited across fork: evaluators must come back to this worker
    # the parent decides what an interrupt stops; ignored (a job started in the background) stays ignored
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    # fresh stdio objects: the parent's progress thread may have held their locks at the fork
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = sys.stdout = sys.stderr = open(devnull, "r+", closefd=False)


def _work(sources: Sequence[SubmissionSource], share: list[int], grade: Grade, threads: int, out: int) -> None:
    """A late worker's life: grade its share, one JSON line per submission on `out`, then exit."""
    one = _reporter(grade, out)
    code = 0
    try:
        _become_worker()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gradegrad") as pool:
            list(pool.map(lambda index: one(index, sources[index]), share))
    except BaseException:  # noqa: BLE001 - the parent reports what this worker did not send
        code = 1
    finally:
        from gradegrad.sandbox import zygote

        zygote.shutdown()
        os._exit(code)


def _reporter(grade: Grade, out: int) -> Callable[[int, SubmissionSource], None]:
    """A worker's `one(index, source)`: grade it, then write its report's line whole on `out`
    (from any of the worker's threads)."""
    lock = threading.Lock()

    def one(index: int, source: SubmissionSource) -> None:
        line = _line(index, *grade(source))
        with lock:
            _write_all(out, line)

    return one


def _line(index: int, report: Report, keep: bool, seconds: float) -> bytes:
    """One report as a JSON line, the report itself as its `json_line` text (which the grader then
    writes as it is, to the cache and grades.json); a report that cannot be written (a bug) is sent
    without its exercises, as this student's error, so that the worker goes on with the others."""
    try:
        text = report.json_line
    except (TypeError, ValueError) as exc:
        lost = Report(report.submission, report.device, report.seed, report.rubric, 0.0, report.max_score, (),
                      error=f"gradegrad could not send this report from its grading process ({exc})",
                      gradegrad_version=report.gradegrad_version)
        text, keep = lost.json_line, False
    return json.dumps({"index": index, "report": text, "keep": keep, "seconds": seconds}).encode() + b"\n"


# --------------------------------------------------------------------------- forked at the start


def prefork(processes: int) -> None:
    """Fork `processes` grading workers now, each with a fork server forked from itself (the
    console script, right after importing torch: this process has read nothing a submission may not
    see). They wait for `grade_preforked`; without it, they exit when this process does."""
    from gradegrad.sandbox import reaper

    reaper.enable_subreaper()  # what a worker leaves when it dies comes to us, for the sweep
    for _ in range(processes):
        tasks_read, tasks_write = os.pipe()
        reports_read, reports_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            for worker in _PREFORKED:  # a sibling's pipes: holding them would keep its pipe from closing
                os.close(worker.tasks)
                os.close(worker.reports)
            os.close(tasks_write)
            os.close(reports_read)
            _serve(tasks_read, reports_write)
        os.close(tasks_read)
        os.close(reports_write)
        _PREFORKED.append(_Worker(pid, tasks_write, reports_read))
        _RUNNING.add(pid)


def preforked() -> int:
    """How many workers `prefork` started and are waiting for their share."""
    return len(_PREFORKED)


def _serve(tasks: int, out: int) -> None:
    """A preforked worker's life: its own fork server first, then the grader's modules (while the
    parent reads the batch); then the batch's grading context (one JSON line) and one submission a
    line, each graded as it comes (`threads` at a time: the parent sends no more), its report one
    JSON line on `out`; exit when the parent closes the pipe."""
    code = 0
    try:
        _PREFORKED.clear()
        _become_worker()
        from gradegrad.sandbox import zygote

        zygote.prestart(fork=True)  # a fork of this process, which has read nothing yet
        import gc

        from gradegrad.batch import grade_timed
        from gradegrad.portable import from_context, from_plain

        gc.freeze()  # what is imported lives as long as the worker
        gc.enable()  # (forked while the console script ran without it): grading a failing submission leaves cycles
        with open(tasks, "rb") as lines:
            first = lines.readline()
            if first:
                data = json.loads(first)
                rubric, catalog, options = from_context(data["context"])
                one = _reporter(lambda source: grade_timed(source, rubric, catalog, options), out)
                with ThreadPoolExecutor(max_workers=max(1, data["threads"]), thread_name_prefix="gradegrad") as pool:
                    for line in lines:
                        task = json.loads(line)
                        source = from_plain(SubmissionSource, task["source"])
                        if data["threads"] <= 1:
                            one(task["index"], source)
                        else:
                            pool.submit(one, task["index"], source)
    except BaseException:  # noqa: BLE001 - the parent reports what this worker did not send
        code = 1
    finally:
        from gradegrad.sandbox import zygote

        zygote.shutdown()
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Worker:
    """The parent's side of one preforked worker: its pid, the pipe its submissions are written to,
    the pipe its reports come on, and what `grade_preforked` keeps of it."""

    def __init__(self, pid: int, tasks: int, reports: int) -> None:
        self.pid, self.tasks, self.reports = pid, tasks, reports
        self.outgoing = bytearray()  # what is still to be written to its pipe
        self.incoming = bytearray()  # what it sent beyond its last complete line
        self.inflight: set[int] = set()  # indices sent, not yet reported
        self.closing = False  # nothing more to send: its pipe closes once `outgoing` is written
        self.waiting = False  # its pipe is watched for room (`outgoing` did not fit)

    def close_tasks(self) -> None:
        if self.tasks >= 0:
            os.close(self.tasks)
            self.tasks = -1


def grade_preforked(sources: Sequence[SubmissionSource], context: dict, jobs: int) -> Iterator[Done]:
    """Grade `sources` in the workers `prefork` started (as many as `jobs` needs, the jobs shared
    among them as threads), each sent one submission at a time as it finishes one (so that a
    worker meeting slow submissions does not hold back the batch); yield each result as it
    arrives, and a `Done` without report for every submission a worker took and did not send back
    (it died) or that no worker was left to take. A worker not needed gets nothing (its pipe just
    closes) and exits. The pipes are never written when full, so a worker blocked on a long
    report never blocks the parent."""
    from gradegrad.portable import to_plain

    ready, _PREFORKED[:] = list(_PREFORKED), []
    used = ready[:min(len(ready), jobs, len(sources))]
    threads = -(-jobs // max(1, len(used)))
    queue = deque(range(len(sources)))
    for worker in ready:
        os.set_blocking(worker.tasks, False)
        if worker in used:
            worker.outgoing += json.dumps({"context": context, "threads": threads}).encode() + b"\n"
    collected = False
    try:
        with selectors.DefaultSelector() as selector:

            def feed(worker: _Worker) -> None:
                """Give `worker` submissions up to its threads; close its pipe when none is left."""
                while queue and len(worker.inflight) < threads and not worker.closing:
                    index = queue.popleft()
                    worker.inflight.add(index)
                    worker.outgoing += json.dumps({"index": index, "source": to_plain(sources[index])}).encode() + b"\n"
                if not queue:
                    worker.closing = True
                flush(worker)

            def flush(worker: _Worker) -> None:
                """Write what the pipe takes now; the rest when it has room (EVENT_WRITE)."""
                try:
                    while worker.outgoing and worker.tasks >= 0:
                        del worker.outgoing[:os.write(worker.tasks, worker.outgoing[:READ_SIZE])]
                except BlockingIOError:
                    pass
                except OSError:  # the worker is gone: its reports pipe says so
                    worker.outgoing.clear()
                    worker.closing = True
                wait = bool(worker.outgoing) and worker.tasks >= 0
                if worker.waiting and not wait:
                    selector.unregister(worker.tasks)
                elif wait and not worker.waiting:
                    selector.register(worker.tasks, selectors.EVENT_WRITE, worker)
                worker.waiting = wait
                if worker.closing and not worker.outgoing:
                    worker.close_tasks()

            for worker in ready:
                selector.register(worker.reports, selectors.EVENT_READ, worker)
                if worker in used:
                    feed(worker)
                else:
                    worker.closing = True
                    flush(worker)  # closes its pipe: it exits
            live = set(ready)
            while live:
                for key, _ in selector.select():
                    worker = key.data
                    if worker not in live:  # gone earlier in this round
                        continue
                    if key.fd == worker.tasks:  # its pipe has room
                        flush(worker)
                        continue
                    chunk = os.read(worker.reports, READ_SIZE)
                    if not chunk:  # the worker is gone: what it took and did not send is lost with it
                        selector.unregister(worker.reports)
                        live.discard(worker)
                        worker.outgoing.clear()
                        worker.closing = True
                        flush(worker)  # (no longer watched; its pipe closed)
                        for index in sorted(worker.inflight):
                            yield Done(sources[index], None)
                        worker.inflight.clear()
                        if not any(w.tasks >= 0 for w in live):  # no worker left to take the rest
                            while queue:
                                yield Done(sources[queue.popleft()], None)
                        continue
                    worker.incoming += chunk
                    finished = []
                    while (end := worker.incoming.find(b"\n")) >= 0:
                        line = bytes(worker.incoming[:end])
                        del worker.incoming[:end + 1]
                        found = _report_line(line)
                        if found is not None and found[0] in worker.inflight:
                            worker.inflight.discard(found[0])
                            finished.append(found)
                    feed(worker)  # its next submission first: it grades while these are read and recorded
                    for index, data in finished:
                        yield _done(sources[index], data)
        collected = True
    finally:
        for worker in ready:
            worker.close_tasks()
            os.close(worker.reports)
        _stop_workers([worker.pid for worker in ready], EXIT_GRACE if collected else 0.0)


# --------------------------------------------------------------------------- forked late


def grade_in_processes(sources: Sequence[SubmissionSource], grade: Grade, processes: int,
                       threads: int) -> Iterator[Done]:
    """Grade `sources` in `processes` forked workers of `threads` threads each; yield each result
    as it arrives, then a `Done` without report for every submission a dead worker did not send."""
    from gradegrad.sandbox import reaper, zygote

    zygote.shutdown()  # this process grades nothing itself now: its fork server would only wait
    reaper.enable_subreaper()  # what a worker leaves when it dies comes to us, for the sweep below
    workers: dict[int, tuple[int, list[int]]] = {}  # read fd -> (pid, its share)
    grace = 0.0  # how long a worker may take to exit before it is killed
    try:
        for share in _share(sources, processes):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _work(sources, share, grade, threads, write_fd)
            os.close(write_fd)
            workers[read_fd] = (pid, share)
            _RUNNING.add(pid)
        yield from _collect(sources, workers)
        grace = EXIT_GRACE  # all sent: they are stopping their fork servers
    finally:
        _stop_workers([pid for pid, _ in workers.values()], grace)
        for read_fd in workers:
            os.close(read_fd)


def _stop_workers(pids: list[int], grace: float) -> None:
    """Reap the workers, killing those not gone after `grace` seconds, then sweep what a killed or
    interrupted worker left (it is ours: we are its subreaper)."""
    from gradegrad.sandbox import reaper

    deadline = time.monotonic() + grace
    for pid in pids:
        _stop(pid, deadline)
    reaper.sweep("", -1)


def stop_all() -> None:
    """Kill this process's grading workers now and sweep what they leave (an interrupted `grade`
    whose generator above was not closed). Their evaluators die with them (PDEATHSIG, and a PID
    namespace each takes its whole tree)."""
    if not _RUNNING:
        return
    for pid in list(_RUNNING):
        _stop(pid, 0.0)
    from gradegrad.sandbox import reaper

    reaper.sweep("", -1, seconds=2.0)


def _collect(sources: Sequence[SubmissionSource], workers: dict[int, tuple[int, list[int]]]) -> Iterator[Done]:
    pending = {fd: set(share) for fd, (_, share) in workers.items()}
    buffers = {fd: bytearray() for fd in workers}
    with selectors.DefaultSelector() as selector:
        for fd in workers:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            for key, _ in selector.select():
                fd = key.fd
                chunk = os.read(fd, READ_SIZE)
                if not chunk:  # the worker is gone: whatever it did not send is lost with it
                    selector.unregister(fd)
                    for index in sorted(pending.pop(fd)):
                        yield Done(sources[index], None)
                    continue
                buffers[fd] += chunk
                while (end := buffers[fd].find(b"\n")) >= 0:
                    line = bytes(buffers[fd][:end])
                    del buffers[fd][:end + 1]
                    done = _parse(sources, line)
                    if done is not None and done[0] in pending[fd]:
                        pending[fd].discard(done[0])
                        yield done[1]
                if not pending[fd]:
                    selector.unregister(fd)
                    del pending[fd]


def _parse(sources: Sequence[SubmissionSource], line: bytes) -> tuple[int, Done] | None:
    found = _report_line(line)
    if found is None or not 0 <= found[0] < len(sources):
        return None
    return found[0], _done(sources[found[0]], found[1])


def _report_line(line: bytes) -> tuple[int, dict] | None:
    """(index, data) of a worker's line (`_line`); None when it is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    index = data.get("index") if isinstance(data, dict) else None
    return (index, data) if isinstance(index, int) and not isinstance(index, bool) else None


def _done(source: SubmissionSource, data: dict) -> Done:
    """The report of a worker's line; one the grader cannot read is that submission's lost report."""
    try:
        return Done(source, Report.from_json_line(data["report"]), data["keep"] is True, float(data["seconds"]))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return Done(source, None)


def _stop(pid: int, deadline: float) -> None:
    """Reap a worker, killing it if it has not exited by `deadline`."""
    _RUNNING.discard(pid)
    try:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)
    except (ChildProcessError, ProcessLookupError):
        pass
