"""What one trial computes: costs from the table, constraints, then (only when feasible) the
proxy. Optuna-facing glue lives in ``_run.py``; this module knows arches and numbers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.cost import CostModel
from nas.search._config import SearchConfig
from nas.space import Arch, SearchSpace

__all__ = ["OBJECTIVE_INFO", "ArchCosts", "Evaluator", "constraint_names"]

# objective -> (column in trials.csv, unit) ; all are minimised
OBJECTIVE_INFO: dict[str, tuple[str, str]] = {
    "latency_video": ("latency_s_video", "s"),
    "latency_step": ("latency_ms_step", "ms"),
    "memory": ("peak_mem_mb", "MB"),
    "quality": ("quality", "proxy loss"),
}


def objective_column(cfg: SearchConfig, objective: str) -> str:
    if objective == "latency":
        return OBJECTIVE_INFO[f"latency_{cfg.search.latency}"][0]
    return OBJECTIVE_INFO[objective][0]


def objective_unit(cfg: SearchConfig, objective: str) -> str:
    if objective == "latency":
        return OBJECTIVE_INFO[f"latency_{cfg.search.latency}"][1]
    return OBJECTIVE_INFO[objective][1]


@dataclass(frozen=True)
class ArchCosts:
    latency_s_video: float
    latency_ms_step: float
    peak_mem_mb: float
    weights_mb: float
    constraints: tuple[float, ...]  # <= 0 is satisfied, in the order of constraint_names()

    @property
    def feasible(self) -> bool:
        return all(c <= 0 for c in self.constraints)


def memory_budget(cfg: SearchConfig, cost: CostModel) -> float | None:
    m = cfg.constraints.memory_mb
    if m == "device":
        b = cost.memory_budget_mb
        return b if math.isfinite(b) else None
    return None if m is None else float(m)


def constraint_names(cfg: SearchConfig, cost: CostModel) -> list[tuple[str, str, float]]:
    """(name, measured column, budget) per active constraint."""
    out = []
    if cfg.constraints.latency_s is not None:
        out.append(("latency_s", "latency_s_video", cfg.constraints.latency_s))
    if cfg.constraints.latency_ms_step is not None:
        out.append(("latency_ms_step", "latency_ms_step", cfg.constraints.latency_ms_step))
    mem = memory_budget(cfg, cost)
    if mem is not None:
        out.append(("memory_mb", "peak_mem_mb", mem))
    return out


class Evaluator:
    """Costs and constraints of an arch (microseconds), and its proxy quality (seconds)."""

    def __init__(
        self,
        cfg: SearchConfig,
        space: SearchSpace,
        cost: CostModel,
        proxy: Any | None,
    ) -> None:
        self.cfg = cfg
        self.space = space
        self.cost = cost
        self.proxy = proxy
        self.constraints = constraint_names(cfg, cost)

    def costs(self, arch: Arch) -> ArchCosts:
        e = self.cost.evaluate(arch)
        vals = {
            "latency_s_video": e.latency_s_video,
            "latency_ms_step": e.latency_ms_step,
            "peak_mem_mb": e.peak_mem_mb,
        }
        # relative slack: (value - budget) / budget, so constraints of different units compare
        cons = tuple((vals[col] - b) / b for _, col, b in self.constraints)
        return ArchCosts(e.latency_s_video, e.latency_ms_step, e.peak_mem_mb, e.weights_mb, cons)

    def quality(self, arch: Arch, report: Callable[[int, float], bool] | None = None) -> float:
        """The proxy's value; with ``report`` (and a proxy that supports it) in rungs that a
        pruner may stop (raising ``nas.quality.ProxyPruned``)."""
        assert self.proxy is not None
        if report is not None and hasattr(self.proxy, "evaluate_with_reports"):
            return float(self.proxy.evaluate_with_reports(arch, report))
        return float(self.proxy.evaluate(arch))
