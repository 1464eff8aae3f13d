"""`gradegrad grade --cluster`: the batch on a Dask cluster gives the gradebook `grade` gives here.

One LocalCluster (two single-threaded workers, `allowed-failures` 1) serves the module through
its address, as a cluster started with `dask scheduler` / `dask worker` would. A worker plugin
(`Saboteur`) kills the worker process grading a chosen student: once, in the middle of a hanging
submission (it is retried elsewhere, and the evaluators the dead worker left are killed), or
every time (the student gets an error row). Skipped without Dask (`pip install gradegrad[dask]`).
"""

import csv
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed")

import dask  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from conftest import FIXTURES  # noqa: E402
from gradegrad.cli import app  # noqa: E402
from gradegrad.cluster_local import local_workers  # noqa: E402
from gradegrad.errors import UsageError  # noqa: E402
from gradegrad.sandbox.environment import TOKEN_VAR  # noqa: E402

BATCH = FIXTURES / "batch"
ARGS = ["--rubric", "lab1", "-e", "sigmoid", "-e", "matvec", "--timeout", "6"]
CRASHES = '''"""Sigmoid's backward aborts the process running it; MatVec is correct."""

import os

import torch
from torch.autograd import Function


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output):
        os.abort()


class MatVec(Function):
    @staticmethod
    def forward(ctx, A, x):
        ctx.save_for_backward(A, x)
        return torch.mv(A, x)

    @staticmethod
    def backward(ctx, grad_output):
        A, x = ctx.saved_tensors
        return torch.outer(grad_output, x), A.t() @ grad_output
'''
runner = CliRunner()


def grade(*args):
    return runner.invoke(app, ["grade", *map(str, args)], env={"NO_COLOR": "1", "COLUMNS": "120"})


class Saboteur(WorkerPlugin):
    """Kill the worker grading a student named by a file in `plan`: `kill-once-NAME` (mid-grade,
    once the evaluator has spun for a while; what it left is written to `killed-NAME`) or
    `kill-always-NAME` (as its grading starts, every time). Each grading started is logged in
    `plan/graded`."""

    name = "saboteur"

    def __init__(self, plan: str) -> None:
        self.plan = plan

    def setup(self, worker) -> None:
        from gradegrad import cluster_worker

        original = getattr(cluster_worker, "unsabotaged", cluster_worker.grade_packed)
        cluster_worker.unsabotaged = original
        plan = Path(self.plan)

        def grade_packed(payload, data):
            name = payload["name"]
            with open(plan / "graded", "a") as log:  # who was graded (or started), in order
                log.write(name + "\n")
            if (plan / f"kill-always-{name}").exists():
                os.kill(os.getpid(), signal.SIGKILL)
            if (plan / f"kill-once-{name}").exists():
                (plan / f"kill-once-{name}").unlink()
                threading.Thread(target=original, args=(payload, data), daemon=True).start()
                _die_while_it_spins(plan / f"killed-{name}")
            return original(payload, data)

        cluster_worker.grade_packed = grade_packed


