"""The Optuna side of a run: storage, the study (created once, labelled), each worker's sampler.

Optuna is imported inside the functions: reading a config or a run dir does not need it.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.results import METRICS, Constraint, Objective, RunInfo
from nas.search._config import SearchConfig
from nas.search._registry import make_sampler

if TYPE_CHECKING:
    import optuna


__all__ = [
    "clear_stale_journal_lock",
    "create_study",
    "journal_path",
    "load_worker_study",
    "open_run_storage",
    "open_run_study",
    "open_storage",
    "repair_journal",
    "sampler_of",
    "set_constraints",
]

JOURNAL_LOCK_SUFFIX = ".lock"  # Optuna's JournalFileSymlinkLock: <journal>.lock
# The trial system attribute that holds constraint values as a list, in the study's budget
# order: what Optuna's samplers write from ``constraints_func``
# (optuna.study._constrained_optimization._CONSTRAINTS_KEY), what ``FrozenTrial.constraints``
# reads, and the only place optuna-dashboard (0.21) looks. ``trial.set_constraint`` writes one
# ``constraints:<name>`` key per value, which the dashboard shows as empty.
CONSTRAINTS_ATTR = "constraints"


def journal_path(spec: str, run_dir: Path) -> Path | None:
    """The journal file of a run.json storage spec, or None for a database URL."""
    if not spec.startswith("journal:"):
        return None
    path = Path(spec[len("journal:") :])
    return path if path.is_absolute() else run_dir / path


def repair_journal(path: Path) -> str:
    """Make a journal whose last write was torn (a power cut, a full disk) readable again.

    Optuna appends one JSON record per line. A last line without its newline is either a
    complete record (its newline is added) or a partial one: the partial bytes are moved to
    ``<journal>.torn`` (appended, never dropped) and the file is cut back to the last complete
    record, so the next append starts a line of its own. A trial whose completion was in the
    torn record is still RUNNING in the journal: the resume re-queues its arch. Returns what
    was done ("" when the file was intact).
    """
    if not path.is_file():
        return ""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return ""
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        json.loads(tail)
    except ValueError:
        torn = path.with_name(path.name + ".torn")
        with torn.open("ab") as f:
            f.write(tail + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with path.open("r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        return (
            f"{path.name}: its last record was cut off mid-write ({len(tail)} bytes); they are "
            f"kept in {torn.name} and the run goes on from the last complete record"
        )
    with path.open("ab") as f:
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return f"{path.name}: its last record had lost its newline; restored"


def clear_stale_journal_lock(path: Path) -> bool:
    """Remove ``<journal>.lock`` left by a killed process. Only for a caller that knows no
    other process uses the journal (the run lock's holder, on local storage): Optuna would
    otherwise wait 30 s before breaking it."""
    lock = path.with_name(path.name + JOURNAL_LOCK_SUFFIX)
    if lock.is_symlink() or lock.exists():
        lock.unlink(missing_ok=True)
        return True
    return False


def open_storage(spec: str, run_dir: Path) -> optuna.storages.BaseStorage:
    """An Optuna storage for a run.json storage spec (a journal relative to ``run_dir``, an
    absolute journal path, or an RDB URL)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(spec, run_dir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if spec.startswith("postgresql") and "+" not in spec.split(":", 1)[0]:
        from nas.extras import require

        require("psycopg2", purpose=f"search.storage={spec.split(':', 1)[0]}://...")
    try:
        storage = optuna.storages.RDBStorage(spec)
    except Exception as e:  # bad URL, server down, driver missing
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasError(
            f"cannot open storage {spec!r}: {first} (search.storage takes sqlite:///file.db, "
            "postgresql://user@host:port/db, or a .journal file path)"
        ) from None
    if spec.startswith("sqlite"):
        _sqlite_wal(storage)
    return storage


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_wal(storage: optuna.storages.RDBStorage) -> None:
    """Open an SQLite study file in write-ahead-log mode with ``synchronous=NORMAL``: a commit
    appends to the log without an fsync, where SQLite's default (a rollback journal, ``FULL``)
    syncs two files per commit and an Optuna trial is a dozen commits. A killed process loses
    nothing committed; a power cut or OS crash may lose the last commits (the file stays
    consistent), which the next start asks again. Readers in other processes (optuna-dashboard,
    local workers) work as before."""
    from sqlalchemy import event

    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # connections opened while creating the schema: reopened


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    objectives: Sequence[Objective],
    where: str,
    constraints: Sequence[Constraint] = (),
) -> optuna.Study:
    """Create or load the study, labelled for Optuna and optuna-dashboard (:func:`label_study`).
    Retried: concurrent first calls on an empty PostgreSQL database race on the schema."""
    import optuna

    directions: list[Any] = [o.direction for o in objectives]
    last: Exception | None = None
    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                directions=directions,
                load_if_exists=True,
            )
        except Exception as e:
            if isinstance(e, ValueError) and "directions" in str(e).lower():
                raise NasError(
                    f"study {name!r} in {where} has other objectives; use another search.study"
                ) from None
            last = e
            time.sleep(0.2 * (attempt + 1))
            continue
        label_study(study, objectives, constraints)
        return study
    raise NasError(f"cannot create study {name!r}: {last}")


