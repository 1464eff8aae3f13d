"""The project's configuration: `gradegrad.toml`, or `[tool.gradegrad]` in `pyproject.toml`.

Found as pytest finds its ini file: from the working directory upwards, the first folder holding
a `gradegrad.toml` (any content) or a `pyproject.toml` with a `[tool.gradegrad]` table; the search
stops at the folder that holds `.git` (the repository's root, checked last) or at the filesystem
root. It is never read from a submission's folder. Paths in it are relative to the file's folder.
Options given on the command line win over it; folders (`exercises`, `rubrics`) add up.

Keys (docs/course.md): submission (check's), submissions (grade's folder), rubric, exercises,
rubrics, module, seed, device, timeout, submission-timeout, memory, roster, adjustments,
assignment, out, jobs, load-timeout, isolation, cluster.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gradegrad.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

CONFIG_FILE = "gradegrad.toml"
PYPROJECT = "pyproject.toml"

# key: (expected type, what an error says is expected)
PATH, PATHS, TEXT, INT, NUMBER = "path", "paths", "text", "int", "number"
KEYS: dict[str, str] = {
    "submission": PATH, "submissions": PATH, "rubric": TEXT, "exercises": PATHS, "rubrics": PATHS, "module": TEXT, "seed": INT,
    "device": TEXT, "timeout": NUMBER, "submission-timeout": NUMBER, "memory": TEXT, "roster": PATH,
    "adjustments": PATH, "assignment": TEXT, "out": PATH, "jobs": INT, "load-timeout": NUMBER, "isolation": TEXT,
    "cluster": TEXT,
}
EXPECTED = {PATH: "a path (a string)", PATHS: "a list of folder paths", TEXT: "a string",
            INT: "an integer", NUMBER: "a number"}
DEFAULTS: dict[str, Any] = {"seed": 0, "device": "cpu", "timeout": 30.0, "submission-timeout": 600.0,
                            "memory": "4G", "out": Path("grades"), "load-timeout": 60.0,
                            "isolation": "auto"}


@dataclass(frozen=True)
class ProjectConfig:
    """What the configuration file says, keys normalised (`submission_timeout` is `submission-timeout`)
    and paths made absolute; `path` is None when there is no file."""

    path: Path | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def _has_table(pyproject: Path) -> bool:
    """Whether a pyproject.toml has [tool.gradegrad]; one that cannot be parsed is reported."""
    return "gradegrad" in _read_toml(pyproject).get("tool", {})


def find_config(start: Path) -> Path | None:
    """The nearest configuration file from `start` upwards (see the module's docstring)."""
    folder = start.resolve()
    while True:
        if (folder / CONFIG_FILE).is_file():
            return folder / CONFIG_FILE
        if (folder / PYPROJECT).is_file() and _has_table(folder / PYPROJECT):
            return folder / PYPROJECT
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def _read_toml(path: Path) -> dict:
    if tomllib is None:
        raise ConfigError(f"{path}: reading it needs Python 3.11 or the tomli package (pip install tomli)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _table(path: Path) -> tuple[dict, str]:
    """The gradegrad table of the file, and how errors name its keys."""
    data = _read_toml(path)
    if path.name != PYPROJECT:
        return data, ""
    table = data.get("tool", {}).get("gradegrad", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: tool.gradegrad: expected a table ([tool.gradegrad])")
    return table, "tool.gradegrad."


def _value(path: Path, name: str, kind: str, value: Any) -> Any:
    """One value checked against its type, paths made relative to the file's folder."""
    ok = {PATH: isinstance(value, str) and value.strip() != "",
          PATHS: isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
          TEXT: isinstance(value, str) and value.strip() != "",
          INT: isinstance(value, int) and not isinstance(value, bool),
          NUMBER: isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if not ok:
        raise ConfigError(f"{path}: {name}: expected {EXPECTED[kind]}, got {value!r}")
    base = path.parent
    if kind == PATH:
        return base / value
    if kind == PATHS:
        return tuple(base / v for v in ([value] if isinstance(value, str) else value))
    return float(value) if kind == NUMBER else value


def load_config(path: Path) -> ProjectConfig:
    """Read and check a configuration file; every mistake is one line naming the file and the key."""
    table, prefix = _table(path)
    values: dict[str, Any] = {}
    for raw, value in table.items():
        key = str(raw).replace("_", "-")
        if key not in KEYS:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{path}: {prefix}{raw}: unknown key ({hint})")
        values[key] = _value(path, f"{prefix}{raw}", KEYS[key], value)
    rubric = values.get("rubric")
    if isinstance(rubric, str) and (rubric.endswith((".yaml", ".yml")) or (path.parent / rubric).is_file()):
        values["rubric"] = str(path.parent / rubric)  # a file of the course, next to the config
    return ProjectConfig(path, values)


def project_config(start: Path | None = None) -> ProjectConfig:
    """The configuration that applies in `start` (default: the working directory), or an empty one."""
    found = find_config(Path.cwd() if start is None else start)
    return ProjectConfig() if found is None else load_config(found)


@dataclass(frozen=True)
class Settings:
    """A command's options after the command line and the configuration file are merged."""

    submission: Path | None = None
    submissions: Path | None = None
    rubric: str | None = None
    exercise: tuple[str, ...] = ()
    exercises: tuple[Path, ...] = ()
    rubrics: tuple[Path, ...] = ()
    module: str | None = None
    seed: int = 0
    device: str = "cpu"
    timeout: float = 30.0
    submission_timeout: float = 600.0
    load_timeout: float = 60.0
    isolation: str = "auto"
    memory: str = "4G"
    roster: Path | None = None
    adjustments: Path | None = None
    assignment: str | None = None
    out: Path = Path("grades")
    jobs: int | None = None
    cluster: str | None = None  # grade on Dask: a scheduler's address, or local:N
    config: Path | None = None  # the file the rest came from, if any


def merge(given: Mapping[str, Any], config: ProjectConfig) -> Settings:
    """The command line (`given`: a value, or None/empty when not given) over the configuration."""
    chosen: dict[str, Any] = {}
    for name in Settings.__dataclass_fields__:
        key = name.replace("_", "-")
        if name == "config":
            continue
        cli = given.get(name)
        if key in ("exercises", "rubrics"):  # folders to search: the file's, then the command line's
            chosen[name] = (*config.get(key, ()), *(cli or ()))
        elif name == "exercise":
            chosen[name] = tuple(cli or ())
        elif cli is not None and name in given:
            chosen[name] = cli
        elif key in config.values:
            chosen[name] = config.values[key]
        elif key in DEFAULTS:
            chosen[name] = DEFAULTS[key]
    return Settings(**chosen, config=config.path)


def settings(given: Mapping[str, Any], start: Path | None = None) -> Settings:
    """The settings of a command run in `start` (default: the working directory)."""
    return merge(given, project_config(start))
