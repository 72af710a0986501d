"""A search run: its folder, its Optuna study, its workers, resume, and its outputs.

A run dir (``experiments/runs/<time>-<name>/``) holds ``run.json`` (identity, storage, state),
``config.yaml`` (the resolved config), ``space.yaml`` (a copy of the space file), the study
storage (``study.journal`` by default), and after each invocation ``trials.csv``,
``pareto.csv``, ``archs/<arch_id>.yaml`` and ``dashboard.html``.

Re-running the same command finds the run by the identity of its config and space and resumes
it: trials left RUNNING by a killed process are marked FAIL and their arch is queued again, so
no completed trial is lost and none is run twice (an arch already evaluated in the study reuses
its values instead of running the proxy again).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nas.errors import NasError
from nas.search._config import SearchConfig
from nas.search._objective import (
    ArchCosts,
    Evaluator,
    constraint_names,
    objective_column,
    objective_unit,
)
from nas.search._pareto import hypervolume, hypervolume_history, non_dominated, normalise
from nas.space import Arch, SearchSpace, arch_from_indices, load_space

__all__ = [
    "RunInfo",
    "SearchResult",
    "TrialRecord",
    "find_run",
    "load_records",
    "open_run_study",
    "ops_summary",
    "run_search",
    "run_table_folder",
    "write_outputs",
]

_HOST = socket.gethostname()


# ---------------------------------------------------------------------------------------------
# the run dir
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """``run.json``: what a run is and where its study lives."""

    run_dir: Path
    identity: str
    name: str
    study: str
    storage: str  # "journal:study.journal" (relative to the run dir) or a URL / absolute path
    trials: int
    created: str
    status: str  # "running" | "complete" | "interrupted" | "incomplete"
    space_source: str
    table: dict[str, Any] = field(default_factory=dict)  # the table's path and provenance
    finished: str = ""  # when the last invocation ended (UTC, ISO 8601)

    @staticmethod
    def load(run_dir: str | Path) -> RunInfo:
        d = Path(run_dir)
        p = d / "run.json"
        if not p.is_file():
            raise NasError(f"{d} is not a search run dir (no run.json)")
        raw = json.loads(p.read_text(encoding="utf-8"))
        return RunInfo(
            d,
            raw["identity"],
            raw["name"],
            raw["study"],
            raw["storage"],
            int(raw["trials"]),
            raw["created"],
            raw["status"],
            raw.get("space_source", ""),
            raw.get("table", {}),
            raw.get("finished", ""),
        )

    def save(self, **changes: Any) -> RunInfo:
        info = RunInfo(**{**self.__dict__, **changes})
        raw = {k: v for k, v in info.__dict__.items() if k != "run_dir"}
        _atomic_write(self.run_dir / "run.json", json.dumps(raw, indent=2) + "\n")
        return info

    def config(self) -> tuple[SearchConfig, dict[str, Any]]:
        raw = yaml.safe_load((self.run_dir / "config.yaml").read_text(encoding="utf-8"))
        return SearchConfig.from_dict(raw), raw

    def space(self) -> SearchSpace:
        return load_space(self.run_dir / "space.yaml")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def find_run(runs_dir: Path, identity: str) -> RunInfo | None:
    """The newest run under ``runs_dir`` with this identity, if any."""
    if not runs_dir.is_dir():
        return None
    found = []
    for p in runs_dir.glob("*/run.json"):
        try:
            info = RunInfo.load(p.parent)
        except (OSError, KeyError, ValueError, NasError):
            continue
        if info.identity == identity:
            found.append(info)
    return max(found, key=lambda i: i.created) if found else None


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """One `nas search` per run dir at a time (workers are its children)."""
    lock = run_dir / ".lock"
    if lock.exists():
        try:
            host, pid = lock.read_text(encoding="utf-8").strip().split(":")
            alive = host == _HOST and _pid_alive(int(pid))
        except (OSError, ValueError):
            alive = False
        if alive:
            raise NasError(
                f"run {run_dir} is in use by process {pid}; wait for it or stop it, then re-run"
            )
    lock.write_text(f"{_HOST}:{os.getpid()}", encoding="utf-8")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child (killed, not yet reaped) counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# ---------------------------------------------------------------------------------------------
# storage and study
# ---------------------------------------------------------------------------------------------


def _storage_spec(cfg: SearchConfig) -> str:
    s = cfg.search.storage
    if s is None:
        return "journal:study.journal"
    if "://" in s:
        return s
    if s.startswith("journal:"):
        s = s[len("journal:") :]
    return "journal:" + str(Path(s).expanduser().resolve())


def open_storage(spec: str, run_dir: Path) -> Any:
    """An Optuna storage for a spec from run.json."""
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


def _directions(cfg: SearchConfig) -> list[Any]:
    return ["minimize"] * len(cfg.search.objectives)


def _create_study(storage: Any, name: str, cfg: SearchConfig) -> Any:
    """Create or load; retried because concurrent first calls on an empty PostgreSQL
    database race on creating the schema."""
    import optuna

    last: Exception | None = None
    for attempt in range(5):
        try:
            return optuna.create_study(
                storage=storage,
                study_name=name,
                directions=_directions(cfg),
                load_if_exists=True,
            )
        except Exception as e:
            if isinstance(e, ValueError) and "directions" in str(e).lower():
                raise NasError(
                    f"study {name!r} in {cfg.search.storage} has other objectives; "
                    "use another search.study"
                ) from None
            last = e
            time.sleep(0.2 * (attempt + 1))
    raise NasError(f"cannot create study {name!r}: {last}")


def make_sampler(cfg: SearchConfig, seed: int) -> Any:
    """The configured Optuna sampler. Constraints reach it through ``trial.set_constraint``."""
    import optuna

    o = cfg.sampler.options
    name = cfg.sampler.name
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            population_size=int(o["population_size"]),
            mutation_prob=o["mutation_prob"],
            crossover_prob=float(o["crossover_prob"]),
            seed=seed,
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            n_startup_trials=int(o["n_startup_trials"]),
            multivariate=bool(o["multivariate"]),
            seed=seed,
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        try:
            import scipy  # noqa: F401
        except ImportError:
            raise NasError("sampler=gp needs scipy: pip install scipy") from None
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=int(o["n_startup_trials"]))
    if name == "brute":
        import warnings

        with warnings.catch_warnings():  # "experimental": it has been stable since Optuna 3.1
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.BruteForceSampler(seed=seed)
    raise NasError(f"unknown sampler {name!r}")


def make_pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.HyperbandPruner(min_resource=1)


def open_run_study(run_dir: str | Path) -> Any:
    """The Optuna study of a run dir (for reading; also what optuna-dashboard opens)."""
    import optuna

    info = RunInfo.load(run_dir)
    storage = open_storage(info.storage, info.run_dir)
    try:
        return optuna.load_study(study_name=info.study, storage=storage)
    except KeyError:
        raise NasError(f"{run_dir}: study {info.study!r} not found in its storage") from None


# ---------------------------------------------------------------------------------------------
# building the pieces a worker needs
# ---------------------------------------------------------------------------------------------


def build_cost_model(cfg: SearchConfig, space: SearchSpace) -> Any:
    from nas.cost import CostModel, Table, find_table

    table = Table.load(find_table(cfg.device.name, cfg.device.table))
    return CostModel(space, table, quantile=cfg.device.quantile)


def run_table_folder(info: RunInfo, cfg: SearchConfig) -> Path:
    """The table a run used: the path run.json recorded, else where the search looks."""
    from nas.cost import find_table

    path = info.table.get("path")
    if path and (Path(path) / "table.csv").is_file():
        return Path(path)
    return find_table(cfg.device.name, cfg.device.table)


def run_cost_model(info: RunInfo, cfg: SearchConfig, space: SearchSpace) -> Any:
    """The cost model of a run, from :func:`run_table_folder`."""
    from nas.cost import CostModel, Table

    return CostModel(space, Table.load(run_table_folder(info, cfg)), quantile=cfg.device.quantile)


def table_provenance(cfg: SearchConfig, cost: Any) -> dict[str, Any]:
    """Where the latency/memory numbers come from: path, device, row sources, versions."""
    from collections import Counter

    from nas.cost import find_table

    meta = cost.table.meta
    sources = Counter(r.source for r in cost.table.rows.values())
    return {
        "path": str(find_table(cfg.device.name, cfg.device.table).resolve()),
        "device": meta.get("device", {}).get("name", cfg.device.name),
        "description": meta.get("device", {}).get("description", ""),
        "backend": meta.get("backend", ""),
        "sources": dict(sorted(sources.items())),  # rows per provenance (measured, estimated, ...)
        "quantile": cfg.device.quantile,
        "versions": meta.get("versions", {}),
        "created": meta.get("created", ""),
        "updated": meta.get("updated", ""),
        "memory_budget_mb": cost.memory_budget_mb,
    }


def build_proxy(cfg: SearchConfig, space: SearchSpace) -> Any | None:
    if "quality" not in cfg.search.objectives or cfg.proxy.name == "none":
        return None
    import torch

    from nas.quality import make_proxy

    torch.set_num_threads(cfg.proxy.threads)
    return make_proxy(cfg.proxy.name, space, **cfg.proxy.options)


def _params(space: SearchSpace) -> list[tuple[str, list[str]]]:
    return [(g.name, [c.key for c in g.choices]) for g in space.groups]


def _arch_of(space: SearchSpace, params: dict[str, Any]) -> Arch:
    idx = []
    for g in space.groups:
        keys = [c.key for c in g.choices]
        idx.append(keys.index(params[g.name]))
    return arch_from_indices(space, idx)


class _Objective:
    """The Optuna objective of one worker."""

    def __init__(
        self, cfg: SearchConfig, space: SearchSpace, evaluator: Evaluator, study: Any
    ) -> None:
        self.cfg = cfg
        self.space = space
        self.ev = evaluator
        self.study = study
        self.params = _params(space)
        self.known: dict[str, tuple[str, float, int]] = {}  # arch_id -> (state, quality, trial)
        self.aux: Any = None
        if cfg.proxy.pruner != "none" and evaluator.proxy is not None:
            import optuna

            self.aux = optuna.create_study(
                storage=study._storage,
                study_name=study.study_name + ".proxy",
                direction="minimize",
                pruner=make_pruner(cfg.proxy.pruner),
                load_if_exists=True,
            )

    def _refresh_known(self) -> None:
        import optuna

        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            a = t.user_attrs
            q = a.get("quality")
            if "arch_id" in a and q is not None and a.get("arch_id") not in self.known:
                self.known[a["arch_id"]] = ("complete", float(q), t.number)

    def __call__(self, trial: Any) -> Sequence[float]:
        import optuna

        from nas.quality import ProxyPruned

        trial.set_user_attr("worker", f"{_HOST}:{os.getpid()}")
        params = {name: trial.suggest_categorical(name, keys) for name, keys in self.params}
        arch = _arch_of(self.space, params)
        costs: ArchCosts = self.ev.costs(arch)
        trial.set_user_attr("arch_id", arch.arch_id)
        # one attribute for all the costs: each write is an fsync on the journal file
        trial.set_user_attr(
            "costs",
            {
                "latency_s_video": float(costs.latency_s_video),
                "latency_ms_step": float(costs.latency_ms_step),
                "peak_mem_mb": float(costs.peak_mem_mb),
                "weights_mb": float(costs.weights_mb),
                "constraints": list(costs.constraints),
                "feasible": costs.feasible,
            },
        )
        for (cname, _, _), slack in zip(self.ev.constraints, costs.constraints, strict=True):
            trial.set_constraint(cname, slack)  # samplers prefer feasible arches
        values = {
            o: float(getattr(costs, objective_column(self.cfg, o))) for o in ("latency", "memory")
        }
        if "quality" in self.cfg.search.objectives:
            if not costs.feasible:  # cheap constraints first: no proxy time on infeasible arches
                values["quality"] = math.inf
                trial.set_user_attr("quality_status", "skipped: infeasible")
            else:
                if arch.arch_id not in self.known:
                    self._refresh_known()
                hit = self.known.get(arch.arch_id)
                if hit is not None:
                    trial.set_user_attr("cached_from", hit[2])
                    if hit[0] == "pruned":
                        trial.set_user_attr("quality_status", "pruned (cached)")
                        raise optuna.TrialPruned()
                    values["quality"] = hit[1]
                    trial.set_user_attr("quality", hit[1])
                    trial.set_user_attr("quality_status", "cached")
                else:
                    t0 = time.perf_counter()
                    try:
                        q = self._proxy(arch)
                    except ProxyPruned as e:
                        trial.set_user_attr("proxy_s", time.perf_counter() - t0)
                        trial.set_user_attr("quality_status", f"pruned at step {e.step}")
                        self.known[arch.arch_id] = ("pruned", math.nan, trial.number)
                        raise optuna.TrialPruned() from None
                    except Exception as e:
                        trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
                        raise
                    trial.set_user_attr("proxy_s", time.perf_counter() - t0)
                    if not math.isfinite(q):
                        trial.set_user_attr("error", f"proxy returned {q}")
                        raise NasError(f"proxy returned {q} for {arch.arch_id}")
                    values["quality"] = q
                    trial.set_user_attr("quality", q)
                    trial.set_user_attr("quality_status", "evaluated")
                    self.known[arch.arch_id] = ("complete", q, trial.number)
        return [float(values[o]) for o in self.cfg.search.objectives]

    def _proxy(self, arch: Arch) -> float:
        if self.aux is None:
            return self.ev.quality(arch)
        import optuna

        from nas.quality import ProxyPruned

        at = self.aux.ask()
        at.set_user_attr("arch_id", arch.arch_id)

        def report(step: int, value: float) -> bool:
            at.report(value, step)
            return bool(at.should_prune())

        try:
            q = self.ev.quality(arch, report)
        except ProxyPruned:
            self.aux.tell(at, state=optuna.trial.TrialState.PRUNED)
            raise
        except Exception:
            self.aux.tell(at, state=optuna.trial.TrialState.FAIL)
            raise
        self.aux.tell(at, q)
        return q


# ---------------------------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------------------------


def _count(study: Any) -> dict[str, int]:
    from collections import Counter

    c = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return dict(c)


def _done(counts: dict[str, int]) -> int:
    return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)


def run_worker(
    run_dir: str | Path,
    worker: int,
    n_trials: int,
    timeout_s: float | None = None,
    on_trial: Callable[[Any, Any], None] | None = None,
) -> None:
    """Run up to ``n_trials`` trials of a run's study in this process (worker ``worker``
    seeds its sampler with ``seed + 1000 * worker``)."""
    import optuna

    # Optuna logs a traceback per failed trial (Ctrl-C included): one line of ours instead
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info = RunInfo.load(run_dir)
    cfg, _ = info.config()
    space = info.space()
    cost = build_cost_model(cfg, space)
    ev = Evaluator(cfg, space, cost, build_proxy(cfg, space))
    storage = open_storage(info.storage, info.run_dir)
    sampler = make_sampler(cfg, cfg.search.seed + 1000 * worker)
    study = optuna.load_study(study_name=info.study, storage=storage, sampler=sampler)
    objective = _Objective(cfg, space, ev, study)
    total = info.trials

    def guard(study: Any, ft: Any) -> None:
        # a global cap for workers on other machines sharing the study
        counts = _count(study)
        if _done(counts) + counts.get("RUNNING", 0) >= total:
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


def _worker_entry(run_dir: str, worker: int, n_trials: int, timeout_s: float | None) -> None:
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(run_dir, worker, n_trials, timeout_s)


def _recover_stale(study: Any, local_storage: bool) -> int:
    """Mark trials left RUNNING by a dead process as FAIL and queue their arch again."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker", "")
        host, _, pid = w.partition(":")
        if local_storage:
            stale = True  # we hold the run lock: no other process works on this study
        else:
            stale = host == _HOST and pid.isdigit() and not _pid_alive(int(pid))
        if not stale:
            continue
        study._storage.set_trial_user_attr(t._trial_id, "error", "worker died (recovered)")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# records and outputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str
    arch_id: str | None
    choices: dict[str, str]
    latency_s_video: float | None
    latency_ms_step: float | None
    peak_mem_mb: float | None
    weights_mb: float | None
    quality: float | None
    quality_status: str
    feasible: bool | None
    constraints: dict[str, float]
    proxy_s: float | None
    cached_from: int | None
    duration_s: float | None
    error: str
    values: tuple[float, ...] | None = field(default=None)

    def row(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "trial": self.number,
            "state": self.state,
            "arch_id": self.arch_id or "",
        }
        for k, v in self.choices.items():
            d[f"choice:{k}"] = v
        d.update(
            {
                "latency_s_video": _fmt(self.latency_s_video),
                "latency_ms_step": _fmt(self.latency_ms_step),
                "peak_mem_mb": _fmt(self.peak_mem_mb),
                "weights_mb": _fmt(self.weights_mb),
                "quality": _fmt(self.quality),
                "quality_status": self.quality_status,
                "feasible": "" if self.feasible is None else str(self.feasible).lower(),
            }
        )
        for k, slack in self.constraints.items():
            d[f"slack:{k}"] = _fmt(slack)
        d.update(
            {
                "proxy_s": _fmt(self.proxy_s),
                "cached_from": "" if self.cached_from is None else self.cached_from,
                "duration_s": _fmt(self.duration_s),
                "error": self.error,
            }
        )
        return d


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.6g}"


