"""Throughput of gradegrad against a naive autograder and the in-process floor, in one run.

    python benchmarks/throughput.py            # N = 20 and 100 copies of complete.py
    python benchmarks/throughput.py --sizes 20 --jobs 2

Measured on this machine, in this run:
- gradegrad: `gradegrad grade DIR --jobs J --no-cache` end to end (a fresh process per
  submission, forked from the zygote; verdicts in the grader);
- naive: a fresh `python` per submission that imports torch and runs the same checks in-process
  (benchmarks/inprocess.py), J at a time;
- floor: one process that imports torch once and runs the same checks in-process on all N,
  its time divided by J (the cores); gradegrad and the floor run alternately, best of
  --repeat (2) each, the naive baseline once;
- `gradegrad check` of one complete submission against `python -c "import torch"`, alternating,
  best of five each;
- peak memory (PSS of the whole process tree) of the batch with --jobs 2 against one
  `import torch` process;
- what isolation itself costs here (benchmarks/isolation.py): a fresh evaluator that grades
  nothing, and one request/reply round trip against the same call in-process;
- with Dask installed (gradegrad[dask]), `gradegrad grade DIR --cluster local:J` end to end (the
  command starts a LocalCluster of J worker processes, grades, stops it) against `--jobs J`,
  alternating with the two above (the cluster after `--jobs` in one repeat, before it in the
  next): best of each over the pairs, and the overhead of each pair, run back to back, whose
  median is the cluster's overhead (this machine's speed drifts over minutes: the best runs of
  the two modes may come from different phases, a pair's two runs from the same). The largest
  size gets pairs of its own after the repeats, up to --pairs in all (a pair's two runs can
  differ by 10% on a noisy machine: ten pairs put their median's 90% interval 25 points wide),
  and the median is printed with the interval that holds the true median with at least 90%
  confidence (the order statistics of the pairs: no assumption on how they are distributed);
- the request/reply round trips one complete submission makes (`Child.round_trips`), without a
  rubric (every exercise found) and with the `all` rubric.
Prints Markdown tables; the README records one run.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPLETE = ROOT / "submissions_example" / "complete.py"
INPROCESS = ROOT / "benchmarks" / "inprocess.py"
ISOLATION = ROOT / "benchmarks" / "isolation.py"
ENV = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
ROUND_TRIPS = """
from pathlib import Path
from gradegrad.catalog import load_catalog, resolve_rubric
from gradegrad.grading import grade
from gradegrad.options import Options
from gradegrad.sandbox.process import Child
catalog = load_catalog()
grade(Path({path!r}), resolve_rubric({rubric!r}, catalog), catalog, Options())
print(Child.round_trips)
"""


def run(cmd: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT, **kw)
    return time.perf_counter() - start


def copies(n: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(COMPLETE, folder / f"student{i:03d}.py")
    return folder


def gradegrad_batch(folder: Path, jobs: int, out: Path) -> float:
    return run([sys.executable, "-m", "gradegrad", "grade", str(folder), "--rubric", "all", "--jobs", str(jobs),
                "--out", str(out), "--no-cache"])


def cluster_batch(folder: Path, workers: int, out: Path) -> float:
    return run([sys.executable, "-m", "gradegrad", "grade", str(folder), "--rubric", "all", "--cluster",
                f"local:{workers}", "--out", str(out), "--no-cache"])


def pair(folder: Path, n: int, jobs: int, work: Path, cluster_first: bool) -> tuple[float, float]:
    """(`--jobs` seconds, cluster seconds) for the `n` copies in `folder`, run back to back; the
    cluster first in every other pair (ABBA), so that a drift of the machine's speed favours neither."""
    if cluster_first:
        c = cluster_batch(folder, jobs, work / f"cluster{n}")
    one = gradegrad_batch(folder, jobs, work / f"out{n}")
    if not cluster_first:
        c = cluster_batch(folder, jobs, work / f"cluster{n}")
    return one, c


def round_trips(rubric: str | None) -> int:
    """Request/reply round trips of grading complete.py once (`rubric` None: every exercise found)."""
    out = subprocess.run([sys.executable, "-c", ROUND_TRIPS.format(path=str(COMPLETE), rubric=rubric)],
                         capture_output=True, text=True, env=ENV, cwd=ROOT, check=True).stdout
    return int(out.split()[-1])


