"""Every check's verdict on every fixture, to compare two versions of gradegrad (and round trips).

    python benchmarks/verdicts.py record before.json     # on the old version
    python benchmarks/verdicts.py record after.json      # on the new one
    python benchmarks/verdicts.py compare before.json after.json

`record` grades each submission file of the test fixtures (tests/fixtures/submissions, exploits,
efficiency, seeds, kinds13, batch) and of submissions_example with the default rubric (every
exercise whose class is found), and complete.py with the `all` rubric too, and writes, per file,
each check's (status, diagnosis, points) and the request/reply round trips it cost
(`Child.round_trips`). `compare` prints every difference of verdicts (exit code 1 if any) and the
round trips before and after. Messages are not compared (they carry byte counts and times).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("tests/fixtures/submissions", "tests/fixtures/exploits", "tests/fixtures/efficiency",
           "tests/fixtures/seeds", "tests/fixtures/kinds13", "tests/fixtures/batch", "submissions_example",
           "submissions_example/classroom")
ALL_RUBRIC = ("submissions_example/complete.py",)


def files() -> list[tuple[str, str | None]]:
    found = [(str(p.relative_to(ROOT)), None) for folder in FOLDERS for p in sorted((ROOT / folder).glob("*.py"))]
    return found + [(name, "all") for name in ALL_RUBRIC]


def record(out: Path, only: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    import torch  # noqa: F401
    from gradegrad.entry import warm_up
    from gradegrad.sandbox import zygote

    warm_up()  # as the console script does (torch's symbolic shapes behind their stand-in, one thread)
    if hasattr(zygote, "Forked"):  # the fork server as the console script has it: a fork of this process
        zygote.prestart(fork=True)
    from gradegrad.catalog import load_catalog, resolve_rubric
    from gradegrad.grading import grade
    from gradegrad.options import Options
    from gradegrad.sandbox.process import Child

    catalog = load_catalog()
    results = {}
    for name, rubric in files():
        if only and not any(o in name for o in only):
            continue
        key = f"{name} [{rubric or 'found'}]"
        before, start = Child.round_trips, time.monotonic()
        report = grade(ROOT / name, resolve_rubric(rubric, catalog), catalog, Options())
        checks = {f"{e.id}.{c.id}": [c.status, c.diagnosis, c.points] for e in report.exercises for c in e.checks}
        results[key] = {"checks": checks, "error": bool(report.error), "round_trips": Child.round_trips - before,
                        "seconds": round(time.monotonic() - start, 2)}
        print(f"{key}: {results[key]['round_trips']} round trips, {results[key]['seconds']} s", flush=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=True))


def compare(before: Path, after: Path) -> int:
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    differences = 0
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            print(f"{key}: only {'after' if a is None else 'before'}")
            differences += 1
            continue
        for cid in sorted(set(a["checks"]) | set(b["checks"])):
            if a["checks"].get(cid) != b["checks"].get(cid):
                print(f"{key} {cid}: {a['checks'].get(cid)} -> {b['checks'].get(cid)}")
                differences += 1
        print(f"{key}: round trips {a['round_trips']} -> {b['round_trips']}")
    print(f"{differences} difference(s) of verdicts")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("only", nargs="*", help="only files whose path contains one of these")
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, args.only)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
