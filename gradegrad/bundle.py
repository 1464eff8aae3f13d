"""`gradegrad gradescope bundle`: the autograder zip Gradescope builds its image from.

The zip holds, at its root (Gradescope's /autograder/source):
- `setup.sh`: run once by Gradescope: a virtual environment with Python, torch from PyTorch's
  CPU index (PyPI's Linux torch is the CUDA build, several GB), gradegrad's dependencies and the
  extras the rubric's exercise kinds need;
- `run_autograder`: run for each submission: `python -m gradegrad gradescope` on the student's
  upload folder (with `--module`, the other files of the upload stay importable), writing
  /autograder/results/results.json; the options given to `bundle` are written into it;
- `lib/gradegrad/`: this gradegrad, with its built-in exercises and rubrics (`lib/` is the
  PYTHONPATH; nothing is downloaded for gradegrad itself);
- `course/rubrics/<rubric>.yaml` and `course/exercises/<n>/`: the rubric and the course's own
  exercise folders.
The scripts read `AUTOGRADER` (default /autograder) and `GRADEGRAD_PYTHON` (default the venv's
python), so the bundle can be tried in a scratch folder.
"""

from __future__ import annotations

import io
import re
import shlex
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

import gradegrad
from gradegrad.catalog import BUILTIN_EXERCISES, BUILTIN_RUBRICS, Exercise, Rubric
from gradegrad.render.files import write_bytes_atomic

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What gradegrad needs besides torch, when neither its pyproject.toml nor its metadata can be read.
FALLBACK_REQUIREMENTS = ("numpy>=1.24", "typer>=0.9", "rich>=13", "pyyaml>=6", 'tomli>=1.1; python_version < "3.11"')
EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same inputs give the same bytes
EXECUTABLE, REGULAR = 0o755, 0o644


@dataclass(frozen=True)
class BundleSpec:
    """What to grade and how: written into run_autograder."""

    rubric: Rubric
    catalog: Mapping[str, Exercise]
    course_exercises: tuple[Path, ...]  # exercise folders besides the built-in one
    exercise: tuple[str, ...] = ()  # --exercise ids
    module: str | None = None
    seed: int = 0
    timeout: float = 30.0
    submission_timeout: float = 600.0
    memory: str = "4G"
    load_timeout: float = 60.0


# --------------------------------------------------------------------------- requirements


def _split(requirement: str) -> tuple[str, str | None]:
    """(requirement without an `extra == "x"` marker, x or None)."""
    m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
    if not m:
        return requirement.strip(), None
    base, _, marker = requirement.partition(";")
    rest = re.sub(r"""(and\s+)?extra\s*==\s*["'][^"']+["'](\s+and)?""", "", marker).strip()
    return (f"{base.strip()}; {rest}" if rest else base.strip()), m.group(1)


def _declared() -> list[str]:
    """gradegrad's requirements: from its pyproject.toml in a checkout, else its installed metadata."""
    pyproject = Path(gradegrad.__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        from gradegrad.config import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}) if tomllib else {}
        if project.get("name") == "gradegrad":
            extras = [f'{r}; extra == "{name}"' if ";" not in r else f'{r} and extra == "{name}"'
                      for name, reqs in project.get("optional-dependencies", {}).items() for r in reqs]
            return [*project.get("dependencies", []), *extras]
    try:
        return list(metadata.requires("gradegrad") or [])
    except metadata.PackageNotFoundError:
        return list(FALLBACK_REQUIREMENTS)


def requirements(extras: Iterable[str]) -> list[str]:
    """pip requirements for the container, torch apart: the core ones and those of `extras`."""
    wanted = set(extras)
    out = []
    for req in _declared():
        base, extra = _split(req)
        if re.match(r"torch\b", base):
            continue
        if extra is None or extra in wanted:
            out.append(base)
    return out


def extras_for(rubric: Rubric, catalog: Mapping[str, Exercise]) -> list[str]:
    """The optional extras (pyproject's [project.optional-dependencies]) the rubric's exercises name."""
    return sorted({catalog[it.exercise].spec.extra for it in rubric.items if catalog[it.exercise].spec.extra})


def torch_pin() -> str:
    import torch

    return "torch==" + torch.__version__.split("+")[0]


# --------------------------------------------------------------------------- scripts


