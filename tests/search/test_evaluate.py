"""Trial evaluation on its own: an in-memory Optuna study, the tiny table, a counting proxy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.cost import CostModel, Table
from nas.results import Constraint, Objective
from nas.search import ArchCache, Cached, Evaluator, TrialEvaluation, arch_of
from nas.space import Arch, SearchSpace, sample_arch

LATENCY = Objective("latency", "latency_s_video", "s")
MEMORY = Objective("memory", "peak_mem_mb", "MB")
QUALITY = Objective("quality", "quality", "proxy loss", cheap=False)


class CountingProxy:
    """Quality = the arch's latency (any deterministic number will do), counting calls."""

    name = "counting"

    def __init__(self, cost: CostModel, fail: str = "") -> None:
        self.cost = cost
        self.calls: list[str] = []
        self.fail = fail

    def evaluate(self, arch: Arch) -> float:
        self.calls.append(arch.arch_id)
        if self.fail == "nan":
            return math.nan
        if self.fail == "prune":
            from nas.quality import ProxyPruned

            raise ProxyPruned(arch.arch_id, 3, 1.0)
        return self.cost.evaluate(arch).latency_s_video


@pytest.fixture(scope="module")
def cost(tiny_space: SearchSpace, tiny_tables: Path) -> CostModel:
    return CostModel(tiny_space, Table.load(tiny_tables / "cpu-ort"))


def _params(space: SearchSpace, arch: Arch) -> dict[str, str]:
    return {g.name: arch.choice(g.slots[0]).key for g in space.groups}


def _run(
    space: SearchSpace, ev: Evaluator, archs: list[Arch]
) -> tuple[optuna.Study, TrialEvaluation]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=[o.direction for o in ev.objectives])
    for a in archs:
        study.enqueue_trial(_params(space, a))
    objective = TrialEvaluation(space, ev, study)
    study.optimize(objective, n_trials=len(archs), catch=(Exception,))
    return study, objective


def test_costs_and_slacks_are_named(tiny_space: SearchSpace, cost: CostModel) -> None:
    budget = Constraint("latency_s", "latency_s_video", 0.4, "s")
    mem = Constraint("memory_mb", "peak_mem_mb", 50.0, "MB")
    ev = Evaluator((LATENCY, MEMORY), (budget, mem), cost, None)
    arch = sample_arch(tiny_space, np.random.default_rng(0))
    c = ev.costs(arch)
    e = cost.evaluate(arch)
    assert c.values["latency_s_video"] == e.latency_s_video
    assert c.slacks == {
        "latency_s": pytest.approx((e.latency_s_video - 0.4) / 0.4),
        "memory_mb": pytest.approx((e.peak_mem_mb - 50.0) / 50.0),
    }
    assert c.feasible == (e.latency_s_video <= 0.4 and e.peak_mem_mb <= 50.0)
    assert ev.values(c, None) == [e.latency_s_video, e.peak_mem_mb]


def test_quality_runs_once_per_arch_and_never_for_infeasible(
    tiny_space: SearchSpace, cost: CostModel
) -> None:
    rng = np.random.default_rng(1)
    distinct = {a.arch_id: a for a in (sample_arch(tiny_space, rng) for _ in range(40))}
    archs = list(distinct.values())[:12]
    lat = sorted(cost.evaluate(a).latency_s_video for a in archs)
    budget = Constraint("latency_s", "latency_s_video", lat[6], "s")  # about half feasible
    proxy = CountingProxy(cost)
    ev = Evaluator((LATENCY, QUALITY), (budget,), cost, proxy)
    study, objective = _run(tiny_space, ev, archs + archs[:4])  # the first four again
    trials = study.get_trials()
    assert all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        arch = arch_of(tiny_space, t.params)
        feasible = cost.evaluate(arch).latency_s_video <= budget.budget
        assert t.user_attrs["costs"]["feasible"] == feasible
        assert t.user_attrs["costs"]["slacks"].keys() == {"latency_s"}
        if not feasible:
            assert t.user_attrs["quality_status"] == "skipped: infeasible"
            assert t.values[1] == math.inf
        else:
            assert t.values[1] == pytest.approx(cost.evaluate(arch).latency_s_video)
    # the proxy ran once per distinct feasible arch; repeats were served from the cache
    feasible_ids = {a.arch_id for a in archs if cost.evaluate(a).latency_s_video <= budget.budget}
    assert sorted(proxy.calls) == sorted(feasible_ids)
    cached = [t for t in trials if t.user_attrs.get("quality_status") == "cached"]
    assert {t.user_attrs["arch_id"] for t in cached} == {
        a.arch_id for a in archs[:4] if a.arch_id in feasible_ids
    }
    assert len(objective.cache) == len(feasible_ids)