def _die_while_it_spins(record: Path) -> None:
    from gradegrad.sandbox import reaper, scratch, zygote

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        server = zygote._ZYGOTE
        evaluators = set(reaper.LIVE) - ({server.popen.pid} if server else set())
        if server and evaluators and max(_cpu_seconds(pid) for pid in evaluators) > 0.5:
            break
        time.sleep(0.02)
    import tempfile

    folders = sorted(name for name in os.listdir(tempfile.gettempdir()) if f"-{scratch.owner()}-" in name)
    record.write_text(json.dumps({"token": server.token, "evaluators": sorted(evaluators), "folders": folders}))
    os.kill(os.getpid(), signal.SIGKILL)


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _carrying(token: str) -> list[int]:
    """Processes whose environment holds this sandbox token (a zygote and its evaluators)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if f"{TOKEN_VAR}={token}".encode() in fh.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    """The batch fixture and a crashing submission, graded here (--jobs 2): (result, folder, out).

    Before the cluster starts: this process, a child subreaper while it grades, sweeps every child
    that is not one of its evaluators (`sandbox/reaper.py`), and the cluster's workers are its
    children too."""
    root = tmp_path_factory.mktemp("mixed")
    folder = shutil.copytree(BATCH, root / "submissions")
    (folder / "zed.py").write_text(CRASHES)
    return grade(folder, *ARGS, "--jobs", "2", "--out", root / "here"), folder, root / "here"


@pytest.fixture(scope="module")
def cluster(here, tmp_path_factory):
    """(scheduler address, plan folder) of a LocalCluster of two single-threaded workers, started
    as `--cluster local:2` starts its own (`cluster_local.local_client`: forks of a fork server that
    imported the grader once, so that a worker the saboteur kills is back in a fraction of a
    second), but used through its address, as a cluster started by hand would be."""
    import distributed

    from gradegrad.cluster_local import local_client

    plan = tmp_path_factory.mktemp("plan")
    with ExitStack() as stack:  # on leaving: the client, the cluster, its fork server
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            client = stack.enter_context(local_client(distributed, 2))
        client.register_plugin(Saboteur(str(plan)))
        yield client.scheduler.address, plan


@contextmanager
def chunks_of(size: int):
    """Tasks of `size` submissions each (a batch this small would go one a task)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gradegrad.cluster.DaskGrader._chunk", lambda self, waiting: size)
        yield


def graded(plan: Path) -> list[str]:
    log = plan / "graded"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return names


@pytest.fixture(scope="module")
def mixed(here, cluster):
    """The same folder graded on the cluster, four submissions a task, whose worker grading the
    hanging submission (ivan) is killed mid-grade: (here's result, the cluster's result, the two
    outputs, the plan folder, who was graded in order)."""
    address, plan = cluster
    result, folder, out = here
    (plan / "kill-once-ivan").touch()
    graded(plan)
    with chunks_of(4):
        there = grade(folder, *ARGS, "--cluster", address, "--out", out.parent / "there")
    return result, there, out.parent, plan, graded(plan)


def rows(out: Path) -> dict:
    text = (out / "grades.csv").read_text(encoding="utf-8-sig")
    return {r["name"]: r for r in csv.DictReader(io.StringIO(text))}


