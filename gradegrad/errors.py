"""The one error hierarchy of gradegrad, and the exit codes the CLI maps it to.

Only the CLI catches `GradegradError`; messages are written for the person at the keyboard and
name the file or field at fault.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every graded check passed
    FAILED = 1  # something was graded and failed
    USAGE = 2  # usage or configuration error


class GradegradError(Exception):
    """A usage or configuration error: shown as one line, exit code 2."""

    exit_code = ExitCode.USAGE


class ManifestError(GradegradError):
    """An exercise manifest or rubric file is malformed."""

    def __init__(self, path: object, field: str, problem: str, line: int | None = None) -> None:
        self.path, self.field, self.problem = str(path), field, problem
        self.line = line  # 1-based line in the file, when known (`gradegrad validate` finds the rest)
        where = f"{self.path}: {field}: " if field else f"{self.path}: "
        super().__init__(where + problem)


class UsageError(GradegradError):
    """The command line asks for something that does not exist or cannot be done."""


class SubmissionError(GradegradError):
    """The submission path itself cannot be graded (missing, not a file, not readable)."""


class ConfigError(GradegradError):
    """A project configuration file (gradegrad.toml, [tool.gradegrad]), a roster or an adjustments
    file is malformed; the message names the file and the key, row or column."""