def naive(folder: Path, jobs: int, expected: dict[str, float]) -> float:
    files = sorted(folder.glob("*.py"))
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        outs = list(pool.map(lambda f: _graded_in_process([f]), files))
    seconds = time.perf_counter() - start
    _same_totals("naive grader", {k: v for out in outs for k, v in out.items()}, expected)
    return seconds


def _graded_in_process(files: list[Path]) -> dict[str, float]:
    """benchmarks/inprocess.py on `files`: each file's total."""
    out = subprocess.run([sys.executable, str(INPROCESS), *map(str, files)], capture_output=True, text=True,
                         env=ENV, cwd=ROOT).stdout
    return {Path(line.rsplit(": ", 1)[0]).stem: float(line.rsplit(": ", 1)[1]) for line in out.splitlines()
            if ": " in line}


def _same_totals(what: str, got: dict[str, float], expected: dict[str, float]) -> None:
    """A baseline must give every file gradegrad's total: one that stops early (say on an
    exception of its own) would look fast and mean nothing."""
    if got != expected:
        wrong = sorted(k for k in expected if got.get(k) != expected[k])[:3]
        sys.exit(f"benchmark invalid: the {what}'s totals differ from gradegrad's ({len(got)} of {len(expected)} "
                 f"files graded; e.g. {[(k, got.get(k), expected[k]) for k in wrong]})")


def floor(folder: Path, jobs: int, expected: dict[str, float]) -> float:
    start = time.perf_counter()
    got = _graded_in_process(sorted(folder.glob("*.py")))
    seconds = time.perf_counter() - start
    _same_totals("floor", got, expected)
    return seconds / jobs