def test_a_pruned_proxy_prunes_the_trial_and_its_repeats(
    tiny_space: SearchSpace, cost: CostModel
) -> None:
    arch = sample_arch(tiny_space, np.random.default_rng(2))
    proxy = CountingProxy(cost, fail="prune")
    ev = Evaluator((LATENCY, QUALITY), (), cost, proxy)
    study, _ = _run(tiny_space, ev, [arch, arch])
    a, b = study.get_trials()
    assert a.state.name == b.state.name == "PRUNED"
    assert a.user_attrs["quality_status"] == "pruned at step 3"
    assert b.user_attrs["quality_status"] == "pruned (cached)"
    assert proxy.calls == [arch.arch_id]


def test_a_non_finite_proxy_value_fails_the_trial(tiny_space: SearchSpace, cost: CostModel) -> None:
    arch = sample_arch(tiny_space, np.random.default_rng(3))
    ev = Evaluator((LATENCY, QUALITY), (), cost, CountingProxy(cost, fail="nan"))
    study, objective = _run(tiny_space, ev, [arch])
    (t,) = study.get_trials()
    assert t.state.name == "FAIL" and t.user_attrs["error"] == "proxy returned nan"
    assert len(objective.cache) == 0


def test_cache_refreshes_from_the_study_on_a_miss() -> None:
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            value=1.0, user_attrs={"arch_id": "abc", "quality": 0.25}, params={}, distributions={}
        )
    )
    cache = ArchCache()
    assert cache.get("abc") is None  # no study given: no refresh
    assert cache.get("abc", study) == Cached("complete", 0.25, 0)
    cache.put("xyz", Cached("pruned", math.nan, 7))
    assert cache.get("xyz", study) is not None and len(cache) == 2


def test_quality_objective_needs_a_proxy(cost: CostModel) -> None:
    from nas.errors import NasError

    with pytest.raises(NasError, match="needs a proxy"):
        Evaluator((LATENCY, QUALITY), (), cost, None)


def test_thread_budget_never_oversubscribes_unless_asked() -> None:
    from nas.search import thread_budget

    assert thread_budget(2, 1, 2, False) == (2, "")  # the default on 2 cores
    threads, note = thread_budget(2, 2, 2, False)  # two workers: one thread each
    assert threads == 1 and "would oversubscribe" in note and "NAS_OVERSUBSCRIBE=1" in note
    assert thread_budget(4, 3, 2, False)[0] == 1  # never below one
    threads, warning = thread_budget(2, 2, 2, True)  # asked for: kept, with a warning
    assert threads == 2 and warning.startswith("warning:")
    assert thread_budget(1, 2, 16, False) == (1, "")


def test_progress_counts_the_front_in_arches() -> None:
    from types import SimpleNamespace

    from nas.search import Tracker

    bar = SimpleNamespace(disable=True, update=lambda n: None)
    tr = Tracker(bar)

    def trial(n: int, arch: str, values: list[float]) -> object:
        attrs = {"arch_id": arch, "costs": {"feasible": True}}
        return SimpleNamespace(
            number=n, state=SimpleNamespace(name="COMPLETE"), values=values, user_attrs=attrs
        )

    for n, (arch, v) in enumerate([("a", [1.0, 3.0]), ("a", [1.0, 3.0]), ("b", [2.0, 1.0])]):
        tr._add(trial(n, arch, v))  # type: ignore[arg-type]
    assert tr.summary().startswith("feasible=3 front=2 ")  # "a" twice is one arch
