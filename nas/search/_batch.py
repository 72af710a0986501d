"""Batches: one process asks the sampler for a batch of trials, prices them, runs their proxies
in a pool of processes (one torch thread each), and tells the results in trial order.

Only this process writes to the study, and what it writes depends on the sampler's seed and
the arches' values alone, never on which pool process finished first: the same command gives
the same trials and the same front with any number of local workers. Crash safety is the
study's: a trial is complete once told; a kill leaves the batch's untold trials RUNNING, and
the next start queues their arches again.
"""

from __future__ import annotations

import functools
import math
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.search._evaluate import ArchCosts, Outcome, TrialEvaluation
from nas.space import Arch, arch_indices

if TYPE_CHECKING:
    import optuna
    from optuna.trial import TrialState

__all__ = ["batch_size", "run_batches"]

OnTrial = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]

# one proxy per pool process, built by the initializer
_POOL_PROXY: dict[str, Any] = {}


def batch_size(sampler: str, options: dict[str, Any], requested: int | None) -> int:
    """Trials asked at once: ``search.batch``, else NSGA-II's population (a generation: the
    same trials as asking one at a time), else 8."""
    if requested is not None:
        return requested
    if sampler == "nsga2":
        return int(options["population_size"])
    return 8


def _pool_init(run_dir: str, threads: int) -> None:
    """A pool process: ignore Ctrl-C (the search stops the pool), build the proxy once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import os
    import warnings

    from nas.procs import exit_with_parent

    exit_with_parent(os.getppid())

    import torch

    from nas.results import RunInfo
    from nas.search._outputs import build_proxy
    from nas.search._rundir import run_config, run_space

    warnings.filterwarnings("ignore", category=UserWarning)
    info = RunInfo.load(run_dir)
    cfg, _ = run_config(info)
    space = run_space(info)
    _POOL_PROXY["space"] = space
    _POOL_PROXY["proxy"] = build_proxy(cfg, space, announce=False)
    torch.set_num_threads(threads)


def _pool_job(indices: list[int]) -> Outcome:
    from nas.space import arch_from_indices

    arch = arch_from_indices(_POOL_PROXY["space"], indices)
    t0 = time.perf_counter()
    try:
        q = float(_POOL_PROXY["proxy"].evaluate(arch))
    except Exception as e:
        return Outcome("error", math.nan, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    return Outcome("complete", q, time.perf_counter() - t0)


@dataclass
class _Asked:
    trial: optuna.Trial
    arch: Arch
    costs: ArchCosts
    quality: float | None = None  # known without the proxy (infeasible, cached)
    state: str = "ready"  # "ready" | "proxy" | "wait" (same arch as an earlier one) | "pruned"


class _Pool:
    """The proxy's processes; None (in this process) for one worker."""

    def __init__(self, run_dir: Path, workers: int, threads: int) -> None:
        self.run_dir, self.workers, self.threads = run_dir, workers, threads
        self.pool: ProcessPoolExecutor | None = None

    def submit(self, objective: TrialEvaluation, arch: Arch) -> Future[Outcome]:
        if self.workers <= 1:
            f: Future[Outcome] = Future()
            f.set_result(objective.run_proxy(arch))
            return f
        if self.pool is None:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_pool_init,
                initargs=(str(self.run_dir), self.threads),
            )
        return self.pool.submit(_pool_job, arch_indices(objective.space, arch))

    def result(self, f: Future[Outcome]) -> Outcome:
        try:
            return f.result()
        except BrokenProcessPool:  # a pool process died (killed, out of memory)
            self.close(force=True)
            return Outcome("error", math.nan, 0.0, "a proxy worker process died")

    def close(self, force: bool = False) -> None:
        """Stop the pool: waiting for its processes to exit, or (``force``: Ctrl-C, a dead
        process) terminating them."""
        if self.pool is None:
            return
        procs = list(getattr(self.pool, "_processes", {}).values())
        if force:
            for p in procs:
                if p.is_alive():
                    p.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for p in procs:
            p.join(timeout=10)
        self.pool = None


