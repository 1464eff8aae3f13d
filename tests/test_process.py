"""The evaluator process as the grader drives it: the replies it sends ahead of the grader's
gradcheck, which save round trips and change no verdict; what it is born with (no root, no
capability, no terminal, its own namespaces where the kernel allows); --isolation; and an
interrupted batch that leaves nothing running."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import EXAMPLES, SUBMISSIONS, check
from gradegrad.catalog import resolve_rubric, select_exercises
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.sandbox import process
from gradegrad.sandbox.protocol import Channel, parse_frame


@pytest.fixture
def sent(monkeypatch):
    """The ops of every request that really went to a child."""
    ops = Counter()
    send_frame = Channel.send_frame

    def counting(self, frame, deadline=None):
        ops[parse_frame(frame).header.get("op")] += 1
        return send_frame(self, frame, deadline)

    monkeypatch.setattr(Channel, "send_frame", counting)
    return ops


def grade_swapped(catalog):
    """Mul with swapped gradients: fast_mode fails, and torch computes the full Jacobian to explain it."""
    rubric = select_exercises(resolve_rubric("all", catalog), ["mul"], catalog)
    rubric = replace(rubric, items=tuple(replace(it, points=tuple(p for p in it.points if p[0] in ("found", "gradcheck")))
                                         for it in rubric.items))
    return grade(SUBMISSIONS / "swapped.py", rubric, catalog, Options())


def test_a_failing_gradcheck_costs_one_round_trip_of_its_own_and_gives_the_same_verdict(catalog, sent, monkeypatch):
    """The child answers the requests the grader predicted with the exercise's evaluations; the
    full Jacobian torch computes to explain the failure is not among them, so the first of its
    requests asks the child to run gradcheck ahead: one more request for everything."""
    ahead = grade_swapped(catalog)
    assert sent["evaluate"] == sent["speculate"] == 1 and sent["forward"] + sent["backward"] == 0
    sent.clear()
    monkeypatch.setattr(process.Child, "take_ahead", lambda self, pairs: 0)  # the replies ahead go unused
    live = grade_swapped(catalog)
    assert sent["forward"] + sent["backward"] > 20  # 2 per input element, 1 per output element
    assert check(ahead, "mul", "gradcheck") == check(live, "mul", "gradcheck")
    assert check(ahead, "mul", "gradcheck").diagnosis == "jacobian_mismatch"


def test_a_complete_submission_costs_one_request_per_exercise_and_two_for_memory(catalog, sent):
    """Every evaluation the checks read and gradcheck's run-ahead in one request per exercise; the
    efficiency check's measure, and its word to go on from forward to backward."""
    report = grade(EXAMPLES / "complete.py", resolve_rubric(None, catalog), catalog, Options())
    measured = sum(1 for e in report.exercises if any(c.id == "efficiency" for c in e.checks))
    assert report.passed and sent["evaluate"] == len(report.exercises)
    assert sent["measure"] == sent["continue"] == measured
    assert sum(sent.values()) - sent["exit"] == 2 + len(report.exercises) + 2 * measured <= 40


# ----------------------------------------------------------------- what an evaluator is born with

from gradegrad.sandbox.layers.credentials import UID_BASE  # noqa: E402

INSPECT = '''
import json, os, resource
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("FACTS", json.dumps({
    "uid": os.getuid(), "caps": [int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
    "nnp": int(status["NoNewPrivs"]), "seccomp": int(status["Seccomp"]),
    "session_leader": os.getsid(0) == os.getpid(), "stdin_tty": os.isatty(0),
    "stdin_null": os.fstat(0).st_rdev == os.stat("/dev/null").st_rdev,
    "dev": {n: os.path.exists("/dev/" + n) for n in ("tty", "console", "ptmx", "pts", "mem", "kmsg", "vda", "sda",
                                                     "null", "zero", "random", "urandom")},
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "paths": {p: os.path.exists(p) for p in ("/home/gguser", "/root/.bashrc", "/run", "/etc/shadow", "/var/run")},
    "cwd": os.getcwd(), "home": os.environ.get("HOME"), "env": sorted(os.environ),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0], "oom": open("/proc/self/oom_score_adj").read().strip(),
}))
import torch
class Add(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        return x + y
    @staticmethod
    def backward(ctx, g):
        return g, g
'''


def _facts(catalog, tmp_path, **limits):
    path = tmp_path / "inspect.py"
    path.write_text(INSPECT)
    rubric = select_exercises(resolve_rubric(None, catalog), ["add"], catalog)
    report = grade(path, rubric, catalog, Options(limits=process.Limits(**limits)))
    line = next(l for l in report.output.stdout.splitlines() if l.startswith("FACTS "))
    return report, json.loads(line[6:])