def load_records(study: Any, space: SearchSpace, cons: list[str]) -> list[TrialRecord]:
    out = []
    groups = [g.name for g in space.groups]
    for t in study.get_trials(deepcopy=False):
        a = {**t.user_attrs.get("costs", {}), **t.user_attrs}
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        c = list(a.get("constraints", []))
        out.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                arch_id=a.get("arch_id"),
                choices={g: str(t.params[g]) for g in groups if g in t.params},
                latency_s_video=a.get("latency_s_video"),
                latency_ms_step=a.get("latency_ms_step"),
                peak_mem_mb=a.get("peak_mem_mb"),
                weights_mb=a.get("weights_mb"),
                quality=a.get("quality"),
                quality_status=str(a.get("quality_status", "")),
                feasible=a.get("feasible"),
                constraints={n: float(v) for n, v in zip(cons, c, strict=False)},
                proxy_s=a.get("proxy_s"),
                cached_from=a.get("cached_from"),
                duration_s=dur,
                error=str(a.get("error", "")),
                values=tuple(t.values) if t.values is not None else None,
            )
        )
    return out


def front_of(records: list[TrialRecord], objective_cols: list[str]) -> list[TrialRecord]:
    """Feasible complete trials on the Pareto front, one per arch, best first by the first
    objective."""
    ok = [
        r
        for r in records
        if r.state == "COMPLETE"
        and r.feasible
        and all(getattr(r, c) is not None for c in objective_cols)
    ]
    uniq: dict[str, TrialRecord] = {}
    for r in ok:
        if r.arch_id is not None and r.arch_id not in uniq:
            uniq[r.arch_id] = r
    rows = list(uniq.values())
    if not rows:
        return []
    v = np.array([[float(getattr(r, c)) for c in objective_cols] for r in rows])
    mask = non_dominated(v)
    front = [r for r, m in zip(rows, mask, strict=True) if m]
    return sorted(front, key=lambda r: [getattr(r, c) for c in objective_cols])


