"""The grader's scratch folders: named after the process that made them, and removed by the next
grader when that process was killed before it could remove them itself."""

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from gradegrad.sandbox import scratch

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs Linux's /proc")


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def made_by_a_killed_process(kind: str) -> str:
    """The name of a `kind` folder made by a child that was then SIGKILLed (no cleanup ran)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, scratch.make(kind).encode())
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(write)
    with os.fdopen(read) as fh:
        path = fh.read()
    os.waitpid(pid, 0)
    return os.path.basename(path)


def test_a_folder_s_name_says_which_process_made_it(tmp):
    path = scratch.make("zygote")
    boot, namespace, pid, started = os.path.basename(path).split("-")[2].split(".")
    with open("/proc/sys/kernel/random/boot_id") as fh:
        assert len(boot) == 8 and fh.read().replace("-", "").startswith(boot)
    assert int(pid) == os.getpid() and int(namespace) == os.stat("/proc/self/ns/pid").st_ino
    assert int(started) > 0 and oct(os.stat(path).st_mode)[-3:] == "700"
    assert not scratch.stale(os.path.basename(path), f"{boot}.{namespace}")


def test_a_killed_grader_s_folders_are_removed_and_no_one_else_s(tmp):
    dead = [made_by_a_killed_process(kind) for kind in ("zygote", "eval", "submission")]
    (tmp / dead[1] / "hidden").mkdir()
    (tmp / dead[1] / "hidden" / "student.py").write_text("x = 1\n")
    (tmp / dead[1] / "hidden").chmod(0)
    mine = os.path.basename(scratch.make("eval"))
    boot, ns = dead[0].split("-")[2].split(".")[:2]
    other_boot = f"{(int(boot, 16) + 1) % 16 ** 8:08x}"
    elsewhere = [dead[0].replace(f"-{boot}.{ns}.", f"-{boot}.{int(ns) + 1}."),  # a container's, sharing /tmp
                 dead[0].replace(f"-{boot}.", f"-{other_boot}.")]  # another machine's, sharing a network TMPDIR
    for name in elsewhere:
        (tmp / name).mkdir()
    os.symlink(tmp / mine, tmp / dead[0].replace("zygote", "source"))  # a link is never followed
    untagged = tmp / "gradegrad-zygote-abc"
    untagged.mkdir()
    assert scratch.sweep() == 3
    assert sorted(p.name for p in tmp.iterdir()) == sorted([mine, *elsewhere, dead[0].replace("zygote", "source"),
                                                             untagged.name])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder another user owns")
def test_another_user_s_folders_are_left_alone(tmp):
    name = made_by_a_killed_process("zygote")
    os.chown(tmp / name, 65534, 65534)
    assert scratch.sweep() == 0 and (tmp / name).is_dir()


def test_the_first_fork_server_a_process_starts_sweeps(tmp_path):
    """A grader killed mid-batch leaves its folders; the next command's fork server removes them."""
    code = ("import os, signal, tempfile, sys; tempfile.tempdir = sys.argv[1]\n"
            "from gradegrad.sandbox import scratch, zygote\n"
            "if sys.argv[2] == 'kill':\n"
            "    server = zygote.zygote_server(wait=False); print(os.path.basename(server.scratch), flush=True)\n"
            "    server.popen.kill(); os.kill(os.getpid(), signal.SIGKILL)\n"
            "server = zygote.zygote_server(wait=False); print(sorted(os.listdir(sys.argv[1])))\n"
            "zygote.shutdown()\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path), "kill"], capture_output=True, text=True,
                            timeout=120)
    left = killed.stdout.split()[0]
    assert left.startswith("gradegrad-zygote-") and (tmp_path / left).is_dir()
    after = subprocess.run([sys.executable, "-c", code, str(tmp_path), "next"], capture_output=True, text=True,
                           timeout=120)
    assert left not in after.stdout and "gradegrad-zygote-" in after.stdout
    assert list(tmp_path.iterdir()) == []  # and its own is gone once it stopped


def test_a_tree_an_evaluator_locked_is_removed_without_following_its_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    tree = tmp_path / "scratch"
    (tree / "locked" / "inner").mkdir(parents=True)
    (tree / "locked" / "inner" / "file").write_text("x")
    os.symlink(outside, tree / "locked" / "link")
    (tree / "locked" / "inner").chmod(0)
    (tree / "locked").chmod(0)
    scratch.remove_tree(str(tree))
    assert not tree.exists() and (outside / "keep.txt").read_text() == "mine"


def test_no_owner_where_proc_shows_another_pid_namespace():
    """After `unshare --pid` without a /proc of its own, a pid's entry in /proc is another
    process's: names then carry no owner, and nothing is swept on such guesses."""
    code = "from gradegrad.sandbox import scratch; print(repr(scratch.owner()), scratch.sweep())"
    try:
        run = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code], capture_output=True,
                             text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if run.returncode != 0 and "unshare" in run.stderr:
        pytest.skip(f"cannot unshare a PID namespace here ({run.stderr.strip()[:80]})")
    assert run.stdout.split() == ["''", "0"], run.stderr
