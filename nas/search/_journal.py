"""A journal backend that holds writes in memory until told to write them, in one append.

Optuna's journal file backend takes its lock, appends and fsyncs on every write: a trial is
a dozen writes (its creation, each parameter, each attribute, its values), about 0.5 ms each.
A search that is the only writer of its journal (a local run dir, under the run lock) wraps the
file backend in :class:`BufferedJournal` and calls :meth:`BufferedJournal.flush` where
durability matters: after asking a batch whose trials run the proxy (so a kill leaves them
RUNNING, to be queued again), after telling a proxy result, and at the end of every batch.
A trial priced from the table alone is told in memory and written with the rest of its batch;
a kill before that loses at most one batch of such trials, which the next start asks again
(they cost microseconds to recompute). Reads never touch the file once it has been read: no
other process writes to it.

Importing this module imports Optuna.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

__all__ = ["BufferedJournal"]


class BufferedJournal(BaseJournalBackend):
    """A :class:`JournalFileBackend` whose appends wait in memory for :meth:`flush`.

    Only for a journal no other process writes while this one is open: log numbers of the
    held records assume the file does not grow underneath."""

    def __init__(self, inner: JournalFileBackend) -> None:
        self.inner = inner
        self.held: list[dict[str, Any]] = []
        self.on_file = sum(1 for _ in inner.read_logs(0))  # records already in the file

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        if log_number_from < self.on_file:
            yield from self.inner.read_logs(log_number_from)
            log_number_from = self.on_file
        yield from self.held[log_number_from - self.on_file :]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.held.extend(logs)

    def flush(self) -> None:
        """Write the held records to the file: one lock, one append, one fsync."""
        if self.held:
            self.inner.append_logs(self.held)
            self.on_file += len(self.held)
            self.held = []