def _write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    cols = header or (list(rows[0]) if rows else ["trial"])
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(path)


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    records: list[TrialRecord]
    front: list[TrialRecord]
    objectives: list[tuple[str, str, str]]  # (objective, column, unit)
    hypervolume: float
    resumed: bool = False
    stopped_early: str = ""

    @property
    def feasible(self) -> int:
        return sum(1 for r in self.records if r.state == "COMPLETE" and r.feasible)

    def table(self) -> str:
        """The front as a text table."""
        cols = [(c, f"{o} ({u})") for o, c, u in self.objectives]
        extra = [
            (c, lab)
            for c, lab in (("latency_s_video", "latency (s/video)"), ("peak_mem_mb", "memory (MB)"))
            if c not in [x for x, _ in cols]
        ]
        heads = ["arch_id", *[lab for _, lab in cols + extra], "temporal ops"]
        lines = []
        for r in self.front:
            ops = ops_summary(r.choices.values())
            lines.append([r.arch_id or "", *[f"{getattr(r, c):.4g}" for c, _ in cols + extra], ops])
        widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(heads)]
        out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
        out += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in lines]
        return "\n".join(out)


def ops_summary(choices: Iterable[str]) -> str:
    """``attn1dx3, conv1dx6`` for choice keys such as ``attn1d(heads=8,...)``; none not counted."""
    from collections import Counter

    c = Counter(v.split("(", 1)[0] for v in choices)
    return ", ".join(f"{k}x{n}" for k, n in sorted(c.items()) if k != "none") or "all none"


