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

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nas.cost import CostModel
from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.results import HypervolumeBox, RunInfo, RunSettings, reference_arches
from nas.search._config import SearchConfig, run_settings
from nas.search._evaluate import DECODER_PARAM
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
from nas.search._study import (
    clear_stale_journal_lock,
    create_study,
    journal_path,
    open_run_storage,
    repair_journal,
)
from nas.search._workers import batched, count_states, done_count, recover_stale, run_workers
from nas.space import SearchSpace, arch_indices, load_space

if TYPE_CHECKING:
    import optuna

__all__ = ["initial_box", "reference_arches", "run_search"]


def _find_run(
    space: SearchSpace, cfg: SearchConfig, resume: str | Path | None, new: bool
) -> RunInfo | None:
    """The run to continue: explicit (``resume``), found by identity, or None for a new one.
    Writes nothing: the run may be in use by another process."""
    identity = cfg.identity(space.hash)
    if resume is not None:
        info = RunInfo.load(resume)
        if info.identity != identity:
            raise NasError(
                f"{resume} was made with another config or space; re-run with its own "
                f"config ({Path(resume) / 'config.yaml'}) or start a new run with --new"
            )
        return info
    if new:
        return None
    warn = lambda m: print(f"warning: {m}", file=sys.stderr)  # noqa: E731
    return find_run(Path(cfg.search.runs_dir), identity, warn)


def _claim_run(
    found: RunInfo | None,
    d: Path,
    space: SearchSpace,
    cfg: SearchConfig,
    raw_config: dict[str, Any],
) -> RunInfo:
    """Write the run's files in ``d``; called with its lock held. A found run takes the new
    config (the trial count may grow: a re-run with more trials extends it)."""
    if found is not None:
        atomic_write_text(d / "config.yaml", yaml.safe_dump(raw_config, sort_keys=False))
        return found.save(trials=max(found.trials, cfg.search.trials), status="running", reason="")
    write_run_files(d, raw_config, space)
    return RunInfo(
        d,
        cfg.identity(space.hash),
        cfg.name or space.name,
        cfg.search.study or d.name,
        storage_spec(cfg),
        cfg.search.trials,
        utc_now(),
        "running",
        str(space.source),
    ).save()


def _start(
    info: RunInfo, space: SearchSpace, cfg: SearchConfig
) -> tuple[optuna.Study, RunInfo, Callable[[], None], tuple[str, ...]]:
    """Fail fast on a bad table before any worker starts; record the table's provenance and
    the run's settings (objectives, resolved budgets) for its readers; open the study, after
    repairing a torn journal and clearing a dead process's journal lock. Also returns the
    cost model's notes (what the table leaves out, and how to add it)."""
    cost = build_cost_model(cfg, space)
    settings = run_settings(cfg, run_constraints(cfg, cost))
    box = info.box
    if box is None or box.columns != tuple(o.column for o in settings.objectives):
        box = initial_box(settings, cost, space)
    info = info.save(table=table_provenance(cfg, cost), settings=settings, box=box)
    journal = journal_path(info.storage, info.run_dir)
    if journal is not None:
        note = repair_journal(journal)
        if note:
            print(f"warning: {note}", file=sys.stderr)
        if _is_local(info.storage):  # we hold the run lock: nobody else uses this journal
            clear_stale_journal_lock(journal)
    # in batches this process alone writes a local journal: its writes are held until flushed
    storage, flush = open_run_storage(info, buffered=batched(cfg))
    study = create_study(
        storage, info.study, settings.objectives, str(cfg.search.storage), settings.constraints
    )
    if cfg.search.references and not study.get_trials(deepcopy=False):
        # the front's anchors, asked first (no more than the run's trials)
        for op, arch in reference_arches(space)[: info.trials]:
            params = {g.name: arch.choice(g.slots[0]).key for g in space.groups}
            if arch.decoder is not None:
                params[DECODER_PARAM] = arch.decoder
            study.enqueue_trial(params, user_attrs={"reference": op})
    flush()
    return study, info, flush, tuple(cost.notes)


def initial_box(settings: RunSettings, cost: CostModel, space: SearchSpace) -> HypervolumeBox:
    """The run's hypervolume box (:class:`nas.results.HypervolumeBox`) as far as it is known
    before any trial: a cost objective spans from the cheapest reference arch (the all-none
    arch) to its budget, or without a budget to the costliest reference arch; the quality's
    bounds wait for the run's first proxy result (the all-none arch's: it runs first)."""
    import numpy as np

    refs = [arch for _, arch in reference_arches(space)]
    values = cost.evaluate_indices(np.asarray([arch_indices(space, a) for a in refs]))
    lower: list[float | None] = []
    upper: list[float | None] = []
    sources: list[str] = []
    for o in settings.objectives:
        if not o.cheap or o.column not in values or not refs:
            lower.append(None)
            upper.append(None)
            sources.append("reference: the run's first proxy result (the all-none arch's)")
            continue
        xs = o.sign * values[o.column]
        budget = settings.constraint(o.column)
        lower.append(float(xs.min()))
        if budget is not None and o.sign > 0:
            upper.append(budget.budget)
            sources.append(f"the all-none arch to the budget {budget.name}")
        else:
            upper.append(float(xs.max()))
            sources.append("the all-none arch to the costliest reference arch (no budget)")
    columns = tuple(o.column for o in settings.objectives)
    return HypervolumeBox(columns, tuple(lower), tuple(upper), tuple(sources))


def _is_local(storage: str) -> bool:
    """Storage only this run dir's lock holder uses (so RUNNING trials in it are stale)."""
    if storage.startswith("sqlite:"):
        return True
    return storage.startswith("journal:") and not Path(storage[len("journal:") :]).is_absolute()


def _run_trials(
    study: optuna.Study,
    info: RunInfo,
    cfg: SearchConfig,
    resumed: bool,
    progress: bool,
    log: Callable[[str], None],
    flush: Callable[[], None],
) -> str:
    """Recover what a dead process left, then run the remaining trials; why it stopped."""
    recovered = recover_stale(study, _is_local(info.storage))
    flush()
    done = done_count(count_states(study))
    if resumed:
        again = f", {recovered} interrupted trial(s) queued again" if recovered else ""
        log(f"resuming {info.run_dir}: {done}/{info.trials} trials done{again}")
    else:
        log(f"run dir {info.run_dir}")
    remaining = max(0, info.trials - done)
    if not remaining:
        return ""
    return run_workers(info.run_dir, cfg, study, remaining, info.trials, progress, flush)


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
    found = _find_run(space, cfg, resume, new)
    resumed = found is not None
    if found is not None:
        d = found.run_dir
    else:
        d = new_run_dir(Path(cfg.search.runs_dir), cfg.name or space.name)
    with run_lock(d):
        info = _claim_run(found, d, space, cfg, raw_config)
        try:
            study, info, flush, notes = _start(info, space, cfg)
            try:
                stopped = _run_trials(study, info, cfg, resumed, progress, log, flush)
            finally:
                flush()
        except NasError as e:  # a failed invocation says so in run.json, not "running"
            info.save(status="failed", reason=str(e), finished=utc_now())
            raise
        if done_count(count_states(study)) >= info.trials:
            status = "complete"
        else:
            status = "interrupted" if stopped == "interrupted" else "incomplete"
        info.save(status=status, finished=utc_now())
        result = write_outputs(d, study)
    for note in notes:  # what the table leaves out; how to add it
        log(f"note: {note}")
    return replace(result, resumed=resumed, stopped_early=stopped)