def setup_sh(pins: list[str], torch_requirement: str) -> str:
    installs = " ".join(shlex.quote(p) for p in pins)
    return f"""#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (written by `gradegrad gradescope bundle`).
set -euo pipefail
AUTOGRADER="${{AUTOGRADER:-/autograder}}"
VENV="$AUTOGRADER/gradegrad-venv"
if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update
    apt-get install -y python3 python3-venv python3-pip
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# torch, CPU only, from PyTorch's own index: PyPI's torch for Linux is the CUDA build (several GB)
"$VENV/bin/python" -m pip install {shlex.quote(torch_requirement)} --index-url {CPU_INDEX}
# what gradegrad needs besides torch, and the extras of this rubric's exercises
# (gradegrad itself is lib/gradegrad in this bundle: nothing to download)
"$VENV/bin/python" -m pip install {installs}
"""


def run_autograder(args: list[str]) -> str:
    flags = " \\\n    ".join(args)
    return f"""#!/usr/bin/env bash
# Gradescope runs this for each submission (written by `gradegrad gradescope bundle`): it grades the
# upload folder and writes results.json. Exit code 0 once results.json is written, whatever the score.
set -uo pipefail
AUTOGRADER="${{AUTOGRADER:-/autograder}}"
SOURCE="$AUTOGRADER/source"
PYTHON="${{GRADEGRAD_PYTHON:-$AUTOGRADER/gradegrad-venv/bin/python}}"
export PYTHONPATH="$SOURCE/lib"
cd "$SOURCE"
exec "$PYTHON" -m gradegrad gradescope \\
    --submission "$AUTOGRADER/submission" \\
    --results "$AUTOGRADER/results/results.json" \\
    {flags}
"""


def grading_args(spec: BundleSpec, rubric_file: str, folders: list[str]) -> list[str]:
    args = ["--rubric", rubric_file]
    for folder in folders:
        args += ["--exercises", folder]
    for ex in spec.exercise:
        args += ["--exercise", ex]
    if spec.module:
        args += ["--module", spec.module]
    args += ["--seed", str(spec.seed), "--timeout", f"{spec.timeout:g}",
             "--submission-timeout", f"{spec.submission_timeout:g}", "--load-timeout", f"{spec.load_timeout:g}",
             "--memory", spec.memory, "--device", "cpu"]
    pairs = [args[i:i + 2] for i in range(0, len(args), 2)]
    return [" ".join(shlex.quote(a) for a in pair) for pair in pairs]


# --------------------------------------------------------------------------- the archive


def _package_files() -> dict[str, bytes]:
    """This gradegrad's source and built-in data, as lib/gradegrad/...."""
    root = Path(gradegrad.__file__).resolve().parent
    files = {f"lib/gradegrad/{p.relative_to(root).as_posix()}": p.read_bytes()
             for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts and "data" not in
             p.relative_to(root).parts}
    for kind, folder in (("exercises", BUILTIN_EXERCISES), ("rubrics", BUILTIN_RUBRICS)):
        for path in sorted(folder.glob("*.yaml")):
            files[f"lib/gradegrad/data/{kind}/{path.name}"] = path.read_bytes()
    return files


def bundle_files(spec: BundleSpec) -> dict[str, tuple[bytes, int]]:
    """Every file of the zip: path -> (bytes, mode)."""
    files = {name: (data, REGULAR) for name, data in _package_files().items()}
    folders = []
    for i, folder in enumerate(spec.course_exercises, start=1):
        target = f"course/exercises/{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', folder.resolve().name) or 'exercises'}"
        folders.append(target)
        for path in sorted(folder.glob("*.yaml")):
            files[f"{target}/{path.name}"] = (path.read_bytes(), REGULAR)
    rubric_file = f"course/rubrics/{Path(spec.rubric.path).name}"
    files[rubric_file] = (Path(spec.rubric.path).read_bytes(), REGULAR)
    pins = requirements(extras_for(spec.rubric, spec.catalog))
    files["setup.sh"] = (setup_sh(pins, torch_pin()).encode(), EXECUTABLE)
    files["run_autograder"] = (run_autograder(grading_args(spec, rubric_file, folders)).encode(), EXECUTABLE)
    return files


def zip_bytes(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            data, mode = files[name]
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: tuple[str, ...]
    run_autograder: str
    requirements: tuple[str, ...]


def write_bundle(spec: BundleSpec, output: Path) -> Bundle:
    """Write the autograder zip; returns what is in it, for the command's message."""
    files = bundle_files(spec)
    write_bytes_atomic(output, zip_bytes(files))
    return Bundle(output, tuple(sorted(files)), files["run_autograder"][0].decode(),
                  tuple(requirements(extras_for(spec.rubric, spec.catalog))))
