"""What one trial computes: costs from the table, slacks against the budgets, then (only when
feasible, and only once per arch) the proxy.

:class:`Evaluator` knows arches and numbers; :class:`TrialEvaluation` is the Optuna objective
around it: it suggests the arch, stores what was computed on the trial, reuses an arch's
quality from :class:`ArchCache` (the one cache of evaluated arches) and turns the proxy's
"pruned" signal into Optuna's.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nas.cost import CostModel
from nas.errors import NasError
from nas.results import DECODER_CHOICE, Constraint, Objective
from nas.search._study import set_constraints
from nas.space import Arch, SearchSpace, arch_from_indices, arch_indices

if TYPE_CHECKING:
    import optuna


__all__ = [
    "COST_COLUMNS",
    "ArchCache",
    "ArchCosts",
    "Cached",
    "Evaluator",
    "Outcome",
    "QualityProxy",
    "TrialEvaluation",
    "arch_of",
]

# the metric columns the cost model fills in for every trial
COST_COLUMNS = (
    "latency_s_video",
    "latency_ms_step",
    "peak_mem_mb",
    "weights_mb",
    "latency_s_text",
    "latency_s_unet",
    "latency_s_decode",
)


class QualityProxy(Protocol):
    """What the search needs of a proxy (``nas.quality.Proxy``): ``evaluate(arch)``; a proxy
    may also have ``evaluate_with_reports(arch, report)`` for pruners."""

    name: str

    def evaluate(self, arch: Arch) -> float: ...


@dataclass(frozen=True)
class ArchCosts:
    """An arch's table costs (by metric column) and its slack per budget (by name)."""

    values: dict[str, float]
    slacks: dict[str, float]

    @property
    def feasible(self) -> bool:
        return all(s <= 0 for s in self.slacks.values())

    def to_attr(self) -> dict[str, Any]:
        """The trial attribute that stores them (one attribute: each write is an fsync on the
        journal file)."""
        return {
            **{c: float(v) for c, v in self.values.items()},
            "slacks": {k: float(v) for k, v in self.slacks.items()},
            "feasible": self.feasible,
        }


class Evaluator:
    """Costs and slacks of an arch (microseconds), and its proxy quality (seconds)."""

    def __init__(
        self,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint],
        cost: CostModel,
        proxy: QualityProxy | None,
    ) -> None:
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.cost = cost
        self.proxy = proxy
        if self.needs_quality and proxy is None:
            raise NasError("the quality objective needs a proxy")

    def costs(self, arch: Arch) -> ArchCosts:
        return self.costs_at(arch_indices(self.cost.space, arch))

    def costs_at(self, indices: Sequence[int]) -> ArchCosts:
        """The costs of the arch at choice ``indices`` (:func:`nas.space.arch_indices`)."""
        e = self.cost.evaluate_indices(np.asarray([indices]))
        values = {c: float(e[c][0]) for c in COST_COLUMNS}
        slacks = {c.name: c.slack(values[c.column]) for c in self.constraints}
        return ArchCosts(values, slacks)

    @property
    def needs_quality(self) -> bool:
        return any(not o.cheap for o in self.objectives)

    def quality(self, arch: Arch, report: Callable[[int, float], bool] | None = None) -> float:
        """The proxy's value; with ``report`` (and a proxy that supports it) in rungs that a
        pruner may stop (raising ``nas.quality.ProxyPruned``)."""
        assert self.proxy is not None
        with_reports = getattr(self.proxy, "evaluate_with_reports", None)
        if report is not None and with_reports is not None:
            return float(with_reports(arch, report))
        return float(self.proxy.evaluate(arch))

    def values(self, costs: ArchCosts, quality: float | None) -> list[float]:
        """The objective values of a trial, in the objectives' order."""
        out = []
        for o in self.objectives:
            v = costs.values[o.column] if o.cheap else quality
            out.append(math.inf if v is None else float(v))
        return out


@dataclass(frozen=True)
class Outcome:
    """What running the proxy on one arch gave: complete (``value`` is the quality), pruned
    (``value`` is the step) or error (``error`` says why), and how long it took."""

    state: str  # "complete" | "pruned" | "error"
    value: float
    seconds: float
    error: str = ""
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


@dataclass(frozen=True)
class Cached:
    """An arch's proxy outcome: complete (with its quality) or pruned, and the trial that got
    it."""

    state: str  # "complete" | "pruned"
    quality: float
    trial: int


class ArchCache:
    """Arch id -> its proxy outcome, filled from the study's completed trials and from this
    worker's own evaluations, so no arch runs the proxy twice."""

    def __init__(self) -> None:
        self._known: dict[str, Cached] = {}

    def get(self, arch_id: str, study: optuna.Study | None = None) -> Cached | None:
        """The outcome for ``arch_id``; on a miss, refreshed from ``study`` first (other
        workers may have evaluated it)."""
        if arch_id not in self._known and study is not None:
            self.refresh(study)
        return self._known.get(arch_id)

    def put(self, arch_id: str, outcome: Cached) -> None:
        self._known[arch_id] = outcome

    def refresh(self, study: optuna.Study) -> None:
        import optuna

        complete = (optuna.trial.TrialState.COMPLETE,)
        for t in study.get_trials(deepcopy=False, states=complete):
            a = t.user_attrs
            q = a.get("quality")
            key = a.get("unet_id", a.get("arch_id"))  # quality belongs to the UNet
            if key is not None and q is not None and key not in self._known:
                self._known[key] = Cached("complete", float(q), t.number)

    def __len__(self) -> int:
        return len(self._known)


