"""Errors with one-line messages that name the file, line or field at fault.

The CLI prints ``str(err)`` on one line and exits with code 2 for any
SynthscaleError; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class SynthscaleError(Exception):
    """Base class for every error synthscale reports to a user."""

    exit_code = 2


class InputError(SynthscaleError):
    """Bad input data: a malformed corpus line, an unreadable file, a wrong format."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class MissingFileError(InputError, FileNotFoundError):
    """A file a stage needs is not there (also a FileNotFoundError, for code that catches that)."""


class DamagedFileError(InputError, ValueError):
    """A file is there but cannot be read as what it should be: truncated, corrupt, wrong format
    (also a ValueError, for code that catches that)."""


class ConfigError(SynthscaleError):
    """A config or spec that fails validation (unknown field, value out of range)."""


class MissingDependencyError(SynthscaleError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"this feature needs '{module}': install synthscale[{extra}]")


class RunError(SynthscaleError):
    """A training/eval run failed (diverged, crashed)."""