def study_labels(
    objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> dict[str, Any]:
    """The study's user attributes: its objectives and budgets with their columns and units
    (``constraints[i]`` is what a trial's ``constraints["i"]`` bounds, as a fraction of its
    budget) and the unit of every metric in a trial's ``costs`` attribute."""
    return {
        "objectives": [
            {"name": o.name, "column": o.column, "unit": o.unit, "direction": o.direction}
            for o in objectives
        ],
        "constraints": [
            {
                "name": c.name,
                "column": c.column,
                "budget": c.budget,
                "unit": c.unit,
                "value": f"({c.column} - budget) / budget, <= 0 feasible",
            }
            for c in constraints
        ],
        "units": dict(METRICS),
    }


def label_study(
    study: optuna.Study, objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> None:
    """Metric names (optuna-dashboard's axis titles: "latency (s)") and the study's user
    attributes (:func:`study_labels`); each is written only when it differs (every write is a
    journal record)."""
    import optuna

    labels = [o.label for o in objectives]
    if study.metric_names != labels:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, unchanged since
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(labels)
    have = study.user_attrs
    for key, value in study_labels(objectives, constraints).items():
        if have.get(key) != value:
            study.set_user_attr(key, value)


def set_constraints(trial: optuna.Trial, values: Sequence[float]) -> None:
    """Store a trial's constraint values (slacks, in the study's budget order) where Optuna's
    samplers and optuna-dashboard read them: the ``constraints`` system attribute, one list
    (one journal record); nothing when the run has no budgets."""
    if not values:
        return
    trial.storage.set_trial_system_attr(  # Trial has no public id; _trial_id is what it uses
        trial._trial_id, CONSTRAINTS_ATTR, [float(v) for v in values]
    )


def sampler_of(cfg: SearchConfig, worker: int) -> optuna.samplers.BaseSampler:
    """Worker ``worker``'s sampler, seeded ``seed + 1000 * worker``. Constraints reach it
    through the trial's ``constraints`` system attribute (:func:`set_constraints`)."""
    return make_sampler(cfg.sampler.name, cfg.sampler.options, cfg.search.seed + 1000 * worker)


def load_worker_study(info: RunInfo, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    import optuna

    storage = open_storage(info.storage, info.run_dir)
    return optuna.load_study(study_name=info.study, storage=storage, sampler=sampler)


def open_run_storage(
    info: RunInfo, buffered: bool
) -> tuple[optuna.storages.BaseStorage, Callable[[], None]]:
    """The run's storage, and what makes its writes durable. ``buffered`` on the run dir's
    own journal (which then only this process writes, under the run lock): the search works
    on an in-memory copy and writes reach the file at the returned flush
    (:class:`nas.search._journal.JournalMirror` over a ``BufferedJournal``);
    otherwise every write is durable at once and flush does nothing."""
    path = journal_path(info.storage, info.run_dir)
    local = path is not None and not Path(info.storage[len("journal:") :]).is_absolute()
    if not buffered or path is None or not local:
        return open_storage(info.storage, info.run_dir), lambda: None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.search._journal import BufferedJournal, JournalMirror

    backend = BufferedJournal(JournalFileBackend(str(path)))
    mirror = JournalMirror(JournalStorage(backend), backend)
    return mirror, mirror.flush


def open_run_study(run_dir: str | Path) -> optuna.Study:
    """The Optuna study of a run dir (for reading; also what optuna-dashboard opens)."""
    import optuna

    info = RunInfo.load(run_dir)
    storage = open_storage(info.storage, info.run_dir)
    try:
        return optuna.load_study(study_name=info.study, storage=storage)
    except KeyError:
        raise NasError(f"{run_dir}: study {info.study!r} not found in its storage") from None