def write_outputs(run_dir: str | Path) -> SearchResult:
    """(Re)write trials.csv, pareto.csv, archs/*.yaml and dashboard.html from the study."""
    info = RunInfo.load(run_dir)
    cfg, _ = info.config()
    space = info.space()
    study = open_run_study(info.run_dir)
    cost = run_cost_model(info, cfg, space)
    cons = [n for n, _, _ in constraint_names(cfg, cost)]
    records = load_records(study, space, cons)
    objectives = [
        (o, objective_column(cfg, o), objective_unit(cfg, o)) for o in cfg.search.objectives
    ]
    ocols = [c for _, c, _ in objectives]
    front = front_of(records, ocols)

    d = info.run_dir
    # a trial that failed before its choices or costs has fewer columns: the widest has them all
    header = max((list(r.row()) for r in records), key=len) if records else None
    _write_csv(d / "trials.csv", [r.row() for r in records], header)
    archs = d / "archs"
    archs.mkdir(exist_ok=True)
    front_rows = []
    for r in front:
        arch = _arch_of(space, r.choices)
        arch.save(archs / f"{arch.arch_id}.yaml")
        row = r.row()
        row["arch_yaml"] = f"archs/{arch.arch_id}.yaml"
        front_rows.append(row)
    _write_csv(d / "pareto.csv", front_rows, (list(front_rows[0]) if front_rows else header))

    # hypervolume history over the objectives (feasible complete trials only)
    vals = np.array(
        [
            [float(getattr(r, c)) if getattr(r, c) is not None else math.inf for c in ocols]
            for r in records
        ]
    ).reshape(len(records), len(ocols))
    feas = np.array([r.state == "COMPLETE" and bool(r.feasible) for r in records], dtype=bool)
    hv = hypervolume_history(vals, feas) if len(records) else np.zeros(0)
    result = SearchResult(d, records, front, objectives, float(hv[-1]) if len(hv) else 0.0)
    write_dashboard(d, study, result)
    return result


