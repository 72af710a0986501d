"""Workers: the processes that run a study's trials, crash recovery, and the progress bar."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.cost import CostModel
from nas.procs import exit_with_parent, pid_alive
from nas.results import RunInfo, box_hypervolume, hypervolume, normalise
from nas.search._config import SearchConfig
from nas.search._outputs import (
    OVERSUBSCRIBE_ENV,
    build_cost_model,
    build_proxy,
    run_constraints,
    thread_budget,
    usable_cores,
)
from nas.search._registry import make_pruner
from nas.search._rundir import HOST, run_config, run_space
from nas.search._study import load_worker_study, sampler_of
from nas.space import SearchSpace

if TYPE_CHECKING:
    import optuna


__all__ = [
    "batched",
    "count_states",
    "done_count",
    "recover_stale",
    "run_batch_worker",
    "run_worker",
    "run_workers",
]

OnTrial = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


def count_states(study: optuna.Study) -> dict[str, int]:
    return dict(Counter(t.state.name for t in study.get_trials(deepcopy=False)))


def done_count(counts: dict[str, int]) -> int:
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


def _setup(run_dir: str | Path) -> tuple[RunInfo, SearchConfig, SearchSpace, CostModel]:
    """What a worker reads from its run dir: run.json, the config, the space, the table."""
    info = RunInfo.load(run_dir)
    cfg, _ = run_config(info)
    space = run_space(info)
    return info, cfg, space, build_cost_model(cfg, space)


def run_worker(
    run_dir: str | Path,
    worker: int,
    n_trials: int,
    timeout_s: float | None = None,
    on_trial: OnTrial | None = None,
) -> None:
    """Run up to ``n_trials`` trials of a run's study in this process (worker ``worker``
    seeds its sampler with ``seed + 1000 * worker``)."""

    import optuna

    from nas.search._evaluate import Evaluator, TrialEvaluation

    # Optuna logs a traceback per failed trial (Ctrl-C included): one line of ours instead
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info, cfg, space, cost = _setup(run_dir)
    workers = min(cfg.search.local_workers(batched=False), max(1, info.trials))
    proxy = build_proxy(cfg, space, workers=workers, announce=worker == 0)
    ev = Evaluator(info.require_settings().objectives, run_constraints(cfg, cost), cost, proxy)
    study = load_worker_study(info, sampler_of(cfg, worker))
    pruner = make_pruner(cfg.proxy.pruner) if cfg.proxy.pruner != "none" else None
    objective = TrialEvaluation(space, ev, study, pruner=pruner, worker=f"{HOST}:{os.getpid()}")
    total = info.trials

    def guard(study: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        # a global cap for workers on other machines sharing the study
        counts = count_states(study)
        if done_count(counts) + counts.get("RUNNING", 0) >= total:
            study.stop()
        if ft.state.name == "FAIL" and ft.user_attrs.get("error"):
            msg = f"trial {ft.number} failed: {ft.user_attrs['error']}"
            print(msg[:300], file=sys.stderr)
        if on_trial is not None:
            on_trial(study, ft)

    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout_s,
        catch=(Exception,),
        callbacks=[guard],
        gc_after_trial=False,
        show_progress_bar=False,
    )


def batched(cfg: SearchConfig) -> bool:
    """Whether the search runs in batches from one process (:func:`run_batch_worker`):
    pruning needs each worker's own reports, and brute force stops the study from inside
    ``study.optimize``, so those two keep one process per worker."""
    return cfg.proxy.pruner == "none" and cfg.sampler.name != "brute"


def run_batch_worker(
    run_dir: str | Path,
    workers: int,
    n_trials: int,
    timeout_s: float | None = None,
    on_trial: OnTrial | None = None,
    study: optuna.Study | None = None,
    flush: Callable[[], None] = lambda: None,
) -> None:
    """Run up to ``n_trials`` trials of a run's study in batches (:mod:`nas.search._batch`),
    the proxies in ``workers`` processes of one torch thread each (here when ``workers`` is
    1). The trials, and so the front, do not depend on ``workers``. ``study`` (with the
    ``flush`` of its storage, :func:`nas.search._study.open_run_storage`): the run's study
    already open in this process, else it is loaded from the run dir."""
    import optuna

    from nas.search._batch import _Pool, batch_size, run_batches
    from nas.search._evaluate import Evaluator, TrialEvaluation

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info, cfg, space, cost = _setup(run_dir)
    settings = info.require_settings()
    threads, message = thread_budget(
        cfg.proxy.threads, workers, usable_cores(), os.environ.get(OVERSUBSCRIBE_ENV) == "1"
    )
    if message:
        print(message, file=sys.stderr)
    # built here in any case: a bad proxy option fails now, in one line, not in the pool
    proxy = build_proxy(cfg, space, workers=1, announce=False)
    ev = Evaluator(settings.objectives, run_constraints(cfg, cost), cost, proxy)
    if study is None:
        study = load_worker_study(info, sampler_of(cfg, 0))
    else:
        study.sampler = sampler_of(cfg, 0)
    objective = TrialEvaluation(space, ev, study, worker=f"{HOST}:{os.getpid()}")
    batch = batch_size(cfg.sampler.name, cfg.sampler.options, cfg.search.batch)
    pool = _Pool(info.run_dir, workers, threads)
    run_batches(
        study, objective, pool, n_trials, batch, info.trials, timeout_s, on_trial, flush=flush
    )


def _worker_entry(
    run_dir: str, worker: int, n_trials: int, timeout_s: float | None, parent: int
) -> None:
    import warnings

    exit_with_parent(parent)
    warnings.filterwarnings("ignore", category=UserWarning)
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(run_dir, worker, n_trials, timeout_s)


def recover_stale(study: optuna.Study, local_storage: bool) -> int:
    """Mark trials left RUNNING by a dead process as FAIL and queue their arch again."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker", "")
        host, _, pid = w.partition(":")
        if local_storage:
            stale = True  # we hold the run lock: no other process works on this study
        else:
            stale = host == HOST and pid.isdigit() and not pid_alive(int(pid))
        if not stale:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "error", "worker died (recovered)")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