def without_timing(data):
    """JSON with each check's `seconds` (wall-clock time, the one field two runs differ in) dropped."""
    if isinstance(data, dict):
        return {k: without_timing(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [without_timing(v) for v in data]
    return data


def files(out: Path) -> dict[str, object]:
    found = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = str(path.relative_to(out))
        found[name] = without_timing(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()
    return found


def test_the_cluster_writes_the_gradebook_grade_writes_here(mixed):
    here, there, root, _, _ = mixed
    assert (here.exit_code, there.exit_code) == (1, 1), there.output
    assert "Traceback" not in there.output
    local, remote = files(root / "here"), files(root / "there")
    assert sorted(remote) == sorted(local)
    assert len([n for n in local if n.startswith(".cache/")]) == 10  # every student's report, cached
    for name in local:
        assert remote[name] == local[name], name


def test_the_mixed_folder_covers_every_outcome(mixed):
    _, _, root, _, _ = mixed
    r = rows(root / "there")
    assert {n: r[n]["status"] for n in r} == {
        "alice": "passed", "bob": "failed", "carol": "failed", "dave": "failed", "erin": "error", "frank": "failed",
        "grace": "invalid", "heidi": "invalid", "ivan": "timeout", "zed": "failed"}
    assert int(r["zed"]["sigmoid"]) < 11 and r["zed"]["matvec"] == "12"
    report = next(g for g in json.loads((root / "there" / "grades.json").read_text())
                  if g["submission"].endswith("zed.py"))
    sigmoid = next(e for e in report["exercises"] if e["id"] == "sigmoid")
    assert any("the process running the submission was killed by" in c["message"] for c in sigmoid["checks"])


def test_what_a_killed_worker_was_grading_is_graded_again(mixed):
    *_, order = mixed
    # tasks of four (grace and heidi are rows the TA's machine writes): ivan's worker died in the
    # second task, after erin and frank, and the whole task was graded again on a worker
    assert Counter(order) == {"alice": 1, "bob": 1, "carol": 1, "dave": 1, "erin": 2, "frank": 2, "ivan": 2, "zed": 1}


def test_a_large_batch_goes_in_chunks_of_eight_and_ends_one_submission_a_task():
    from gradegrad.cluster import DaskGrader

    grader = DaskGrader(client=None)
    grader.threads = 2  # chunks of eight while each thread has three of them left to submit
    assert [grader._chunk(waiting) for waiting in (100, 48, 47, 24, 17, 12, 11, 1)] == [8, 8, 7, 4, 2, 2, 1, 1]


def test_a_worker_killed_mid_grade_leaves_no_evaluator_behind(mixed):
    _, _, _, plan, _ = mixed
    killed = json.loads((plan / "killed-ivan").read_text())  # the kill did happen, while ivan's backward spun
    assert killed["evaluators"]
    deadline = time.monotonic() + 15
    while _carrying(killed["token"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _carrying(killed["token"]) == []


def test_the_folders_a_killed_worker_left_are_removed_by_the_worker_started_in_its_place(mixed):
    """The worker killed mid-grade removed none of its folders (its fork server's, ivan's
    evaluator's, ivan's submission's); the worker its nanny started instead removes them."""
    import tempfile

    _, _, _, plan, _ = mixed
    folders = json.loads((plan / "killed-ivan").read_text())["folders"]
    assert {name.split("-")[1] for name in folders} == {"zygote", "eval", "submission"}
    left = lambda: [name for name in folders if (Path(tempfile.gettempdir()) / name).exists()]  # noqa: E731
    deadline = time.monotonic() + 15
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == []


def test_a_submission_whose_workers_all_die_is_its_error_row_and_is_not_cached(cluster, tmp_path):
    """bob kills every worker grading him, in a task with alice and carol: once the task has
    failed on two workers, each of the three is graded alone, and only bob gets an error row."""
    address, plan = cluster
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("alice", "bob", "carol"):
        shutil.copy(BATCH / "alice.py", folder / f"{name}.py")
    (plan / "kill-always-bob").touch()
    graded(plan)
    try:
        with chunks_of(3):
            result = grade(folder, *ARGS, "--cluster", address, "--out", tmp_path / "out")
    finally:
        (plan / "kill-always-bob").unlink()
    assert result.exit_code == 1, result.output
    r = rows(tmp_path / "out")
    for name in ("alice", "carol"):
        assert (r[name]["status"], r[name]["total"]) == ("passed", "23"), r[name]["detail"]
    assert (r["bob"]["status"], r["bob"]["total"], r["bob"]["max"]) == ("error", "0", "23")
    assert "every Dask worker grading it died before it finished (2 tries" in r["bob"]["detail"]
    assert graded(plan).count("bob") == 4  # twice in the task of three, twice alone
    assert len(list((tmp_path / "out" / ".cache").glob("*.json"))) == 2  # not bob's: he is graded next time


def test_the_cluster_can_come_from_the_project_config(cluster, tmp_path, monkeypatch):
    address, _ = cluster
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(BATCH / "alice.py", folder / "alice.py")
    (tmp_path / "gradegrad.toml").write_text(f'cluster = "{address}"\nsubmissions = "submissions"\n')
    monkeypatch.chdir(tmp_path)
    result = grade(*ARGS)
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "grades")["alice"]["status"] == "passed"


def test_local_n_starts_a_cluster_here(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(BATCH / "alice.py", folder / "alice.py")
    shutil.copy(BATCH / "grace.py", folder / "grace.py")  # empty: its row is made here, no worker needed
    result = grade(folder, *ARGS, "--cluster", "local:1", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert {n: r["status"] for n, r in rows(tmp_path / "out").items()} == {"alice": "passed", "grace": "invalid"}


def test_the_console_script_s_local_cluster_leaves_no_folder_in_the_temporary_directory(tmp_path):
    """Its workers' fork servers' folders, their evaluators' and submissions' folders, and
    multiprocessing's folder for the command's fork server socket are all removed by the time the
    command exits (the workers end without exit handlers, the command with `os._exit`). The
    TMPDIR is long, as a batch system's job folder can be: the fork server's socket, whose path
    would be too long there, goes to the system's /tmp instead."""
    import subprocess

    folder = tmp_path / "submissions"
    scratch = tmp_path / "job-12345-tmp".ljust(max(20, 90 - len(str(tmp_path))), "x")
    assert len(str(scratch)) + len("/pymp-12345678/listener-12345678") > 108
    folder.mkdir()
    scratch.mkdir()
    shutil.copy(BATCH / "alice.py", folder / "alice.py")
    shutil.copy(BATCH / "bob.py", folder / "bob.py")
    result = subprocess.run([sys.executable, "-m", "gradegrad", "grade", str(folder), *ARGS, "--cluster", "local:2",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TMPDIR": str(scratch), "NO_COLOR": "1"})
    assert result.returncode in (0, 1) and (tmp_path / "out" / "grades.csv").exists(), result.stdout + result.stderr
    assert set(rows(tmp_path / "out")) == {"alice", "bob"}
    assert [p.name for p in scratch.iterdir() if p.name.startswith(("gradegrad-", "pymp-"))] == []


def test_a_local_cluster_is_prepared_by_its_preloads_without_a_plugin():
    """`--cluster local:N` installs no plugin and waits for no reply before the batch: each nanny
    has its warden, and each worker its fork server, from their start (preloads)."""
    import distributed

    from gradegrad import cluster_worker
    from gradegrad.cluster import _ready_client

    def plugins(dask_scheduler):  # (Dask's own too: shuffle)
        return [name for name in (*dask_scheduler.worker_plugins, *dask_scheduler.nanny_plugins) if "gradegrad" in name]

    with _ready_client(distributed, "local:2") as client:
        nannies = list(client.cluster.workers.values())
        assert len(nannies) == 2 and all(nanny in cluster_worker._WARDEN.open for nanny in nannies)
        assert client.run_on_scheduler(plugins) == []
        assert list(client.run(cluster_worker.ready).values()) == [cluster_worker.identity()] * 2
    assert not any(nanny in cluster_worker._WARDEN.open for nanny in nannies)  # released as they closed


FORKED_SERVER = """
import multiprocessing, os, sys, threading, time
if sys.argv[1] == "thread":
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
from gradegrad import cluster_forkserver
from multiprocessing import forkserver
cluster_forkserver.start(fork=True)
pid = forkserver._forkserver._forkserver_pid
with open(f"/proc/{pid}/stat") as fh:
    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
with open(f"/proc/{pid}/cmdline", "rb") as fh, open("/proc/self/cmdline", "rb") as mine:
    same = fh.read() == mine.read()  # a fork of this process, not an interpreter of its own
report = sys.argv[2]  # what a worker holds: the grader and Dask, which the fork server imported itself
worker = multiprocessing.get_context("forkserver").Process(target=exec, args=(
    f"import sys; open({report!r}, 'w').write(str(all(m in sys.modules for m in "
    "('gradegrad.cluster_preload', 'gradegrad.batch', 'distributed'))))",))
worker.start()
worker.join(60)
served = forkserver._forkserver._forkserver_pid == pid  # not another one started since (it died)
cluster_forkserver.stop([])
print(parent == os.getpid(), same, worker.exitcode, served, os.path.exists(f"/proc/{pid}"), "torch" in sys.modules,
      "gradegrad.batch" in sys.modules or "distributed" in sys.modules, open(report).read())
"""


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "thread"])
def test_the_console_script_forks_the_local_cluster_s_fork_server_from_itself(alone, tmp_path):
    """`start(fork=True)` (the console script, for `--cluster local:N`): the command imports torch,
    then its workers' fork server is a fork of it (one import of torch for the command, the fork
    server and every worker), which imports the grader and Dask itself (the command has not yet:
    it forks as soon as torch is there), whose processes run with them, and which is gone after
    `stop`. A process with a thread of its own gets multiprocessing's fresh interpreter instead."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", FORKED_SERVER, "alone" if alone else "thread",
                          str(tmp_path / "worker")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    child, forked, exitcode, served, left, torch, grader_here, grader_there = out.stdout.split()
    assert (child, forked) == ("True", str(alone)), out.stdout
    assert (exitcode, served, left) == ("0", "True", "False"), out.stdout
    assert torch == str(alone)
    assert (grader_here, grader_there) == ("False", "True"), out.stdout


EARLY = """
import os, sys
from gradegrad import cluster, cluster_local
cluster_local.start_early(sys.argv[1])
early = cluster_local._EARLY[0] if cluster_local._EARLY else None
with cluster.dask_grader(sys.argv[2]) as remote:
    taken = early is not None and remote.client is early.client
    workers = list(remote.client.run(os.getpid).values())
    print(taken, len(workers), cluster_local._EARLY == [], end=" ")
    if early is not None and not taken:  # closed before the one asked for started
        print(early.thread.is_alive(), early.client.status, end=" ")
print(any(os.path.exists(f"/proc/{pid}") for pid in workers))
"""


@pytest.mark.parametrize("early, asked, expected", [
    ("local:1", "local:1", "True 1 True False"),
    ("local:2", "local:1", "False 1 True False closed False"),
    ("local:two", "local:1", "False 1 True False"),
], ids=["taken", "another", "malformed"])
def test_the_console_script_s_early_cluster_is_the_one_the_command_grades_on(early, asked, expected):
    """`start_early` (the console script, for the `--cluster local:N` of its command line) starts
    the cluster in a thread while the command reads its options and submissions; `dask_grader`
    grades on it, or closes it first when the command asks for another cluster (its settings file),
    and no worker is left afterwards. A malformed address starts nothing: the command says why."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", EARLY, early, asked], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected.split()


# --------------------------------------------------------------------------- usage errors


def one_line_usage_error(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output


def test_the_console_script_leaves_no_local_cluster_behind_on_a_usage_error(tmp_path):
    """`--cluster local:N` starts the workers' fork server as the command starts (it imports torch
    while the batch is read); a command that stops before grading (--jobs with --cluster) stops it
    too, at once, rather than leaving it to finish its imports and notice."""
    import subprocess

    from test_exploits import holding

    marker = tmp_path / "gg-local-cluster-cwd"
    marker.mkdir()
    with open(tmp_path / "output", "w+") as output:  # a file: run() returns when gradegrad exits
        result = subprocess.run([sys.executable, "-m", "gradegrad", "grade", str(BATCH), "--jobs", "2", "--cluster",
                                 "local:1", "--out", str(tmp_path / "out")], cwd=marker, stdout=output,
                                stderr=subprocess.STDOUT, timeout=300)
        left = holding(str(marker).encode())
        output.seek(0)
        assert result.returncode == 2 and "leave out --jobs" in output.read()
    assert not left



def test_semaphores_a_stopped_command_left_are_unlinked_without_a_warning_on_the_terminal():
    """A command stopped (Ctrl-C) while its LocalCluster's nannies start exits with their
    semaphores still registered: multiprocessing's resource tracker unlinks them, and used to warn
    about them on the terminal after `gradegrad: interrupted`. The same here, deterministically: a
    process that registered semaphores and exits at once (as `_fast_exit` does)."""
    import subprocess

    code = ("import multiprocessing, os, sys\n"
            "from gradegrad import cluster_forkserver\n"
            "if sys.argv[1] == 'quiet': cluster_forkserver._quiet_resource_tracker()\n"
            "queue = multiprocessing.get_context('forkserver').Queue()\n"
            "print(queue._rlock._semlock.name, flush=True)\n"
            "os._exit(0)\n")
    for mode in ("loud", "quiet"):
        result = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, timeout=60,
                                cwd=Path(__file__).resolve().parent.parent)
        name = result.stdout.split()[0]
        assert ("leaked semaphore" in result.stderr) == (mode == "loud"), (mode, result.stderr)
        assert not Path("/dev/shm", "sem." + name.lstrip("/")).exists()  # unlinked all the same


@pytest.mark.parametrize("address", ["local:0", "local:two", "local:-1"])
def test_a_bad_local_cluster_is_a_usage_error(tmp_path, address):
    one_line_usage_error(grade(BATCH, *ARGS, "--cluster", address, "--out", tmp_path), "expected local:N")


def test_a_local_cluster_that_cannot_start_is_a_usage_error(tmp_path, monkeypatch):
    def no_socket(fork=False):
        raise OSError("AF_UNIX path too long")

    monkeypatch.setattr("gradegrad.cluster_forkserver.start", no_socket)
    one_line_usage_error(grade(BATCH, *ARGS, "--cluster", "local:1", "--out", tmp_path),
                         "cannot start the workers' fork server (OSError: AF_UNIX path too long)")


def test_local_alone_is_one_worker_per_core():
    from gradegrad.workers import default_jobs

    assert local_workers("local") == default_jobs() and local_workers("local:3") == 3
    assert local_workers("tcp://10.0.0.5:8786") is None


def test_jobs_and_cluster_together_is_a_usage_error(tmp_path):
    one_line_usage_error(grade(BATCH, *ARGS, "--jobs", "2", "--cluster", "local:1", "--out", tmp_path),
                         "--jobs and --cluster")


def test_without_dask_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    one_line_usage_error(grade(BATCH, *ARGS, "--cluster", "local:1", "--out", tmp_path), "gradegrad[dask]")


def test_an_unreachable_scheduler_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr("gradegrad.cluster.CONNECT_TIMEOUT", 1.0)
    one_line_usage_error(grade(BATCH, *ARGS, "--cluster", "tcp://127.0.0.1:9", "--out", tmp_path),
                         "cannot reach the Dask scheduler")


def test_the_command_starts_no_fork_server_of_its_own_for_a_cluster():
    from gradegrad.entry import _on_cluster

    assert _on_cluster(["grade", "subs", "--cluster", "local:2"])
    assert _on_cluster(["grade", "subs", "--cluster=tcp://10.0.0.5:8786"])
    assert not _on_cluster(["grade", "subs", "--jobs", "2"])
    assert not _on_cluster(["check", "sub.py"])


def test_workers_running_another_gradegrad_are_refused(cluster, tmp_path, monkeypatch):
    address, _ = cluster
    monkeypatch.setattr("gradegrad.cluster_worker.identity",
                        lambda: {"gradegrad": "0.0.9", "source": "0123456789abcdef", "torch": "2.13.0+cpu"})
    one_line_usage_error(grade(BATCH, *ARGS, "--cluster", address, "--out", tmp_path),
                         "runs gradegrad 0.1.0", "this machine gradegrad 0.0.9", "install the same on every worker")


def test_a_worker_joining_with_another_gradegrad_grades_nothing(catalog):
    from gradegrad.catalog import resolve_rubric
    from gradegrad.cluster_worker import grade_packed
    from gradegrad.options import Options
    from gradegrad.portable import grading_context, pack_submission
    from gradegrad.intake import source_for

    context = {"context": json.dumps(grading_context(resolve_rubric("lab1", catalog), catalog, Options())), "token": "t",
               "identity": {"gradegrad": "0.0.9", "source": "0123456789abcdef", "torch": "2.13.0+cpu"}}
    result = grade_packed(pack_submission(source_for(BATCH / "alice.py")), context)
    assert result["report"] is None and "the TA's machine gradegrad 0.0.9" in result["problem"]


def test_a_submission_the_worker_fails_on_costs_its_task_mates_nothing(catalog):
    from gradegrad import cluster_worker
    from gradegrad.catalog import resolve_rubric
    from gradegrad.intake import source_for
    from gradegrad.options import Options
    from gradegrad.portable import grading_context, pack_submission

    context = {"context": json.dumps(grading_context(resolve_rubric("lab1", catalog), catalog, Options())), "token": "t2",
               "identity": cluster_worker.identity()}
    broken, alice = cluster_worker.grade_chunk([{"name": "mallory"}, pack_submission(source_for(BATCH / "alice.py"))],
                                               context)
    assert broken["report"] is None and broken["problem"].startswith("on the Dask worker (TypeError: ")
    assert json.loads(alice["report"])["score"] == 23


def test_a_worker_that_cannot_isolate_strictly_grades_nothing(catalog, monkeypatch):
    from dataclasses import replace

    from gradegrad import cluster_worker
    from gradegrad.catalog import resolve_rubric
    from gradegrad.intake import source_for
    from gradegrad.options import Options
    from gradegrad.portable import grading_context, pack_submission

    monkeypatch.setattr(cluster_worker, "_no_namespaces", lambda: "no user namespaces here")
    options = Options()
    options = replace(options, limits=replace(options.limits, isolation="strict"))
    context = {"context": json.dumps(grading_context(resolve_rubric("lab1", catalog), catalog, options)),
               "token": "strict",
               "identity": cluster_worker.identity()}
    result = cluster_worker.grade_packed(pack_submission(source_for(BATCH / "alice.py")), context)
    assert result["report"] is None
    assert "--isolation strict" in result["problem"] and "no user namespaces here" in result["problem"]


class _Restarting:
    """A client of a cluster whose workers are all restarting when it first asks them: no reply,
    then the one that came back, running another gradegrad."""

    def __init__(self):
        self.asked, self.waited = 0, 0

    def run(self, function, on_error):
        self.asked += 1
        return {} if self.asked == 1 else {"tcp://127.0.0.1:4000": {"gradegrad": "0.0.9", "source": "x", "torch": "y"}}

    def wait_for_workers(self, n, timeout):
        self.waited += 1


def test_the_workers_are_checked_even_when_none_answers_at_first():
    from gradegrad.cluster import _same_grader

    client = _Restarting()
    with pytest.raises(UsageError, match="the Dask worker tcp://127.0.0.1:4000 runs gradegrad 0.0.9"):
        _same_grader(client, "tcp://127.0.0.1:8786")
    assert (client.asked, client.waited) == (2, 1)


def test_the_console_script_without_dask_names_the_extra(tmp_path):
    """As `test_without_dask_the_error_names_the_extra`, through the console script, which starts
    a local cluster as it starts (`cluster_local.start_early`, which leaves it to the command):
    one line saying what to install, exit code 2."""
    import subprocess

    missing = tmp_path / "site" / "distributed"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(missing.parent), *sys.path]), "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "gradegrad", "grade", str(BATCH), "--cluster", "local:1", "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "gradegrad: error: --cluster needs Dask: pip install 'gradegrad[dask]'", \
        result.stderr


@pytest.mark.parametrize("ignored", [False, True], ids=["ctrl-c", "background"])
def test_ctrl_c_stops_a_local_cluster_quietly_and_a_background_batch_goes_on(tmp_path, ignored):
    """Ctrl-C (SIGINT to the command's process group, its workers included) while a local cluster
    grades: `gradegrad: interrupted`, exit 130, no traceback (each Dask worker's event loop printed
    its KeyboardInterrupt), and nothing of the command's processes left. A command that ignores
    SIGINT (started in the background by a script) grades every submission, as do its workers
    (the workers' fork server used to take Ctrl-C back, and its workers died or hung)."""
    from conftest import interrupted_batch

    code, err, left = interrupted_batch(tmp_path, "--cluster", "local:2", ignored=ignored)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert left == [], left
    if not ignored:
        assert code == 130 and err.rstrip().endswith("gradegrad: interrupted"), (code, err[-2000:])
        return
    assert code == 1, (code, err[-2000:])  # (complete.py does not pass the `all` rubric)
    rows = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert len(rows) == 12 and all(row["error"] is None and row["score"] == 165 for row in rows), rows