def write_dashboard(run_dir: Path, study: Any, result: SearchResult) -> Path:
    """dashboard.html: nas.report's page when available, else Optuna's own Pareto plot."""
    out = run_dir / "dashboard.html"
    try:
        import importlib

        fn = getattr(importlib.import_module("nas.report"), "write_dashboard", None)
    except ImportError:
        fn = None
    if fn is not None:
        p: Path = fn(run_dir)
        return p
    import optuna

    names = [f"{o} ({u})" for o, _, u in result.objectives]
    if len(names) in (2, 3) and any(r.state == "COMPLETE" for r in result.records):
        fig = optuna.visualization.plot_pareto_front(study, target_names=names)
    else:
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.update_layout(title="no completed trials yet")
    fig.write_html(str(out), include_plotlyjs="directory")
    return out


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


def _new_run_dir(runs_dir: Path, name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:60] or "run"
    d = runs_dir / f"{stamp}-{safe}"
    k = 1
    while d.exists():
        k += 1
        d = runs_dir / f"{stamp}-{safe}-{k}"
    d.mkdir(parents=True)
    return d


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
    finished trials, the time limit passed, or Ctrl-C."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path)
    space_text = Path(space.source).read_text(encoding="utf-8") if space.source else None
    identity = cfg.identity(space.hash)
    runs_dir = Path(cfg.search.runs_dir)
    name = cfg.name or space.name

    # the run: explicit, found by identity, or new
    info: RunInfo | None = None
    if resume is not None:
        info = RunInfo.load(resume)
        if info.identity != identity:
            raise NasError(
                f"{resume} was made with another config or space; re-run with its own "
                f"config ({Path(resume) / 'config.yaml'}) or start a new run with --new"
            )
    elif not new:
        info = find_run(runs_dir, identity)
    resumed = info is not None
    if info is None:
        d = _new_run_dir(runs_dir, name)
        storage_spec = _storage_spec(cfg)
        study_name = cfg.search.study or d.name
        (d / "config.yaml").write_text(
            yaml.safe_dump(raw_config, sort_keys=False), encoding="utf-8"
        )
        if space_text is not None:
            (d / "space.yaml").write_text(space_text, encoding="utf-8")
            _localise_space(d / "space.yaml", space)
        info = RunInfo(
            d,
            identity,
            name,
            study_name,
            storage_spec,
            cfg.search.trials,
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "running",
            str(space.source),
        ).save()
    else:
        # same identity; the trial count may grow (a re-run with more trials extends it)
        (info.run_dir / "config.yaml").write_text(
            yaml.safe_dump(raw_config, sort_keys=False), encoding="utf-8"
        )
        info = info.save(trials=max(info.trials, cfg.search.trials), status="running")

    d = info.run_dir
    with _run_lock(d):
        storage = open_storage(info.storage, d)
        study = _create_study(storage, info.study, cfg)
        # fail fast on a bad table before any worker starts; record its provenance
        cost = build_cost_model(cfg, space)
        info = info.save(table=table_provenance(cfg, cost))
        local = (
            info.storage.startswith("journal:")
            and not Path(info.storage[len("journal:") :]).is_absolute()
        )
        local = local or info.storage.startswith("sqlite:")
        recovered = _recover_stale(study, local)
        counts = _count(study)
        done = _done(counts)
        target = info.trials
        if resumed:
            log(
                f"resuming {d}: {done}/{target} trials done"
                + (f", {recovered} interrupted trial(s) queued again" if recovered else "")
            )
        else:
            log(f"run dir {d}")
        stopped = ""
        remaining = max(0, target - done)
        if remaining:
            stopped = _run_workers(d, cfg, study, remaining, target, done, progress)
        counts = _count(study)
        status = (
            "complete"
            if _done(counts) >= target
            else ("interrupted" if stopped == "interrupted" else "incomplete")
        )
        info.save(
            status=status, finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        )
        result = write_outputs(d)
    return SearchResult(
        result.run_dir,
        result.records,
        result.front,
        result.objectives,
        result.hypervolume,
        resumed,
        stopped,
    )