def _ask(
    study: optuna.Study,
    objective: TrialEvaluation,
    n: int,
    asked: list[_Asked],
    start: Callable[[_Asked], None],
) -> None:
    """Ask ``n`` trials into ``asked``, price them, and find which need the proxy (once per
    arch); ``start`` is called on each such trial as soon as it is asked, so its proxy runs
    while the sampler asks for the next (a GP's ask takes seconds). The study sees the same
    thing at every ask either way (this batch's trials RUNNING, none told), so the trials do
    not depend on when the proxies finish."""
    import optuna

    first: set[str] = set()
    for _ in range(n):
        t = study.ask()
        arch, costs = objective.price(t)
        a = _Asked(t, arch, costs)
        if objective.ev.needs_quality:
            try:
                a.quality = objective.lookup(t, arch, costs)
            except optuna.TrialPruned:
                a.state = "pruned"
            if a.quality is None and a.state != "pruned":
                a.state = "wait" if arch.unet_id in first else "proxy"
                first.add(arch.unet_id)
        asked.append(a)
        if a.state == "proxy":
            start(a)


def _tell(
    study: optuna.Study, objective: TrialEvaluation, a: _Asked, outcome: Outcome | None
) -> None:
    import optuna
    from optuna.trial import TrialState

    try:
        if a.state == "pruned":
            raise optuna.TrialPruned()
        if a.state == "wait":  # the same arch ran earlier in this batch: now in the cache
            a.quality = objective.lookup(a.trial, a.arch, a.costs)
        elif a.state == "proxy":
            assert outcome is not None
            a.quality = objective.record(a.trial, a.arch, outcome)
    except optuna.TrialPruned:
        _tell_trial(study, a.trial, state=TrialState.PRUNED)
        return
    except NasError:
        _tell_trial(study, a.trial, state=TrialState.FAIL)
        return
    _tell_trial(study, a.trial, objective.ev.values(a.costs, a.quality))


def _tell_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Sequence[float] | None = None,
    state: TrialState | None = None,
) -> None:
    """``study.tell`` without the deep copy of the trial it returns (which nothing here
    reads: on a cost-only search the copy was about 8 % of the time). Optuna's own
    ``optimize`` tells through the same function; where a later Optuna lacks it, tell."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # pragma: no cover - an Optuna that moved it
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study, trial, value_or_values=values, state=state)


def _start(
    pool: _Pool,
    objective: TrialEvaluation,
    flush: Callable[[], None],
    futures: dict[int, Future[Outcome]],
    a: _Asked,
) -> None:
    """Submit an asked trial's proxy, its trial durable first (a kill during the proxies
    leaves the asked trials RUNNING, and the next start queues their arches again)."""
    flush()
    futures[id(a)] = pool.submit(objective, a.arch)


def run_batches(
    study: optuna.Study,
    objective: TrialEvaluation,
    pool: _Pool,
    n_trials: int,
    batch: int,
    total: int,
    timeout_s: float | None,
    on_trial: OnTrial | None,
    flush: Callable[[], None] = lambda: None,
) -> None:
    """Run up to ``n_trials`` trials, ``batch`` at a time; stop asking once the study has
    ``total`` finished or running trials (other machines may share it) or ``timeout_s``
    passed. On Ctrl-C the untold trials of the batch are told FAIL and the pool stopped.

    ``flush`` makes the study's writes durable (a buffered journal,
    :func:`nas.search._study.open_run_storage`): before each proxy starts, after telling each
    proxy result, and after every batch. Trials priced from the table alone are
    written with their batch."""
    from optuna.trial import TrialState

    from nas.search._workers import count_states, done_count

    t0 = time.monotonic()
    left = n_trials
    try:
        while left > 0:
            if timeout_s is not None and time.monotonic() - t0 >= timeout_s:
                return
            counts = count_states(study)
            room = total - done_count(counts) - counts.get("RUNNING", 0)
            if room <= 0:
                return
            asked: list[_Asked] = []
            futures: dict[int, Future[Outcome]] = {}
            start = functools.partial(_start, pool, objective, flush, futures)
            told = 0
            try:
                _ask(study, objective, min(batch, left, room), asked, start)
                for a in asked:
                    f = futures.get(id(a))
                    _tell(study, objective, a, pool.result(f) if f is not None else None)
                    if f is not None:
                        flush()  # a proxy result is durable once told
                    told += 1
                    if on_trial is not None:
                        on_trial(study, study._storage.get_trial(a.trial._trial_id))
            except KeyboardInterrupt:
                pool.close(force=True)
                for a in asked[told:]:
                    # the interrupt can land after a trial was told and before it was
                    # counted (in the flush after a proxy result): leave it as it is
                    if study._storage.get_trial(a.trial._trial_id).state.is_finished():
                        continue
                    a.trial.set_user_attr("error", "interrupted")
                    study.tell(a.trial, state=TrialState.FAIL)
                raise
            flush()
            left -= len(asked)
    finally:
        flush()
        pool.close()
