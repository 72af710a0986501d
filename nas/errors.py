"""Errors that describe a user mistake. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class NasError(Exception):
    """Base class for every error caused by user input (files, flags, tables)."""


class SpaceError(NasError, ValueError):
    """A search-space file (or an arch file) is malformed.

    ``where`` is the YAML path of the offending value, e.g. ``slots.up[2].ops[1].kernel``;
    ``source`` is the file it came from, when known.
    """

    def __init__(self, where: str, message: str, source: str | None = None) -> None:
        self.where = where
        self.message = message
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        loc = f"{self.where}: " if self.where else ""
        return f"{prefix}{loc}{self.message}"

    def with_source(self, source: str) -> SpaceError:
        return SpaceError(self.where, self.message, source)
