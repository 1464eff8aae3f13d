"""Submissions, rubrics, exercises and options as plain data, for a grader on another machine.

A Dask worker (`cluster.py`) may share nothing with the TA's machine but gradegrad itself: not
the submissions folder, not the course's exercise folders. What it needs travels as plain data
(dicts, lists, strings, numbers, and a submission's file as bytes) and is rebuilt there into the
same frozen dataclasses, field by field, from their type annotations. Nothing here pickles,
imports or evaluates anything it is given.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from gradegrad.catalog import Exercise, Rubric
from gradegrad.options import Options
from gradegrad.submissions import SubmissionSource

Plain = Any  # None, bool, int, float, str, bytes, or lists and str-keyed dicts of those


def to_plain(value: Any) -> Plain:
    """A dataclass (and what it holds) as dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    raise TypeError(f"gradegrad cannot send a {type(value).__name__} to a worker as plain data")


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_plain(kind: Any, data: Plain) -> Any:
    """Rebuild a value of type `kind` (a dataclass, tuple, union, scalar) from `to_plain`'s data."""
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return kind(**{f.name: from_plain(hints[f.name], data[f.name]) for f in dataclasses.fields(kind)
                       if f.init and f.name in data})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data))
    if origin in (typing.Union, types.UnionType):
        return _from_union(args, data)
    if origin in (dict, Mapping) or kind in (dict, Mapping):
        value = args[1] if len(args) == 2 else Any
        return {k: from_plain(value, v) for k, v in data.items()}
    if kind is Path:
        return Path(data)
    return data  # a scalar (or a Literal of them), as it came: an int stays an int


def _from_union(members: tuple, data: Plain) -> Any:
    """`X | None`, `float | int`, `Efficiency | None`: the member that fits the data's shape."""
    if data is None:
        return None
    for member in members:
        if (isinstance(data, dict) and dataclasses.is_dataclass(member)) or \
                (isinstance(data, list) and typing.get_origin(member) is tuple):
            return from_plain(member, data)
    return data


# --------------------------------------------------------------------------- the batch's grading


def grading_context(rubric: Rubric, catalog: Mapping[str, Exercise], options: Options) -> dict:
    """Everything but the submission, as data: the rubric, every exercise (in catalog order), options."""
    return {"rubric": to_plain(rubric), "exercises": [to_plain(ex) for ex in catalog.values()],
            "options": to_plain(options)}


def from_context(data: dict) -> tuple[Rubric, dict[str, Exercise], Options]:
    exercises = [from_plain(Exercise, ex) for ex in data["exercises"]]
    return (from_plain(Rubric, data["rubric"]), {ex.id: ex for ex in exercises},
            from_plain(Options, data["options"]))


# --------------------------------------------------------------------------- one submission


def pack_submission(source: SubmissionSource) -> dict:
    """The submission as data: what the child loads (the file's bytes, or the generated module's
    text) and what the report needs (names, segments, notes). Raises OSError if the file is gone."""
    data = to_plain(dataclasses.replace(source, load=None))
    if source.load is not None:
        data["file"] = {"name": source.load.name, "bytes": source.load.read_bytes(), "label": str(source.load)}
    return data


def unpack_submission(data: dict, scratch: Path) -> tuple[SubmissionSource, tuple[str, str] | None]:
    """The submission again, its file written under `scratch`; and (scratch path, the path the
    TA's machine names it by), to put back in the report."""
    source = from_plain(SubmissionSource, {k: v for k, v in data.items() if k != "file"})
    file = data.get("file")
    if file is None:
        return source, None
    loaded = scratch / Path(file["name"]).name
    loaded.write_bytes(file["bytes"])
    return dataclasses.replace(source, load=loaded), (str(loaded), file["label"])


def replace_text(data: Plain, old: str, new: str) -> Plain:
    """`data` with `old` replaced by `new` in every string (a report's paths, as `to_dict` gives it)."""
    if isinstance(data, str):
        return data.replace(old, new)
    if isinstance(data, list):
        return [replace_text(v, old, new) for v in data]
    if isinstance(data, tuple):
        return tuple(replace_text(v, old, new) for v in data)
    if isinstance(data, dict):
        return {k: replace_text(v, old, new) for k, v in data.items()}
    return data