def run_workers(
    run_dir: Path,
    cfg: SearchConfig,
    study: optuna.Study,
    remaining: int,
    target: int,
    progress: bool,
    flush: Callable[[], None] = lambda: None,
) -> str:
    """Run ``remaining`` trials (in this process, or in ``search.workers`` processes) with a
    progress bar; returns why it stopped early ("" when it did not). In batches the trials
    run on ``study`` itself (``flush`` makes its writes durable)."""
    from tqdm import tqdm

    in_batches = batched(cfg)
    workers = min(cfg.search.local_workers(in_batches), remaining)
    done = done_count(count_states(study))
    bar = tqdm(
        total=target,
        initial=done,
        desc="search",
        unit="trial",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    tracker = Tracker(bar, RunInfo.load(run_dir))
    tracker.preload(study)
    t0 = time.monotonic()
    stopped = ""
    try:
        with _sigterm_as_interrupt():
            if in_batches:
                run_batch_worker(
                    run_dir,
                    workers,
                    remaining,
                    cfg.search.timeout_s,
                    tracker.on_trial,
                    study=study,
                    flush=flush,
                )
            elif workers == 1:
                run_worker(run_dir, 0, remaining, cfg.search.timeout_s, on_trial=tracker.on_trial)
            else:
                stopped = _spawn(run_dir, cfg, study, workers, remaining, tracker)
    except KeyboardInterrupt:
        stopped = "interrupted"
        print(
            "\ninterrupted: completed trials are saved; re-run the same command to resume",
            file=sys.stderr,
        )
    finally:
        bar.close()
    if cfg.search.timeout_s is not None and time.monotonic() - t0 >= cfg.search.timeout_s:
        stopped = stopped or "timeout"
    return stopped


def _spawn(
    run_dir: Path,
    cfg: SearchConfig,
    study: optuna.Study,
    workers: int,
    remaining: int,
    tracker: Tracker,
) -> str:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    shares = [remaining // workers + (1 if i < remaining % workers else 0) for i in range(workers)]
    procs = [
        ctx.Process(
            target=_worker_entry,
            args=(str(run_dir), i, shares[i], cfg.search.timeout_s, os.getpid()),
            daemon=False,
        )
        for i in range(workers)
    ]
    _LIVE[:] = procs
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            tracker.poll(study)
    except KeyboardInterrupt:
        for p in procs:  # each finishes (or abandons) its running trial and exits
            p.join(timeout=30)
        raise
    finally:
        _reap(procs)
        _LIVE.clear()
    tracker.poll(study)
    bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    if bad:
        tracker.bar.write(
            "worker(s) "
            + ", ".join(f"{i} (exit code {c})" for i, c in bad)
            + " stopped early; their completed trials are saved; re-run the same command "
            "to resume"
        )
        return "worker failed"
    return ""


_LIVE: list[Any] = []  # this process's worker processes, for the SIGTERM handler


def _reap(procs: list[Any]) -> None:
    """No worker outlives the search: terminate what is still running, then kill."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is not None:
            p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop, `kill`) ends the search like Ctrl-C: completed trials are
    saved, workers are stopped, the run is marked interrupted."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        # the workers did not get the signal (Ctrl-C reaches the whole process group, kill
        # reaches one process): they stop as on Ctrl-C, after their running trial
        for p in _LIVE:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class Tracker:
    """Progress: trials done / total, feasible count, front size, hypervolume, ETA (tqdm).

    The hypervolume is measured in the run's box (``run.json``), so it never decreases; the
    box's quality bound is the run's first proxy result, recorded here once it is seen. The
    front is kept as trials arrive (a dominated trial costs one comparison with it), so the
    bar costs little per trial however long the run."""

    def __init__(self, bar: Any, info: RunInfo | None = None) -> None:
        self.bar = bar
        self.info = info
        self.box = info.box if info is not None else None
        objectives = info.settings.objectives if info is not None and info.settings else ()
        self.signs = [o.sign for o in objectives]
        self.feasible = 0
        self.front = np.zeros((0, max(1, len(self.signs))))  # minimised, feasible, finite
        self.front_ids: list[str] = []
        self.lo: np.ndarray | None = None  # the feasible range (runs without a box)
        self.hi: np.ndarray | None = None
        self.hv: float | None = 0.0  # None: to recompute
        self.seen: set[int] = set()

    def preload(self, study: optuna.Study) -> None:
        """Trials finished before this invocation: counted in the bar's ``initial``."""
        for ft in study.get_trials(deepcopy=False):
            self._add(ft, count=False)

    def _add(self, ft: optuna.trial.FrozenTrial, count: bool = True) -> None:
        if ft.number in self.seen or ft.state.name not in ("COMPLETE", "PRUNED"):
            return
        self.seen.add(ft.number)
        if ft.state.name == "COMPLETE" and ft.values is not None:
            signs = self.signs if len(self.signs) == len(ft.values) else [1.0] * len(ft.values)
            values = [s * float(v) for s, v in zip(signs, ft.values, strict=True)]
            if bool(ft.user_attrs.get("costs", {}).get("feasible", True)):
                self.feasible += 1
                if self.box is not None and not self.box.complete:
                    self._fill_box(values)
                self._to_front(np.asarray(values), str(ft.user_attrs.get("arch_id", ft.number)))
        if count:
            self._postfix()
            self.bar.update(1)

    def _to_front(self, v: np.ndarray, arch_id: str) -> None:
        if not np.all(np.isfinite(v)):
            return
        if self.lo is None or self.hi is None or len(self.front) == 0:
            self.front = np.zeros((0, len(v)))
            self.lo, self.hi = v.copy(), v.copy()
        elif np.any(v < self.lo) or np.any(v > self.hi):
            self.lo, self.hi = np.minimum(self.lo, v), np.maximum(self.hi, v)
            self.hv = None  # the range-normalised measure moves with the range
        f = self.front
        if len(f) and np.any(np.all(f <= v, axis=1) & np.any(f < v, axis=1)):
            return  # dominated: the front is unchanged
        keep = ~(np.all(v <= f, axis=1) & np.any(v < f, axis=1))
        self.front = np.vstack([f[keep], v])
        self.front_ids = [a for a, k in zip(self.front_ids, keep, strict=True) if k] + [arch_id]
        self.hv = None

    def _fill_box(self, values: list[float]) -> None:
        assert self.box is not None
        self.box = self.box.fill(values)
        if self.box.complete and self.info is not None:
            self.info = self.info.save(box=self.box)
            self.hv = None

    def _postfix(self) -> None:
        if self.bar.disable:
            return
        self.bar.set_postfix_str(self.summary(), refresh=False)

    def summary(self) -> str:
        """``feasible=N front=M hv=X``: the front counted in arches, as the final summary
        counts it (a repeated arch is one), the hypervolume in the run's box."""
        if self.hv is None:
            self.hv = self.hypervolume(self.front) if len(self.front) else 0.0
        return f"feasible={self.feasible} front={len(set(self.front_ids))} hv={self.hv:.3f}"

    def hypervolume(self, front: np.ndarray) -> float:
        """The front's hypervolume: in the run's box (0 while its bounds wait for the first
        proxy result); a run dir without a box normalises over the feasible range, ref 1.1."""
        if self.box is not None:
            return box_hypervolume(front, self.box) if self.box.complete else 0.0
        assert self.lo is not None and self.hi is not None
        return hypervolume(normalise(front, self.lo, self.hi), np.full(front.shape[1], 1.1))

    def on_trial(self, study: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        self._add(ft)

    def poll(self, study: optuna.Study) -> None:
        for ft in study.get_trials(deepcopy=False):
            self._add(ft)