def test_an_evaluator_is_never_root_and_holds_no_capability(catalog, tmp_path):
    report, facts = _facts(catalog, tmp_path)
    inheritable, permitted, effective, bounding, ambient = facts["caps"]
    assert inheritable == permitted == effective == ambient == 0 and facts["nnp"] == 1 and facts["seccomp"] == 2
    if os.geteuid() == 0 or "user-namespace" in report.protections:  # (else no_new_privs makes it moot)
        assert bounding == 0
    assert "unprivileged-uid" in report.protections and "no-capabilities" in report.protections
    if os.geteuid() == 0:  # a root grader's evaluator is a user of its own (outside any user namespace)
        assert facts["uid"] >= UID_BASE
    assert facts["oom"] == "1000" and facts["nproc"] == process.Limits().processes


def test_an_evaluator_has_no_terminal(catalog, tmp_path):
    report, facts = _facts(catalog, tmp_path)
    assert facts["session_leader"] and not facts["stdin_tty"] and facts["stdin_null"]
    if "private-root" in report.protections:
        assert not any(facts["dev"][n] for n in ("tty", "console", "ptmx", "pts"))


def test_an_evaluator_sees_only_its_own_sandbox(catalog, tmp_path):
    """With namespaces: its own processes, a minimal /dev, no host folders, a scratch home."""
    report, facts = _facts(catalog, tmp_path)
    if "private-root" not in report.protections:
        pytest.skip(f"no namespaces here: {report.missing_protections}")
    assert facts["pids"] == [1]  # PID 1 of its own namespace, alone
    assert {n for n, there in facts["dev"].items() if there} == {"null", "zero", "random", "urandom"}
    assert not any(facts["paths"].values()), facts["paths"]
    assert facts["cwd"] == facts["home"] == "/home/student"
    assert "GITHUB_TOKEN" not in facts["env"]


def test_isolation_none_is_a_separate_process_only(catalog, tmp_path):
    report, facts = _facts(catalog, tmp_path, isolation="none")
    ours = int(dict(line.split(":", 1) for line in open("/proc/self/status"))["Seccomp"])
    assert report.protections == () and facts["seccomp"] == ours  # (a filter the grader runs under, if any)
    assert exercise_passed(report)


def exercise_passed(report):
    return all(e.status == "passed" for e in report.exercises)


def _docker_like():
    """In a child process: refuse unshare, mount and setns, as Docker's default seccomp profile does."""
    import errno

    sc = pytest.importorskip("pyseccomp")
    f = sc.SyscallFilter(sc.ALLOW)
    for name in ("unshare", "mount", "setns"):
        f.add_rule(sc.ERRNO(errno.EPERM), name)
    return f.load


def test_strict_isolation_exits_2_where_namespaces_are_refused_and_auto_names_what_is_missing():
    try:
        load = _docker_like()
    except RuntimeError:
        pytest.skip("libseccomp is not installed")
    cmd = [sys.executable, "-m", "gradegrad", "check", str(EXAMPLES / "complete.py"), "-e", "add"]
    strict = subprocess.run(cmd + ["--isolation", "strict"], preexec_fn=load, capture_output=True, text=True,
                            timeout=300)
    assert strict.returncode == 2, strict.stderr
    assert strict.stderr.count("\n") == 1 and "--isolation strict" in strict.stderr and "Traceback" not in strict.stderr
    auto = subprocess.run(cmd, preexec_fn=load, capture_output=True, text=True, timeout=300)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    line = " ".join(auto.stdout.split())
    assert "namespaces (" in line.split("missing:")[1] and "seccomp" in line


SLEEPER = '''
import ctypes, os, time
ctypes.CDLL(None).prctl(15, b"ggexploit", 0, 0, 0)
if os.fork() == 0:
    os.setsid()
    while True:
        time.sleep(1)
time.sleep(1000)
'''


