"""The exact front of a cost-only run, beside the front its sampler found.

When every objective and every budget is a cost the table gives (latency per step or per video,
weights: sums over the slot groups and the decode choice; peak memory: weights plus the largest
activation term), :func:`nas.results.additive_front` finds the exact Pareto front of the whole
space by dynamic programming over its dimensions; this module feeds it the cost model's terms,
checks that they reproduce the cost model, prices its candidates and writes
``exact_front.csv``. A run with the quality objective has no exact front (the proxy is not a
sum of anything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.cost import CostModel
from nas.results import (
    AdditiveCosts,
    Constraint,
    HypervolumeBox,
    Objective,
    TrialRecord,
    additive_front,
    box_hypervolume,
    minimised,
    non_dominated,
    write_csv,
)
from nas.search._evaluate import search_params
from nas.space import arch_from_indices, dim_sizes

__all__ = ["ADDITIVE_COLUMNS", "ExactFront", "exact_front", "write_exact_front"]

# metric columns that are a sum of one term per search dimension (plus a constant)
ADDITIVE_COLUMNS = (
    "latency_ms_step",
    "latency_s_video",
    "latency_s_text",
    "latency_s_unet",
    "latency_s_decode",
    "weights_mb",
)
PEAK = "peak_mem_mb"  # weights + the largest activation term: handled by thresholds


@dataclass(frozen=True)
class ExactFront:
    """The exact Pareto front of a cost-only run's objectives within its budgets."""

    objectives: tuple[Objective, ...]
    indices: np.ndarray  # (n, dims) choice indices, best first by the first objective
    values: np.ndarray  # (n, m) the objectives' values
    exact: bool  # False when a partial set was thinned (a huge space): a near-exact front

    def found(self, records: Sequence[TrialRecord]) -> int:
        """How many of its points the run's feasible trials reach (weakly dominate)."""
        usable = [r for r in records if r.usable]
        if not usable or not len(self.values):
            return 0
        got = minimised(usable, self.objectives)
        want = self.values * np.array([o.sign for o in self.objectives])
        tol = 1e-9 * np.maximum(1.0, np.abs(want))
        hits = [bool(np.all(got <= w + t, axis=1).any()) for w, t in zip(want, tol, strict=True)]
        return sum(hits)

    def summary(self, records: Sequence[TrialRecord], box: HypervolumeBox | None) -> str:
        """One line for the final summary."""
        how = "exact" if self.exact else "near-exact (thinned)"
        line = (
            f"{how} front by dynamic programming over the slot groups: {len(self.values)} "
            f"arch(es), {self.found(records)} reached by the search"
        )
        if box is not None and box.complete and len(self.values):
            hv = box_hypervolume(self.values * [o.sign for o in self.objectives], box)
            line += f"; its hypervolume {hv:.3f}"
        return line + " (exact_front.csv)"