def _localise_space(path: Path, space: SearchSpace) -> None:
    """A copied space file must not depend on the folder it came from: a relative backbone
    path is made absolute."""
    if space.backbone.source.startswith("path:"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        raw["backbone"]["path"] = space.backbone.source[len("path:") :]
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _run_workers(
    run_dir: Path,
    cfg: SearchConfig,
    study: Any,
    remaining: int,
    target: int,
    done: int,
    progress: bool,
) -> str:
    from tqdm import tqdm

    workers = min(cfg.search.workers, remaining)
    bar = tqdm(
        total=target,
        initial=done,
        desc="search",
        unit="trial",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    tracker = _Tracker(cfg, bar)
    tracker.preload(study)
    t0 = time.monotonic()
    stopped = ""
    try:
        if workers == 1:
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
    run_dir: Path, cfg: SearchConfig, study: Any, workers: int, remaining: int, tracker: Any
) -> str:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    shares = [remaining // workers + (1 if i < remaining % workers else 0) for i in range(workers)]
    procs = [
        ctx.Process(
            target=_worker_entry,
            args=(str(run_dir), i, shares[i], cfg.search.timeout_s),
            daemon=False,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            tracker.poll(study)
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
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


class _Tracker:
    """Progress: trials done / total, feasible count, front size, hypervolume, ETA (tqdm)."""

    def __init__(self, cfg: SearchConfig, bar: Any) -> None:
        self.cfg = cfg
        self.bar = bar
        self.values: list[list[float]] = []
        self.feasible: list[bool] = []
        self.seen: set[int] = set()

    def preload(self, study: Any) -> None:
        """Trials finished before this invocation: counted in the bar's ``initial``."""
        for ft in study.get_trials(deepcopy=False):
            self._add(ft, count=False)

    def _add(self, ft: Any, count: bool = True) -> None:
        if ft.number in self.seen or ft.state.name not in ("COMPLETE", "PRUNED"):
            return
        self.seen.add(ft.number)
        if ft.state.name == "COMPLETE" and ft.values is not None:
            self.values.append(list(ft.values))
            self.feasible.append(bool(ft.user_attrs.get("costs", {}).get("feasible", True)))
        if count:
            self._postfix()
            self.bar.update(1)

    def _postfix(self) -> None:
        if self.bar.disable:
            return
        feas = sum(self.feasible)
        front, hv = 0, 0.0
        if feas:
            v = np.array(self.values)
            ok = np.array(self.feasible) & np.all(np.isfinite(v), axis=1)
            if ok.any():
                pts = v[ok]
                on_front = pts[non_dominated(pts)]
                front = len(on_front)
                # the same normalisation as hypervolume_history: the feasible range, ref 1.1
                norm = normalise(on_front, pts.min(axis=0), pts.max(axis=0))
                hv = hypervolume(norm, np.full(v.shape[1], 1.1))
        self.bar.set_postfix_str(f"feasible={feas} front={front} hv={hv:.3f}", refresh=False)

    def on_trial(self, study: Any, ft: Any) -> None:
        self._add(ft)

    def poll(self, study: Any) -> None:
        for ft in study.get_trials(deepcopy=False):
            self._add(ft)