def test_ctrl_c_during_grade_with_four_jobs_leaves_no_process(tmp_path):
    """Grading processes (--jobs 4) each with evaluators that sleep and have a daemon: an
    interrupt from the terminal (SIGINT to the process group) leaves nothing running."""
    from test_exploits import leftovers, none_left

    folder = tmp_path / "subs"
    folder.mkdir()
    for i in range(4):
        (folder / f"sleeper_{i}.py").write_text(SLEEPER)
    os.chmod(tmp_path, 0o755)
    before = set(leftovers())
    proc = subprocess.Popen([sys.executable, "-m", "gradegrad", "grade", str(folder), "--jobs", "4", "--timeout", "120",
                             "-o", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True,  # SIGINT as a terminal's: a background job ignores it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(set(leftovers()) - before) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(set(leftovers()) - before) >= 8, "the sleepers did not start"
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read().decode(errors="replace")[-3000:]
    assert "gradegrad: interrupted" in proc.stderr.read().decode(errors="replace")
    assert not set(none_left(seconds=10)) - before


@pytest.mark.parametrize("use_zygote", [True, False], ids=["fork-server", "fresh-interpreter"])
def test_extra_fds_reach_the_evaluator_from_fd_5(tmp_path, use_zygote):
    """What shared memory for inputs will use: a memfd the grader passes is the evaluator's fd 5."""
    fd = os.memfd_create("inputs")
    os.write(fd, b"shared bytes")
    path = tmp_path / "reads_fd.py"
    path.write_text("import os\nprint('FD5', os.pread(5, 100, 0), flush=True)\n")
    os.chmod(tmp_path, 0o755)
    child = process.Child("cpu", use_zygote=use_zygote, submission=str(path), extra_fds=(fd,))
    try:
        child.request({"op": "confine", "path": str(path), "device": "cpu", "memory": None,
                       "layers": list(child.layers)}, timeout=120)
        child.request({"op": "load", "path": str(path)}, timeout=60)
    finally:
        out = child.close()
        os.close(fd)
    assert "FD5 b'shared bytes'" in out.stdout


PRESTART = """
import sys, threading
import torch
from gradegrad.sandbox import zygote
stop = threading.Event()
if sys.argv[1] == "thread":
    threading.Thread(target=stop.wait).start()
zygote.prestart(fork=True)
server = zygote.zygote_server()
print(type(server.popen).__name__, server.namespaces is None or server.namespaces, flush=True)
stop.set()
zygote.shutdown()
"""


@pytest.mark.parametrize("case", ["alone", "thread", "separate"])
def test_the_fork_server_is_a_fork_only_of_a_process_with_no_thread_of_its_own(case):
    """A fork copies the locks other threads hold: a process with a thread of its own gets a
    fresh interpreter as its fork server, even where it asked for a fork; so does one whose
    environment asks for a separate fork server."""
    env = {k: v for k, v in os.environ.items() if k != "GRADEGRAD_SEPARATE_FORK_SERVER"}
    if case == "separate":
        env["GRADEGRAD_SEPARATE_FORK_SERVER"] = "1"
    result = subprocess.run([sys.executable, "-c", PRESTART, case], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == ("Forked" if case == "alone" else "Popen")


def test_the_sandbox_imports_one_way():
    """The grader's side and the child's side import the wire and the layers, never each other."""
    import ast
    from pathlib import Path

    import gradegrad.sandbox as sandbox

    root = Path(sandbox.__file__).parent
    grader = {"process", "remote", "zygote", "watchdog", "reaper", "meter"}
    child = {"child", "spawn", "forkserver", "loopback", "confine", "measure"}
    imports = {}
    for path in [*root.glob("*.py"), *root.glob("layers/*.py")]:
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradegrad.sandbox."):
                found.add(node.module.removeprefix("gradegrad.sandbox."))
        imports[name] = found
    for name, found in imports.items():
        if name in child:
            assert not found & grader, (name, found & grader)
        if name in grader:
            assert not found & child, (name, found & child)
        if name.startswith("layers."):
            assert all(f.startswith("layers.") for f in found), (name, found)


def test_an_evaluator_without_the_fork_server_grades_gradcheck_too():
    """The fallback evaluator (a fresh `python -I`, GRADEGRAD_NO_ZYGOTE=1) imports what torch imports
    lazily for a first gradient before a root grader's evaluator gives up root:
    with Python in a folder only root may enter, it could not afterwards (gradcheck was an error)."""
    env = {**os.environ, "GRADEGRAD_NO_ZYGOTE": "1", "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "gradegrad", "check", str(EXAMPLES / "complete.py"), "-e", "sigmoid"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


TORCH_LOOP = '''import sys
import torch

print("warm" if "torch._dynamo" in sys.modules else "cold")


def train_torch(model, x_t, y_t, epochs, lr):
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        loss = loss_fn(model(x_t), y_t)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses
'''


def test_after_a_torch_training_loop_the_fork_server_imports_what_it_needed_for_the_next_evaluators(tmp_path):
    """torch.optim imports torch._dynamo on first use (a second); once a submission's exercise runs
    the torch loop, the fork server imports it before the next evaluator, which inherits it: the
    first student's code starts without it, the next ones with it, every grade the same."""
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.py").write_text(TORCH_LOOP)
    result = subprocess.run([sys.executable, "-m", "gradegrad", "grade", str(folder), "--jobs", "1", "--rubric", "all",
                             "-e", "train_torch", "--out", str(tmp_path / "out"), "--no-cache"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    reports = {Path(r["submission"]).stem: r for r in json.loads((tmp_path / "out" / "grades.json").read_text())}
    assert {name: r["output"]["stdout"] for name, r in reports.items()} == {"a": "cold\n", "b": "warm\n", "c": "warm\n"}
    assert {r["score"] for r in reports.values()} == {8.0}