def _terms(cost: CostModel, tracked: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The tracked columns as ``base + sum_j terms[j][x_j]``: each choice's difference from
    the arch of all first choices (exact for sums)."""
    sizes = dim_sizes(cost.space)
    rows = [np.zeros(len(sizes), dtype=np.int64)]
    for j, n in enumerate(sizes):
        for c in range(n):
            r = np.zeros(len(sizes), dtype=np.int64)
            r[j] = c
            rows.append(r)
    e = cost.evaluate_indices(np.asarray(rows))
    v = np.stack([e[c] for c in tracked], axis=1)
    base, terms, at = v[0], [], 1
    for n in sizes:
        terms.append(v[at : at + n] - base)
        at += n
    return base, terms


def _costs(
    cost: CostModel, objectives: Sequence[Objective], constraints: Sequence[Constraint]
) -> tuple[AdditiveCosts, list[str]] | None:
    cols = [o.column for o in objectives] + [c.column for c in constraints]
    if any(not o.cheap or o.sign < 0 for o in objectives):
        return None
    if any(c not in ADDITIVE_COLUMNS and c != PEAK for c in cols):
        return None
    tracked = list(dict.fromkeys("weights_mb" if c == PEAK else c for c in cols))
    base, terms = _terms(cost, tracked)
    budgets = np.full(len(tracked), np.inf)
    peak_budget = np.inf
    for c in constraints:
        if c.column == PEAK:
            peak_budget = min(peak_budget, c.budget)
        else:
            i = tracked.index(c.column)
            budgets[i] = min(budgets[i], c.budget)
    if PEAK not in cols:
        return AdditiveCosts(base, tuple(terms), budgets), tracked
    floor, act = cost.activation_terms()
    costs = AdditiveCosts(
        base,
        tuple(terms),
        budgets,
        act=tuple(act),
        act_floor=floor,
        weights=tracked.index("weights_mb"),
        base_peak=cost.overhead_mb,
        peak_budget=peak_budget,
    )
    return costs, tracked


def _reproduces(cost: CostModel, costs: AdditiveCosts, tracked: Sequence[str]) -> bool:
    """Whether the terms give the cost model's own numbers on a sample of arches."""
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, len(t), 64) for t in costs.terms], axis=1)
    e = cost.evaluate_indices(idx)
    got = costs.base + sum(t[idx[:, j]] for j, t in enumerate(costs.terms))
    want = np.stack([e[c] for c in tracked], axis=1)
    ok = bool(np.allclose(got, want, rtol=1e-9, atol=1e-9))
    if costs.act is not None:
        act = np.max([a[idx[:, j]] for j, a in enumerate(costs.act)], axis=0)
        peak = got[:, costs.weights] + np.maximum(costs.act_floor, act) + costs.base_peak
        ok = ok and bool(np.allclose(peak, e[PEAK], rtol=1e-9, atol=1e-9))
    return ok


def exact_front(
    cost: CostModel,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    limit: int = 200_000,
) -> ExactFront | None:
    """The exact Pareto front of ``objectives`` over the whole space within ``constraints``,
    or None when they are not all table costs (the quality objective, a maximised one) or the
    cost model's numbers are not the sums this assumes."""
    got = _costs(cost, objectives, constraints)
    if got is None or not _reproduces(cost, *got):
        return None
    costs, _ = got
    cand, exact = additive_front(costs, limit)
    e = cost.evaluate_indices(cand) if len(cand) else {}
    m = len(objectives)
    if not len(cand):
        return ExactFront(tuple(objectives), cand, np.zeros((0, m)), exact)
    ok = np.ones(len(cand), bool)
    for c in constraints:
        ok &= e[c.column] <= c.budget
    vals = np.stack([e[o.column] for o in objectives], axis=1)[ok]
    cand = cand[ok]
    nd = non_dominated(vals) if len(vals) else np.zeros(0, bool)
    vals, cand = vals[nd], cand[nd]
    _, first = np.unique(vals, axis=0, return_index=True)  # one arch per point
    order = first[np.lexsort(vals[first].T[::-1])]
    return ExactFront(tuple(objectives), cand[order], vals[order], exact)


def write_exact_front(path: Path, front: ExactFront, cost: CostModel) -> None:
    """``exact_front.csv``: arch_id, the objectives, then each dimension's choice."""
    space = cost.space
    names = [name for name, _ in search_params(space)]
    rows = []
    for idx, vals in zip(front.indices, front.values, strict=True):
        arch = arch_from_indices(space, [int(i) for i in idx])
        row: dict[str, object] = {"arch_id": arch.arch_id}
        row.update({o.column: f"{v:.6g}" for o, v in zip(front.objectives, vals, strict=True)})
        keys = [g.choices[int(i)].key for g, i in zip(space.groups, idx, strict=False)]
        if space.decode:
            keys.append(space.decode[int(idx[-1])].key)
        row.update({f"choice:{n}": k for n, k in zip(names, keys, strict=True)})
        rows.append(row)
    header = ["arch_id", *[o.column for o in front.objectives], *[f"choice:{n}" for n in names]]
    write_csv(path, rows, header)
