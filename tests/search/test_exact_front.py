"""The exact front of cost-only objectives by dynamic programming (issue 17 item 5), checked
against brute force over every arch of tiny spaces and over random additive costs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from _search_helpers import ROOT, TINY
from _tiny_table import tiny_table

from nas.cost import CostModel
from nas.results import AdditiveCosts, Constraint, Objective, additive_front, non_dominated
from nas.search import exact_front
from nas.space import dim_sizes, load_space

PIPELINE = str(ROOT / "search_spaces" / "tiny-pipeline.yaml")


def _points(v: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(round(float(x), 9) for x in row) for row in v}


def _brute(
    cost: CostModel, objectives: list[Objective], constraints: list[Constraint]
) -> set[tuple[float, ...]]:
    idx = np.array(list(itertools.product(*[range(n) for n in dim_sizes(cost.space)])))
    e = cost.evaluate_indices(idx)
    ok = np.ones(len(idx), bool)
    for c in constraints:
        ok &= e[c.column] <= c.budget
    v = np.stack([e[o.column] for o in objectives], axis=1)[ok]
    return _points(v[non_dominated(v)]) if len(v) else set()


def _no_none(tmp_path: Path) -> str:
    """The tiny space with a temporal op required in every slot group: the all-none arch is
    not there to be the whole cost-only front."""
    text = Path(TINY).read_text()
    text = text.replace("    - none\n", "").replace("[none, ", "[")
    text = text.replace("name: tiny", "name: tiny-required")
    p = tmp_path / "required.yaml"
    p.write_text(text)
    return str(p)


LAT = Objective("latency", "latency_s_video", "s")
STEP = Objective("latency", "latency_ms_step", "ms")
MEM = Objective("memory", "peak_mem_mb", "MB")
WEIGHTS = Objective("weights", "weights_mb", "MB")


@pytest.mark.parametrize("which", ["tiny", "required", "pipeline"])
@pytest.mark.parametrize(
    ("objectives", "budgets"),
    [
        ([LAT, MEM], {}),
        ([LAT, MEM], {"latency_s_video": 0.9, "peak_mem_mb": 0.8}),
        ([STEP, WEIGHTS], {}),
        ([STEP, WEIGHTS], {"peak_mem_mb": 0.85, "latency_s_video": 0.95}),
        ([MEM, WEIGHTS], {"latency_ms_step": 0.9}),
    ],
)
def test_exact_front_equals_brute_force_on_tiny_spaces(
    which: str, objectives: list[Objective], budgets: dict[str, float], tmp_path: Path
) -> None:
    path = {"tiny": TINY, "required": _no_none(tmp_path), "pipeline": PIPELINE}[which]
    space = load_space(path)
    work = {"attn1d": 3.0, "attn3d": 6.0, "conv3d": 2.0, "conv1d": 0.2}
    cost = CostModel(space, tiny_table(space, work_mb=work))
    # budgets as fractions of the range of the space's values on that column
    idx = np.array(list(itertools.product(*[range(n) for n in dim_sizes(space)])))
    e = cost.evaluate_indices(idx)
    constraints = [
        Constraint(col, col, float(e[col].min() + f * (e[col].max() - e[col].min())), "")
        for col, f in budgets.items()
    ]
    got = exact_front(cost, objectives, constraints)
    assert got is not None and got.exact
    want = _brute(cost, objectives, constraints)
    assert _points(got.values) == want
    assert len(got.indices) == len(want)  # one arch per point
    e2 = cost.evaluate_indices(got.indices)  # and its rows are those arches' values
    assert np.allclose(np.stack([e2[o.column] for o in objectives], axis=1), got.values)


def test_a_required_op_space_has_a_real_trade_off(tmp_path: Path) -> None:
    space = load_space(_no_none(tmp_path))
    cost = CostModel(space, tiny_table(space, work_mb={"attn1d": 3.0, "conv1d": 0.2}))
    got = exact_front(cost, [STEP, MEM], [])
    assert got is not None and len(got.values) >= 2  # not one arch best at everything


def test_no_exact_front_for_the_quality_objective() -> None:
    space = load_space(TINY)
    cost = CostModel(space, tiny_table(space))
    quality = Objective("quality", "quality", "proxy loss", cheap=False)
    assert exact_front(cost, [LAT, quality], []) is None


@pytest.mark.parametrize("seed", range(6))
def test_dynamic_programming_on_random_costs_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(2, 5, size=5)]
    k = 2 + seed % 2  # two or three tracked sums
    terms = tuple(rng.random((n, k)).round(2) for n in sizes)
    act = tuple(rng.random(n).round(2) for n in sizes)
    base = rng.random(k)

    def value(idx: np.ndarray) -> np.ndarray:
        s = base + sum(t[idx[:, j]] for j, t in enumerate(terms))
        a = np.max([x[idx[:, j]] for j, x in enumerate(act)], axis=0)
        return np.column_stack([s, s[:, 1] + np.maximum(0.3, a)])  # tracked sums, then peak

    every = np.array(list(itertools.product(*[range(n) for n in sizes])))
    v_all = value(every)
    budgets = np.full(k, math.inf)
    budgets[0] = float(np.quantile(v_all[:, 0], 0.7))  # budgets that cut the space
    peak_budget = float(np.quantile(v_all[:, k], 0.6))
    costs = AdditiveCosts(
        base, terms, budgets, act=act, act_floor=0.3, weights=1, peak_budget=peak_budget
    )
    cand, exact = additive_front(costs)
    assert exact
    fronts = []
    for rows in (every, cand):
        v = value(rows)
        ok = (v[:, 0] <= budgets[0]) & (v[:, k] <= peak_budget)
        pts = v[ok][:, [0, k]]  # objectives: the first sum and peak memory
        fronts.append(_points(pts[non_dominated(pts)]))
    want, front = fronts
    assert front == want and want
    # thinned past a tiny limit: still feasible candidates, marked inexact
    cand2, exact2 = additive_front(costs, limit=4)
    assert not exact2 and len(cand2)


def test_a_cost_only_run_writes_its_exact_front_beside_the_sampled_one(
    in_tmp: Path, tiny_tables: Path
) -> None:
    import csv

    from _search_helpers import tiny_overrides

    from nas.search import compose_config, run_search

    cfg, raw = compose_config(
        tiny_overrides(tiny_tables, "experiment=cost_only", "search.trials=12")
    )
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)
    rows = list(csv.DictReader((res.run_dir / "exact_front.csv").open()))
    # the all-none arch is the cheapest on both costs: the whole exact front, and the search
    # (which tries it first) reaches it
    assert [r["arch_id"] for r in rows] == [r.arch_id for r in res.front]
    assert set(rows[0]) >= {"latency_s_video", "peak_mem_mb", "choice:up.0.0"}
    assert "exact front by dynamic programming" in res.exact_note
    assert "1 arch(es), 1 reached by the search" in res.exact_note

    cfg, raw = compose_config(tiny_overrides(tiny_tables, "proxy=params", "search.trials=2"))
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)
    assert res.exact_note == "" and not (res.run_dir / "exact_front.csv").exists()
