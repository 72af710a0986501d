"""What a run writes from its study: trials.csv, pareto.csv and archs/*.yaml (the schema is
:mod:`nas.results`), and the pieces a worker builds from a run's config (cost model, proxy).

The dashboard is not drawn here: the caller asks :mod:`nas.report` for it (``nas search`` and
``nas report`` do).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.cost import CostModel, Table, find_table
from nas.results import (
    Constraint,
    Objective,
    RunInfo,
    TrialRecord,
    front_of,
    hypervolume_history,
    minimised,
    ops_summary,
    write_csv,
    write_trials,
)
from nas.results import run_table_folder as results_table_folder
from nas.search._config import SearchConfig, constraints_of, run_settings
from nas.search._evaluate import search_params
from nas.search._rundir import run_config, run_space
from nas.space import SearchSpace

if TYPE_CHECKING:
    import optuna

    from nas.quality import ProxyNoise


__all__ = [
    "SearchResult",
    "build_cost_model",
    "build_proxy",
    "load_records",
    "run_constraints",
    "run_noise",
    "run_table_folder",
    "table_provenance",
    "thread_budget",
    "usable_cores",
    "write_outputs",
]


def build_cost_model(cfg: SearchConfig, space: SearchSpace) -> CostModel:
    """The cost model of the config's device table."""
    table = Table.load(find_table(cfg.device.name, cfg.device.table))
    return CostModel(space, table, quantile=cfg.device.quantile)


def run_constraints(cfg: SearchConfig, cost: CostModel) -> tuple[Constraint, ...]:
    """The run's budgets, the device's memory budget taken from its table."""
    return constraints_of(cfg, cost.memory_budget_mb)


OVERSUBSCRIBE_ENV = "NAS_OVERSUBSCRIBE"  # "1": keep proxy.threads even above the cores


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


def thread_budget(requested: int, workers: int, cores: int, oversubscribe: bool) -> tuple[int, str]:
    """Torch threads per worker: ``requested`` unless workers x threads would exceed the
    cores (oversubscribed threads spin: 5-25x slower, measured), then what fits; with
    ``oversubscribe`` the request stands, with a warning. Returns (threads, message)."""
    fits = max(1, cores // max(1, workers))
    if requested <= fits:
        return requested, ""
    total = f"{workers} worker(s) x proxy.threads={requested} on {cores} core(s)"
    if oversubscribe:
        return requested, f"warning: {total} oversubscribes the CPU ({OVERSUBSCRIBE_ENV}=1)"
    return fits, (
        f"note: {total} would oversubscribe the CPU; using {fits} thread(s) per worker "
        f"(set {OVERSUBSCRIBE_ENV}=1 to insist)"
    )


def build_proxy(
    cfg: SearchConfig, space: SearchSpace, workers: int = 1, announce: bool = True
) -> Any | None:
    """The quality proxy, or None for a cost-only search; torch gets the threads that fit
    ``workers`` processes on this machine's cores (:func:`thread_budget`)."""
    if "quality" not in cfg.search.objectives or cfg.proxy.name == "none":
        return None
    import os
    import sys

    import torch

    from nas.quality import make_proxy

    threads, message = thread_budget(
        cfg.proxy.threads, workers, usable_cores(), os.environ.get(OVERSUBSCRIBE_ENV) == "1"
    )
    if message and announce:
        print(message, file=sys.stderr)
    torch.set_num_threads(threads)
    return make_proxy(cfg.proxy.name, space, **cfg.proxy.options)


def run_table_folder(info: RunInfo, cfg: SearchConfig) -> Path:
    """The table a run used: the path run.json recorded, else where the search looks."""
    return results_table_folder(info, cfg.device.name, cfg.device.table)


def table_provenance(cfg: SearchConfig, cost: CostModel) -> dict[str, Any]:
    """Where the latency/memory numbers come from: path, device, row sources, versions."""
    meta = cost.table.info
    sources = Counter(r.source for r in cost.table.rows.values())
    folder = cost.table.folder or find_table(cfg.device.name, cfg.device.table)
    return {
        "path": str(folder.resolve()),
        "device": meta.device_name if meta.device_name != "unknown" else cfg.device.name,
        "description": meta.description,
        "backend": meta.backend,
        "sources": dict(sorted(sources.items())),  # rows per provenance (measured, estimated, ...)
        "quantile": cfg.device.quantile,
        "versions": dict(meta.versions),
        "created": meta.created,
        "updated": meta.updated,
        "memory_budget_mb": cost.memory_budget_mb,
    }


def _slacks(attrs: dict[str, Any], constraints: Sequence[Constraint]) -> dict[str, float]:
    """Slacks by budget name; trials written before slacks were named kept them in the
    budgets' order."""
    named = attrs.get("slacks")
    if isinstance(named, dict):
        return {str(k): float(v) for k, v in named.items()}
    old = list(attrs.get("constraints", []))
    if len(old) == len(constraints):
        return {c.name: float(v) for c, v in zip(constraints, old, strict=True)}
    return {}


def load_records(
    study: optuna.Study,
    space: SearchSpace,
    constraints: Sequence[Constraint],
    noise: ProxyNoise | None = None,
) -> list[TrialRecord]:
    """Every trial of the study as a :class:`TrialRecord`, by number; ``noise`` (the
    proxy's seed-to-seed spread) goes on every trial with a finite quality."""
    out = []
    groups = [name for name, _ in search_params(space)]
    for t in study.get_trials(deepcopy=False):
        costs = t.user_attrs.get("costs", {})
        a = {**costs, **t.user_attrs}
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
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
                latency_s_text=a.get("latency_s_text"),
                latency_s_unet=a.get("latency_s_unet"),
                latency_s_decode=a.get("latency_s_decode"),
                quality=a.get("quality"),
                quality_status=str(a.get("quality_status", "")),
                feasible=a.get("feasible"),
                slacks=_slacks(costs, constraints),
                proxy_s=a.get("proxy_s"),
                cached_from=a.get("cached_from"),
                duration_s=dur,
                error=str(a.get("error", "")),
                **_noise_fields(a.get("quality"), noise),
            )
        )
    return out


