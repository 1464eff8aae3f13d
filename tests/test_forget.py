"""What a fork of the grader forgets before it becomes the fork server (sandbox/forget.py), each in
a fresh interpreter of its own (forgetting is for good); the exploit suite's
`test_the_fork_server_forgot_what_the_grader_held` searches a real evaluator's memory."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from gradegrad.sandbox.environment import PACKAGE_ROOT

PLANTED = "hunter2-planted-in-the-grader"


def run(code: str, *args: str, allow_empty: bool = False, **env: str) -> dict | None:
    """Run `code` in a fresh interpreter, with PLANTED in its environment; the JSON it prints."""
    script = textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GG_PLANTED": PLANTED, **env})
    assert result.returncode == 0, result.stderr
    if allow_empty and not result.stdout:
        return None
    return json.loads(result.stdout)


def test_the_environment_is_zeroed_and_replaced():
    seen = run("""
        import json, os
        from gradegrad.sandbox import forget
        forget.environment({"HOME": "/scratch", "LANG": "C.UTF-8"})
        print(json.dumps({"proc": open("/proc/self/environ", "rb").read().decode("latin-1"),
                          "os": dict(os.environ), "getenv": os.getenv("GG_PLANTED")}))
    """)
    assert seen["os"] == {"HOME": "/scratch", "LANG": "C.UTF-8"}
    assert seen["getenv"] is None
    assert PLANTED not in seen["proc"] and "GG_PLANTED" not in seen["proc"]


def test_the_command_line_becomes_the_fork_servers_name():
    seen = run("""
        import json, sys
        from gradegrad.sandbox import forget
        forget.command_line()
        print(json.dumps({"proc": open("/proc/self/cmdline", "rb").read().decode("latin-1"), "argv": sys.argv}))
    """, "grade", "/home/ta/course/submissions")
    assert seen["proc"].rstrip("\0") == "gradegrad-forkserver"
    assert seen["argv"] == ["gradegrad-forkserver"]


def test_only_the_socket_is_kept_as_fd_3_and_stdio_is_dev_null(tmp_path):
    seen = run("""
        import json, os
        from gradegrad.sandbox import forget
        keep, other = os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_RDONLY)
        keep = os.dup2(keep, 9)
        forget.descriptors(keep)
        def is_open(fd):
            try:
                os.fstat(fd)
                return True
            except OSError:
                return False
        found = {"open": [fd for fd in range(32) if is_open(fd)],
                 "stdio": [os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)]}
        print("{}")  # to /dev/null now
        with open(os.environ["GG_OUT"], "w") as fh:
            json.dump(found, fh)
    """, GG_OUT=str(tmp_path / "out.json"), allow_empty=True)
    assert seen is None  # what is printed after forgetting goes to /dev/null, not to the caller
    found = json.loads((tmp_path / "out.json").read_text())
    assert found == {"open": [0, 1, 2, 3], "stdio": ["/dev/null"] * 3}


def test_the_import_path_is_a_fresh_isolated_interpreters(tmp_path):
    extra = tmp_path / "from-pythonpath"
    extra.mkdir()
    seen = run(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})  # as a script's folder or working directory would be
        before = list(sys.path)
        from gradegrad.sandbox import forget
        forget.import_path({PACKAGE_ROOT!r}, {str(extra)!r})
        print(json.dumps({{"before": before, "after": sys.path, "cached": list(sys.path_importer_cache)}}))
    """, PYTHONPATH=str(extra))
    assert seen["after"][0] == PACKAGE_ROOT
    assert str(extra) in seen["before"] and str(extra) not in seen["after"] + seen["cached"]
    assert str(tmp_path) not in seen["after"] + seen["cached"]
    assert any(path.endswith("site-packages") for path in seen["after"])


def test_the_working_directory_is_dropped_wherever_it_sits_in_the_import_path(tmp_path):
    """A multiprocessing child (a Dask worker of `--cluster local:N`) has its parent's path, with the
    working directory anywhere in it, not first."""
    work = tmp_path / "work"
    work.mkdir()
    seen = run(f"""
        import json, os, sys
        os.chdir({str(work)!r})
        sys.path.insert(0, "/the-scripts-folder")
        sys.path.insert(2, {str(work)!r})
        from gradegrad.sandbox import forget
        forget.import_path({PACKAGE_ROOT!r}, "")
        print(json.dumps({{"after": sys.path}}))
    """)
    assert str(work) not in seen["after"] and "/the-scripts-folder" not in seen["after"]


def test_an_entry_the_c_library_will_not_unset_is_forgotten_all_the_same():
    """An environment entry with an empty name (`=odd`), which unsetenv refuses: still zeroed."""
    env = shutil.which("env")
    if env is None:
        pytest.skip("no env program to start a process with such an entry")
    script = textwrap.dedent("""
        import json, os
        from gradegrad.sandbox import forget
        forget.environment({"HOME": "/scratch"})
        print(json.dumps({"proc": open("/proc/self/environ", "rb").read().decode("latin-1"), "os": dict(os.environ)}))
    """)
    result = subprocess.run([env, "=odd=" + PLANTED, f"GG_PLANTED={PLANTED}", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["os"] == {"HOME": "/scratch"} and PLANTED not in seen["proc"]
