"""The Optuna side of a run: storage, the study (created once, labelled), each worker's sampler.

Optuna is imported inside the functions: reading a config or a run dir does not need it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.results import Objective, RunInfo
from nas.search._config import SearchConfig
from nas.search._registry import make_sampler

if TYPE_CHECKING:
    import optuna


__all__ = ["create_study", "load_worker_study", "open_run_study", "open_storage", "sampler_of"]


def open_storage(spec: str, run_dir: Path) -> optuna.storages.BaseStorage:
    """An Optuna storage for a run.json storage spec (a journal relative to ``run_dir``, an
    absolute journal path, or an RDB URL)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if spec.startswith("journal:"):
        path = Path(spec[len("journal:") :])
        path = path if path.is_absolute() else run_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(spec)
    except Exception as e:  # bad URL, server down, driver missing
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NasError(
            f"cannot open storage {spec!r}: {first} (search.storage takes sqlite:///file.db, "
            "postgresql://user@host:port/db, or a .journal file path)"
        ) from None


def create_study(
    storage: optuna.storages.BaseStorage, name: str, objectives: Sequence[Objective], where: str
) -> optuna.Study:
    """Create or load the study; its objectives carry their names for optuna-dashboard.
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
        labels = [o.label for o in objectives]
        if study.metric_names != labels:  # optuna-dashboard's axis titles
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2, unchanged since
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(labels)
        return study
    raise NasError(f"cannot create study {name!r}: {last}")


def sampler_of(cfg: SearchConfig, worker: int) -> optuna.samplers.BaseSampler:
    """Worker ``worker``'s sampler, seeded ``seed + 1000 * worker``. Constraints reach it
    through ``trial.set_constraint``."""
    return make_sampler(cfg.sampler.name, cfg.sampler.options, cfg.search.seed + 1000 * worker)


def load_worker_study(info: RunInfo, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    import optuna

    storage = open_storage(info.storage, info.run_dir)
    return optuna.load_study(study_name=info.study, storage=storage, sampler=sampler)


def open_run_study(run_dir: str | Path) -> optuna.Study:
    """The Optuna study of a run dir (for reading; also what optuna-dashboard opens)."""
    import optuna

    info = RunInfo.load(run_dir)
    storage = open_storage(info.storage, info.run_dir)
    try:
        return optuna.load_study(study_name=info.study, storage=storage)
    except KeyError:
        raise NasError(f"{run_dir}: study {info.study!r} not found in its storage") from None