DECODER_PARAM = DECODER_CHOICE  # the trial param of the decode choice


def arch_of(space: SearchSpace, params: dict[str, Any]) -> Arch:
    """The arch of a trial's params (slot group -> choice key, and the decode choice)."""
    idx = []
    for g in space.groups:
        keys = [c.key for c in g.choices]
        idx.append(keys.index(params[g.name]))
    if space.decode:
        idx.append([c.key for c in space.decode].index(params[DECODER_PARAM]))
    return arch_from_indices(space, idx)


def search_params(space: SearchSpace) -> list[tuple[str, list[str]]]:
    """The trial params of a space: each slot group's choice keys, then the decode choices."""
    params = [(g.name, [c.key for c in g.choices]) for g in space.groups]
    if space.decode:
        params.append((DECODER_PARAM, [c.key for c in space.decode]))
    return params


class TrialEvaluation:
    """The Optuna objective of one worker: ``study.optimize(TrialEvaluation(...))``.

    ``pruner`` (an Optuna pruner, or None) judges the proxy's intermediate values in an
    auxiliary single-objective study ``<study>.proxy`` (multi-objective studies cannot prune).
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        study: optuna.Study,
        *,
        pruner: optuna.pruners.BasePruner | None = None,
        worker: str = "",
    ) -> None:
        self.space = space
        self.ev = evaluator
        self.study = study
        self.cache = ArchCache()
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.params = search_params(space)
        self._index = [{k: i for i, k in enumerate(keys)} for _, keys in self.params]
        expect = getattr(study.sampler, "expect_params", None)  # FixedSpaceNSGAII
        if expect is not None:
            expect(name for name, keys in self.params if len(keys) > 1)
        self.aux: optuna.Study | None = None
        if pruner is not None and evaluator.proxy is not None:
            import optuna

            self.aux = optuna.create_study(
                storage=study._storage,
                study_name=study.study_name + ".proxy",
                direction="minimize",
                pruner=pruner,
                load_if_exists=True,
            )

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        arch, costs = self.price(trial)
        if not self.ev.needs_quality:
            return self.ev.values(costs, None)
        quality = self.lookup(trial, arch, costs)
        if quality is None:
            quality = self.record(trial, arch, self.run_proxy(arch))
        return self.ev.values(costs, quality)

    def price(self, trial: optuna.Trial) -> tuple[Arch, ArchCosts]:
        """Suggest the trial's arch and store its costs and slacks on it."""
        trial.set_user_attr("worker", self.worker)
        idx = [
            self._index[j][trial.suggest_categorical(name, keys)]
            for j, (name, keys) in enumerate(self.params)
        ]
        arch = arch_from_indices(self.space, idx)
        costs = self.ev.costs_at(idx)
        trial.set_user_attr("arch_id", arch.arch_id)
        if arch.unet_id != arch.arch_id:
            trial.set_user_attr("unet_id", arch.unet_id)
        trial.set_user_attr("costs", costs.to_attr())
        set_constraints(trial, list(costs.slacks.values()))  # samplers prefer feasible arches
        return arch, costs

    def lookup(self, trial: optuna.Trial, arch: Arch, costs: ArchCosts) -> float | None:
        """The quality without running the proxy: inf for an infeasible arch (cheap
        constraints first), an evaluated arch's from the cache (raising ``TrialPruned`` for a
        pruned one); None when the proxy must run."""
        import optuna

        if not costs.feasible:
            trial.set_user_attr("quality_status", "skipped: infeasible")
            return math.inf
        hit = self.cache.get(arch.unet_id, self.study)
        if hit is None:
            return None
        trial.set_user_attr("cached_from", hit.trial)
        if hit.state == "pruned":
            trial.set_user_attr("quality_status", "pruned (cached)")
            raise optuna.TrialPruned()
        trial.set_user_attr("quality", hit.quality)
        trial.set_user_attr("quality_status", "cached")
        return hit.quality

    def run_proxy(self, arch: Arch) -> Outcome:
        """Run the proxy on ``arch`` here; its outcome."""
        from nas.quality import ProxyPruned

        t0 = time.perf_counter()
        try:
            q = self._proxy(arch)
        except ProxyPruned as e:
            return Outcome("pruned", float(e.step), time.perf_counter() - t0)
        except Exception as e:
            return Outcome("error", math.nan, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
        return Outcome("complete", q, time.perf_counter() - t0)

    def record(self, trial: optuna.Trial, arch: Arch, outcome: Outcome) -> float:
        """Store a proxy outcome on the trial and in the cache; the quality, or raises
        ``TrialPruned`` (pruned) or ``NasError`` (the proxy failed or returned a non-number)."""
        import optuna

        trial.set_user_attr("proxy_s", outcome.seconds)
        trial.set_user_attr("proxy_worker", outcome.worker)  # the process that ran the proxy
        if outcome.state == "pruned":
            trial.set_user_attr("quality_status", f"pruned at step {int(outcome.value)}")
            self.cache.put(arch.unet_id, Cached("pruned", math.nan, trial.number))
            raise optuna.TrialPruned()
        q = outcome.value
        error = outcome.error or ("" if math.isfinite(q) else f"proxy returned {q}")
        if error:
            trial.set_user_attr("error", error[:500])
            raise NasError(f"{error} for {arch.arch_id}"[:500])
        trial.set_user_attr("quality", q)
        trial.set_user_attr("quality_status", "evaluated")
        self.cache.put(arch.unet_id, Cached("complete", q, trial.number))
        return q

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