def _noise_fields(quality: Any, noise: ProxyNoise | None) -> dict[str, Any]:
    if noise is None or not isinstance(quality, (int, float)) or not math.isfinite(quality):
        return {}
    return {"quality_noise": noise.std, "quality_noise_source": noise.source}


def run_noise(cfg: SearchConfig, space: SearchSpace) -> ProxyNoise | None:
    """The run's proxy noise (``proxy.noise``), or None without a quality objective."""
    from nas.quality import proxy_noise

    if "quality" not in cfg.search.objectives:
        return None
    return proxy_noise(cfg.proxy.name, cfg.proxy.options, space.name, cfg.proxy.noise)


@dataclass(frozen=True)
class SearchResult:
    """A run's outputs after an invocation."""

    run_dir: Path
    records: list[TrialRecord]
    front: list[TrialRecord]
    objectives: tuple[Objective, ...]
    hypervolume: float
    resumed: bool = False
    stopped_early: str = ""
    exact_note: str = ""  # cost-only runs: the exact front's line (exact_front.csv)

    @property
    def feasible(self) -> int:
        return sum(1 for r in self.records if r.usable)

    def table(self) -> str:
        """The front as a text table."""
        cols = [(o.column, o.label) for o in self.objectives]
        extra = [
            (c, lab)
            for c, lab in (("latency_s_video", "latency (s/video)"), ("peak_mem_mb", "memory (MB)"))
            if c not in [x for x, _ in cols]
        ]
        heads = ["arch_id", *[lab for _, lab in cols + extra], "temporal ops"]
        lines = []
        for r in self.front:
            vals = [f"{r.value(c):.4g}" for c, _ in cols + extra]
            lines.append([r.arch_id or "", *vals, ops_summary(r.choices.values())])
        widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(heads)]
        out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
        out += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in lines]
        return "\n".join(out)


def write_outputs(run_dir: str | Path, study: optuna.Study | None = None) -> SearchResult:
    """(Re)write run.json's settings, trials.csv, pareto.csv and archs/*.yaml from the study
    (``study``: the run's study already open in this process, else opened from the run dir)."""
    from nas.search._evaluate import arch_of
    from nas.search._exact import exact_front, write_exact_front
    from nas.search._study import open_run_study

    info = RunInfo.load(run_dir)
    cfg, _ = run_config(info)
    space = run_space(info)
    cost = CostModel(space, Table.load(run_table_folder(info, cfg)), quantile=cfg.device.quantile)
    constraints = run_constraints(cfg, cost)
    settings = run_settings(cfg, constraints)
    if info.settings != settings:  # a run dir from an older nas gets its settings
        info = info.save(settings=settings)
    study = study if study is not None else open_run_study(info.run_dir)
    records = load_records(study, space, constraints, run_noise(cfg, space))
    front = front_of(records, settings.objectives)
    vals = minimised(records, settings.objectives)
    feas = np.array([r.usable for r in records], dtype=bool)
    box = info.box
    if box is not None and not box.complete:  # the first proxy result fixes its bounds
        for row in vals[feas]:
            box = box.fill(row)
            if box.complete:
                info = info.save(box=box)
                break

    d = info.run_dir
    header = write_trials(d / "trials.csv", records)
    archs = d / "archs"
    archs.mkdir(exist_ok=True)
    front_rows = []
    for r in front:
        arch = arch_of(space, r.choices)
        arch.save(archs / f"{arch.arch_id}.yaml")
        front_rows.append({**r.row(), "arch_yaml": f"archs/{arch.arch_id}.yaml"})
    write_csv(d / "pareto.csv", front_rows, list(front_rows[0]) if front_rows else header)

    # hypervolume history over the objectives (feasible complete trials only), in the box
    hv = hypervolume_history(vals, feas, box) if len(records) else np.zeros(0)
    exact = exact_front(cost, settings.objectives, constraints)
    note = ""
    if exact is not None:
        write_exact_front(d / "exact_front.csv", exact, cost)
        note = exact.summary(records, box)
    last = float(hv[-1]) if len(hv) else 0.0
    return SearchResult(d, records, front, settings.objectives, last, exact_note=note)
