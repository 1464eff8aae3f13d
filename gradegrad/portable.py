"""Submissions, rubrics, exercises and options as plain data, for a grader on another machine.

A Dask worker (`cluster.py`) may share nothing with the TA's machine but gradegrad itself: not
the submissions folder, not the course's exercise folders. What it needs travels as plain data
(dicts, lists, strings, numbers, and a submission's file as bytes) and is rebuilt there into the
same frozen dataclasses, field by field, from their type annotations. Nothing here pickles,
imports or evaluates anything it is given.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from gradegrad.catalog import Exercise, Rubric
from gradegrad.options import Options
from gradegrad.intake import SubmissionSource, generated_code

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
                (isinstance(data, list) and typing.get_origin(member) is tuple) or \
                (isinstance(data, str) and member is Path):
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
    """The submission as data: what the child loads (the student's file as bytes, with its path
    under the submissions folder, or the generated module's text, built here) and what the
    report needs (names, segments, notes). Raises OSError or a GradegradError if the files are
    gone or changed, as grading them here would."""
    data = to_plain(source)
    if source.problem is None and source.load is not None:
        data["file"] = {"path": str(source.load.relative_to(source.origin.parent)), "bytes": source.load.read_bytes()}
    elif source.generated:
        data["code"] = generated_code(source)
    return data


def unpack_submission(data: dict, scratch: Path) -> tuple[SubmissionSource, str | None, tuple[str, str] | None]:
    """(source, generated code, paths): the submission again; a student's file is written under
    `scratch` as it lay under the submissions folder, and `paths` (scratch's prefix, the folder's)
    turns the paths of the report graded from it back into the TA's machine's."""
    source = from_plain(SubmissionSource, {k: v for k, v in data.items() if k not in ("file", "code")})
    file = data.get("file")
    if file is None:
        return source, data.get("code"), None
    relative = Path(file["path"])
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"a submission's file must lie under its folder, not at {relative}")
    loaded = scratch / relative
    loaded.parent.mkdir(parents=True, exist_ok=True)
    loaded.write_bytes(file["bytes"])
    folder = str(source.origin.parent)
    here = "" if folder == "." else folder.rstrip(os.sep) + os.sep
    return (dataclasses.replace(source, origin=scratch / source.origin.name, load=loaded), None,
            (str(scratch).rstrip(os.sep) + os.sep, here))


def replace_in_json(text: str, old: str, new: str) -> str:
    """A report's JSON text (`Report.json_line`) with `old` replaced by `new` in every string (the
    paths of a report graded from a copy, `unpack_submission`'s `paths`): the replacement is made
    in the text, each string as JSON writes it, which is what replacing in the report's strings
    and writing them again would give, at a thirtieth of its cost. `old` is an absolute path: its
    JSON form begins with `/`, which never begins or continues an escape sequence."""
    return text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