def totals(out: Path) -> dict[str, float]:
    """Each student's total in a gradebook gradegrad wrote."""
    with open(out / "grades.csv", encoding="utf-8-sig", newline="") as fh:
        return {row["name"]: float(row["total"]) for row in csv.DictReader(fh)}


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def peak_memory(cmd: list[str], measure=_pss) -> tuple[float, int]:
    """Run `cmd`, sampling its whole process tree (PSS: shared pages split between the processes
    sharing them, so forked children are not counted twice); (seconds, peak bytes)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)
    peak, start = 0, time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, sum(measure(p) for p in _tree(proc.pid)))
        time.sleep(0.05)
    return time.perf_counter() - start, peak


def median_interval(values: list[float], confidence: float = 0.9) -> tuple[float, float, float]:
    """(low, high, coverage): the narrowest interval between two order statistics of `values`,
    symmetric in rank, that holds their population's median with at least `confidence` (each
    value is below the median with probability 1/2, whatever the distribution); the widest there
    is (min, max) when `values` are too few for that."""
    ordered, n = sorted(values), len(values)
    below = 0.0  # P(fewer than k values below the median), for k = 0, 1, ...
    k = 0
    while k + 1 <= n // 2:
        nxt = below + math.comb(n, k) / 2 ** n
        if 1 - 2 * nxt < confidence:
            break
        below, k = nxt, k + 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k], 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2, help="runs of gradegrad and of the floor (best kept)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the Dask cluster runs")
    parser.add_argument("--pairs", type=int, default=20,
                        help="pairs of --jobs and cluster runs at the largest size (at least --repeat)")
    args = parser.parse_args()
    dask = not args.no_cluster and importlib.util.find_spec("distributed") is not None
    # gradegrad's bytecode, as an installed package has it: where PYTHONDONTWRITEBYTECODE is set (or
    # the checkout is read-only), every process would compile its hundred modules again
    compileall.compile_dir(str(ROOT / "gradegrad"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="gradegrad-bench-"))
    rows, clusters = [], []
    try:
        for n in args.sizes:
            folder = copies(n, work / f"n{n}")
            # gradegrad, the cluster and the floor alternate, best of --repeat each: this machine's speed drifts
            g, f, pairs = float("inf"), float("inf"), []
            for _ in range(args.repeat):
                if dask:
                    pairs.append(pair(folder, n, args.jobs, work, cluster_first=len(pairs) % 2 == 1))
                    one = pairs[-1][0]
                else:
                    one = gradegrad_batch(folder, args.jobs, work / f"out{n}")
                g = min(g, one)
                f = min(f, floor(folder, args.jobs, totals(work / f"out{n}")))
            while dask and n == max(args.sizes) and len(pairs) < args.pairs:
                pairs.append(pair(folder, n, args.jobs, work, cluster_first=len(pairs) % 2 == 1))
            b = naive(folder, args.jobs, totals(work / f"out{n}"))
            rows.append((n, g, b, f))
            clusters.append((n, pairs))
        trips = round_trips(None), round_trips("all")
        torch_import = check = float("inf")
        for _ in range(5):  # alternating, best of five each: this machine's speed drifts
            torch_import = min(torch_import, run([sys.executable, "-c", "import torch"]))
            check = min(check, run([sys.executable, "-m", "gradegrad", "check", str(COMPLETE)]))
        # one `import torch` process on its own: its RSS (its PSS shrinks whenever other processes
        # on the machine happen to map the same libraries)
        _, one = peak_memory([sys.executable, "-c", "import torch, time; time.sleep(1.5)"], _rss)
        mem_folder = copies(20, work / "mem")
        _, batch = peak_memory([sys.executable, "-m", "gradegrad", "grade", str(mem_folder), "--rubric", "all",
                                "--jobs", "2", "--out", str(work / "memout"), "--no-cache"])
        isolation = subprocess.run([sys.executable, str(ISOLATION)], capture_output=True, text=True, env=ENV,
                                   cwd=ROOT)
        costs = json.loads(isolation.stdout) if isolation.returncode == 0 else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores, jobs {args.jobs}, python {sys.version.split()[0]}\n")
    print("| N | gradegrad s | subs/s | naive s | subs/s | floor s | gradegrad vs naive | gradegrad / floor |")
    print("|---|---|---|---|---|---|---|---|")
    for n, g, b, f in rows:
        print(f"| {n} | {g:.1f} | {n / g:.1f} | {b:.1f} | {n / b:.1f} | {f:.1f} | {b / g:.1f}x faster | {g / f:.2f}x |")
    print(f"\n`gradegrad check complete.py`: {check:.2f} s; `python -c \"import torch\"`: {torch_import:.2f} s "
          f"(ratio {check / torch_import:.2f})")
    print(f"peak memory (PSS) of a 20-submission batch with --jobs 2: {batch / 2**20:.0f} MiB; one `import torch` "
          f"process (RSS): {one / 2**20:.0f} MiB (ratio {batch / max(one, 1):.2f})")
    if costs is None:
        print(f"isolation: benchmarks/isolation.py failed ({isolation.stderr.strip().splitlines()[-1:]})")
    else:
        print(f"isolation: a fresh evaluator that grades nothing costs {costs['process_ms']:.0f} ms of CPU "
              f"({costs['process_wall_ms']:.0f} ms wall); a request/reply round trip {costs['round_trip_us']} us of "
              f"CPU, against {costs['in_process_us']} us for the same call in-process")
    print(f"round trips: a complete submission makes {trips[0]} request/reply round trips without a rubric "
          f"({trips[1]} with --rubric all)")
    if not dask:
        print("\nDask cluster: not measured (--no-cluster, or Dask not installed: pip install 'gradegrad[dask]')")
        return
    print(f"\n| N | `--jobs {args.jobs}` s (best) | `--cluster local:{args.jobs}` s (best) | overhead, best of each | "
          "overhead, median of the pairs (interval) | each pair (run back to back) |")
    print("|---|---|---|---|---|---|")
    for n, pairs in clusters:
        g, c = min(jobs for jobs, _ in pairs), min(cluster for _, cluster in pairs)
        each = [cluster / jobs - 1 for jobs, cluster in pairs]
        low, high, coverage = median_interval(each)
        print(f"| {n} | {g:.1f} | {c:.1f} | {(c / g - 1) * 100:+.0f}% | {statistics.median(each) * 100:+.0f}% of "
              f"{len(pairs)} ({low * 100:+.0f}% to {high * 100:+.0f}%, {coverage:.0%}) | "
              + ", ".join(f"{jobs:.1f} / {cluster:.1f} s ({r * 100:+.0f}%)" for (jobs, cluster), r in zip(pairs, each))
              + " |")


if __name__ == "__main__":
    main()
