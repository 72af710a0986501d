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

import copy
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, distribution_to_json
from optuna.storages import InMemoryStorage, JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["BufferedJournal", "JournalMirror"]

JSONSerializable = Any


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


_MISSING = object()
# JournalOperation's codes in Optuna's journal file format
_SET_STUDY_USER_ATTR, _SET_STUDY_SYSTEM_ATTR, _CREATE_TRIAL = 2, 3, 4


def _utc(d: datetime | None) -> str | None:
    """A datetime as Optuna's journal writes it (a naive one is local time)."""
    return None if d is None else d.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _snapshot(t: FrozenTrial) -> FrozenTrial:
    """A copy of ``t`` that later writes cannot reach: Optuna's ``Trial`` fills the params and
    distributions of the in-memory storage's own FrozenTrial in place."""
    c = copy.copy(t)
    c.params, c.distributions = dict(t.params), dict(t.distributions)
    c.user_attrs, c.system_attrs = dict(t.user_attrs), dict(t.system_attrs)
    c.intermediate_values = dict(t.intermediate_values)
    return c


class JournalMirror(InMemoryStorage):
    """An in-memory storage that is the working copy of a journal storage.

    Optuna's journal storage applies every write by replaying it, checking each parameter's
    distribution against the study's and copying the trial: a trial's dozen writes cost more
    than pricing it. A search that is the journal's only writer (a local run dir, under the run
    lock) reads and writes this mirror at in-memory speed instead; :meth:`flush` copies what
    changed to the journal (a new trial as one record, an updated one as its changed fields)
    and then flushes the journal's :class:`BufferedJournal`: one append and one fsync.

    On open the mirror is seeded from the journal, study by study and trial by trial in
    order, so trial ids and numbers are the journal's. Study creation and deletion go to both
    at once; a study attribute goes to the mirror at once and, as its journal record, to the
    buffered journal (durable at the next flush)."""

    def __init__(self, journal: JournalStorage, backend: BufferedJournal | None = None) -> None:
        super().__init__()
        self.journal = journal
        self.backend = backend
        self._study_jid: dict[int, int] = {}  # mirror study id -> journal study id
        self._trial_jid: dict[int, int] = {}  # mirror trial id -> journal trial id
        self._written: dict[int, FrozenTrial] = {}  # the journal's copy of each trial
        self._dirty: set[int] = set()  # mirror trial ids changed since the last flush
        self._trial_study: dict[int, int] = {}  # mirror trial id -> mirror study id
        self._dist_cache: dict[tuple[str, Any], str] = {}  # (param, choices) -> its JSON
        self._worker_id = f"nas-mirror-{uuid.uuid4()}"  # the records' writer, for Optuna
        for s in journal.get_all_studies():
            sid = super().create_new_study(s.directions, s.study_name)
            self._study_jid[sid] = s._study_id
            for k, v in s.user_attrs.items():
                super().set_study_user_attr(sid, k, v)
            for k, v in s.system_attrs.items():
                super().set_study_system_attr(sid, k, v)
            for t in journal.get_all_trials(s._study_id, deepcopy=False):
                tid = super().create_new_trial(sid, template_trial=t)
                self._trial_study[tid] = sid
                self._trial_jid[tid] = t._trial_id
                self._written[tid] = _snapshot(t)

    # study-level writes: to both at once
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        sid = super().create_new_study(directions, study_name)
        self._study_jid[sid] = self.journal.create_new_study(
            directions, super().get_study_name_from_id(sid)
        )
        return sid

    def delete_study(self, study_id: int) -> None:
        super().delete_study(study_id)
        self._dirty -= {t for t, s in self._trial_study.items() if s == study_id}
        self.journal.delete_study(self._study_jid.pop(study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        super().set_study_user_attr(study_id, key, value)
        if self.backend is None:
            self.journal.set_study_user_attr(self._study_jid[study_id], key, value)
        else:
            self._study_attr_record(_SET_STUDY_USER_ATTR, "user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        super().set_study_system_attr(study_id, key, value)
        if self.backend is None:
            self.journal.set_study_system_attr(self._study_jid[study_id], key, value)
        else:
            self._study_attr_record(_SET_STUDY_SYSTEM_ATTR, "system_attr", study_id, key, value)

    def _study_attr_record(
        self, op_code: int, field: str, study_id: int, key: str, value: Any
    ) -> None:
        """A study attribute as the record Optuna's journal storage writes for it, appended to
        the :class:`BufferedJournal` (durable at the next flush): going through the storage
        would first replay every record written since its last use (NSGA-II sets one such
        attribute per generation, which made the replay a fifth of a cost-only search)."""
        assert self.backend is not None
        sid = self._study_jid[study_id]
        log = {"op_code": op_code, "worker_id": self._worker_id, "study_id": sid}
        self.backend.append_logs([{**log, field: {key: value}}])

    # trial-level writes: in memory, copied on flush
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        tid = super().create_new_trial(study_id, template_trial)
        self._trial_study[tid] = study_id
        self._dirty.add(tid)
        return tid

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._dirty.add(trial_id)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        self._dirty.add(trial_id)
        return changed

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._dirty.add(trial_id)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        super().set_trial_user_attr(trial_id, key, value)
        self._dirty.add(trial_id)

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        super().set_trial_system_attr(trial_id, key, value)
        self._dirty.add(trial_id)

    def flush(self) -> None:
        """Copy every trial changed since the last flush to the journal, in creation order
        (so the journal numbers them as the mirror does), then make it durable.

        A new trial goes to the file as the record Optuna's ``create_new_trial`` writes for a
        template trial, appended straight to the :class:`BufferedJournal`: the journal storage
        reads it back only when it is next used (to update a trial already on file, or a
        study-level write), not once per trial (replaying each record cost as much as
        pricing the trial). Without a buffered backend it goes through the storage."""
        for tid in sorted(self._dirty):
            t = super().get_trial(tid)
            if tid not in self._written:
                sid = self._study_jid[self._trial_study[tid]]
                if self.backend is None:
                    self._trial_jid[tid] = self.journal.create_new_trial(sid, template_trial=t)
                else:
                    self.backend.append_logs([self._create_record(sid, t)])
            else:
                self._update(self._journal_trial_id(tid), self._written[tid], t)
            self._written[tid] = _snapshot(t)
        self._dirty.clear()
        if self.backend is not None:
            self.backend.flush()

    def _journal_trial_id(self, tid: int) -> int:
        """The journal's id of mirror trial ``tid`` (found by study and number, the journal
        having read the records written since its last use)."""
        jid = self._trial_jid.get(tid)
        if jid is None:
            number = super().get_trial(tid).number
            sid = self._study_jid[self._trial_study[tid]]
            jid = self.journal.get_trial_id_from_study_id_trial_number(sid, number)
            self._trial_jid[tid] = jid
        return jid

    def _create_record(self, journal_sid: int, t: FrozenTrial) -> dict[str, Any]:
        """The journal record of a new trial: Optuna's CREATE_TRIAL with ``t`` as template
        (the same fields and forms; a test reads such a file back with Optuna's own storage).
        The JSON of each parameter's distribution is made once per distinct distribution."""
        log: dict[str, Any] = {
            "op_code": _CREATE_TRIAL,
            "worker_id": self._worker_id,
            "study_id": journal_sid,
            "state": t.state,
        }
        if t.values is not None and len(t.values) > 1:
            log["value"], log["values"] = None, t.values
        else:
            log["value"], log["values"] = t.value, None
        log["datetime_start"] = _utc(t.datetime_start)
        if t.datetime_complete:
            log["datetime_complete"] = _utc(t.datetime_complete)
        log["distributions"] = {k: self._dist_json(k, d) for k, d in t.distributions.items()}
        log["params"] = {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()}
        log["user_attrs"] = t.user_attrs
        log["system_attrs"] = t.system_attrs
        log["intermediate_values"] = t.intermediate_values
        return log

    def _dist_json(self, name: str, dist: BaseDistribution) -> str:
        key = (name, dist.choices) if isinstance(dist, CategoricalDistribution) else None
        if key is None:
            return distribution_to_json(dist)
        cached = self._dist_cache.get(key)
        if cached is None:
            cached = self._dist_cache[key] = distribution_to_json(dist)
        return cached

    def _update(self, jid: int, old: FrozenTrial, new: FrozenTrial) -> None:
        """Write to the journal's trial ``jid`` what differs between ``old`` and ``new``."""
        j = self.journal
        for k, v in new.params.items():
            if k not in old.params:
                dist = new.distributions[k]
                j.set_trial_param(jid, k, dist.to_internal_repr(v), dist)
        for k, v in new.user_attrs.items():
            if old.user_attrs.get(k, _MISSING) != v:
                j.set_trial_user_attr(jid, k, v)
        for k, v in new.system_attrs.items():
            if old.system_attrs.get(k, _MISSING) != v:
                j.set_trial_system_attr(jid, k, v)
        for step, value in new.intermediate_values.items():
            if old.intermediate_values.get(step, _MISSING) != value:
                j.set_trial_intermediate_value(jid, step, value)
        if new.state != old.state or new.values != old.values:
            j.set_trial_state_values(jid, new.state, new.values)
