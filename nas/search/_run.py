"""The search driver: find or make the run, hold its lock, run the workers, write the outputs.

A run dir (``experiments/runs/<time>-<name>/``) holds ``run.json`` (identity, storage, state,
settings), ``config.yaml`` (the resolved config), ``space.yaml`` (a copy of the space file),
the study storage (``study.journal`` by default), and after each invocation ``trials.csv``,
``pareto.csv`` and ``archs/<arch_id>.yaml`` (:mod:`nas.results` is their schema).

Re-running the same command finds the run by the identity of its config and space and resumes
it: trials left RUNNING by a killed process are marked FAIL and their arch is queued again, so
no completed trial is lost and none is run twice (an arch already evaluated in the study reuses
its values instead of running the proxy again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.results import RunInfo
from nas.search._config import SearchConfig, run_settings
from nas.search._outputs import (
    SearchResult,
    build_cost_model,
    run_constraints,
    table_provenance,
    write_outputs,
)
from nas.search._rundir import (
    find_run,
    new_run_dir,
    run_lock,
    storage_spec,
    utc_now,
    write_run_files,
)
from nas.search._study import create_study, open_storage
from nas.search._workers import count_states, done_count, recover_stale, run_workers
from nas.space import SearchSpace, load_space

__all__ = ["run_search"]


def _open_run(
    space: SearchSpace,
    cfg: SearchConfig,
    raw_config: dict[str, Any],
    resume: str | Path | None,
    new: bool,
) -> tuple[RunInfo, bool]:
    """The run: explicit (``resume``), found by identity, or new; and whether it existed."""
    identity = cfg.identity(space.hash)
    info: RunInfo | None = None
    if resume is not None:
        info = RunInfo.load(resume)
        if info.identity != identity:
            raise NasError(
                f"{resume} was made with another config or space; re-run with its own "
                f"config ({Path(resume) / 'config.yaml'}) or start a new run with --new"
            )
    elif not new:
        info = find_run(Path(cfg.search.runs_dir), identity)
    if info is not None:
        # same identity; the trial count may grow (a re-run with more trials extends it)
        atomic_write_text(info.run_dir / "config.yaml", yaml.safe_dump(raw_config, sort_keys=False))
        return info.save(trials=max(info.trials, cfg.search.trials), status="running"), True
    d = new_run_dir(Path(cfg.search.runs_dir), cfg.name or space.name)
    write_run_files(d, raw_config, space)
    info = RunInfo(
        d,
        identity,
        cfg.name or space.name,
        cfg.search.study or d.name,
        storage_spec(cfg),
        cfg.search.trials,
        utc_now(),
        "running",
        str(space.source),
    ).save()
    return info, False


def _is_local(storage: str) -> bool:
    """Storage only this run dir's lock holder uses (so RUNNING trials in it are stale)."""
    if storage.startswith("sqlite:"):
        return True
    return storage.startswith("journal:") and not Path(storage[len("journal:") :]).is_absolute()


def run_search(
    space_path: str | Path,
    cfg: SearchConfig,
    raw_config: dict[str, Any],
    *,
    resume: str | Path | None = None,
    new: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> SearchResult:
    """Run (or resume) a search; returns its outputs once the study has ``search.trials``
    finished trials, the time limit passed, or Ctrl-C. The run dir gets trials.csv,
    pareto.csv and archs/; draw its dashboard with ``nas.report.write_dashboard(run_dir)``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path)
    info, resumed = _open_run(space, cfg, raw_config, resume, new)
    d = info.run_dir
    with run_lock(d):
        # fail fast on a bad table before any worker starts; record its provenance and the
        # run's settings (the objectives and the resolved budgets) for its readers
        cost = build_cost_model(cfg, space)
        settings = run_settings(cfg, run_constraints(cfg, cost))
        info = info.save(table=table_provenance(cfg, cost), settings=settings)
        study = create_study(
            open_storage(info.storage, d), info.study, settings.objectives, str(cfg.search.storage)
        )
        recovered = recover_stale(study, _is_local(info.storage))
        done = done_count(count_states(study))
        if resumed:
            again = f", {recovered} interrupted trial(s) queued again" if recovered else ""
            log(f"resuming {d}: {done}/{info.trials} trials done{again}")
        else:
            log(f"run dir {d}")
        remaining = max(0, info.trials - done)
        stopped = run_workers(d, cfg, study, remaining, info.trials, progress) if remaining else ""
        if done_count(count_states(study)) >= info.trials:
            status = "complete"
        else:
            status = "interrupted" if stopped == "interrupted" else "incomplete"
        info.save(status=status, finished=utc_now())
        result = write_outputs(d)
    return replace(result, resumed=resumed, stopped_early=stopped)
