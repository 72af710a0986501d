"""The exact Pareto front of costs that add up over a space's dimensions, by dynamic programming.

An arch takes one choice per dimension (slot group, then the decode choice). When every cost
that matters is a sum of one term per dimension (latency per step or per video, weights), the
front is found without enumerating the space: walk the dimensions, extending every partial sum
by every choice, and keep only the partial sums that no other partial sum dominates (a
dominated partial sum can only lead to dominated arches, since the terms still to come are
added to both alike).

Peak memory is not a sum: it is the weights (a sum) plus the *largest* activation term of any
dimension. It is handled by thresholds: for each activation level ``t`` the space offers, the
dimensions keep only their choices whose term is at most ``t``, and within that restricted
space peak memory is ``weights + max(floor, t)``: an additive cost again. Every arch is priced
exactly under its own level, and under a higher one at most what it really costs, so the union
of the levels' fronts, re-priced and filtered, holds the exact front.

Budgets prune partial sums early: terms are shifted so each dimension's smallest is 0, so a
partial sum above a budget stays above it. :func:`additive_front` returns candidate index rows
(a superset of the front's arches); the caller prices them with the real cost model and keeps
the feasible non-dominated ones. If a partial set grows past ``limit``, it is thinned on a
grid (one partial sum per cell) and the result is marked inexact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas.results._pareto import non_dominated

__all__ = ["AdditiveCosts", "additive_front"]


@dataclass(frozen=True)
class AdditiveCosts:
    """Costs of a space's arches as sums of per-dimension terms (``k`` tracked costs).

    Cost ``i`` of the arch with indices ``x`` is ``base[i] + sum_j terms[j][x_j, i]``. With
    ``act`` (one array per dimension) peak memory is ``base_peak + tracked[weights] +
    max(act_floor, max_j act[j][x_j])``; ``peak_budget`` bounds it."""

    base: np.ndarray  # (k,)
    terms: tuple[np.ndarray, ...]  # per dimension: (choices, k)
    budgets: np.ndarray  # (k,): an upper bound on each tracked cost (inf: none)
    act: tuple[np.ndarray, ...] | None = None  # per dimension: (choices,)
    act_floor: float = 0.0
    weights: int = -1  # the tracked cost that peak memory adds the activation maximum to
    base_peak: float = 0.0  # what peak memory adds besides weights and activations
    peak_budget: float = math.inf


def additive_front(costs: AdditiveCosts, limit: int = 200_000) -> tuple[np.ndarray, bool]:
    """Candidate index rows ``(n, dims)`` whose arches include every arch of the exact Pareto
    front of the tracked costs (with peak memory, when ``act`` is given) within the budgets,
    and whether the search was exact (False when a partial set was thinned past ``limit``)."""
    levels: Sequence[float | None] = [None]
    if costs.act is not None:
        found = {max(costs.act_floor, float(v)) for a in costs.act for v in a}
        levels = [*sorted(found | {costs.act_floor})]
    rows: list[np.ndarray] = []
    exact = True
    for t in levels:
        allowed = [np.ones(len(x), bool) for x in costs.terms]
        if t is not None and costs.act is not None:
            allowed = [a <= t for a in costs.act]
        if not all(m.any() for m in allowed):
            continue
        cand, ok = _dp(costs, allowed, t, limit)
        exact = exact and ok
        if len(cand):
            rows.append(cand)
    dims = len(costs.terms)
    return (np.unique(np.vstack(rows), axis=0) if rows else np.zeros((0, dims), int)), exact


def _dp(
    costs: AdditiveCosts, allowed: Sequence[np.ndarray], level: float | None, limit: int
) -> tuple[np.ndarray, bool]:
    """The non-dominated partial sums over the dimensions, choices restricted to ``allowed``;
    the index rows of the last set."""
    k = len(costs.base)
    shift = [x[m].min(axis=0) for x, m in zip(costs.terms, allowed, strict=True)]
    base = costs.base + np.sum(shift, axis=0) if shift else costs.base.copy()
    caps = costs.budgets.astype(float).copy()
    if level is not None and costs.weights >= 0:
        caps[costs.weights] = min(
            caps[costs.weights], costs.peak_budget - costs.base_peak - max(costs.act_floor, level)
        )
    if np.any(base > caps):
        return np.zeros((0, len(costs.terms)), int), True
    sums = base.reshape(1, k)
    picks = np.zeros((1, 0), dtype=np.int64)
    exact = True
    for j, (x, m) in enumerate(zip(costs.terms, allowed, strict=True)):
        choices = np.flatnonzero(m)
        step = x[choices] - shift[j]  # >= 0
        new = (sums[:, None, :] + step[None, :, :]).reshape(-1, k)
        parent = np.repeat(np.arange(len(sums)), len(choices))
        choice = np.tile(choices, len(sums))
        keep = np.all(new <= caps + 1e-9 * np.abs(caps), axis=1)
        new, parent, choice = new[keep], parent[keep], choice[keep]
        if len(new) > limit:
            sel = _thin(new, limit)
            new, parent, choice, exact = new[sel], parent[sel], choice[sel], False
        nd = non_dominated(new) if len(new) else np.zeros(0, bool)
        # one partial sum per distinct value: equal sums lead to equal arches' costs
        _, first = np.unique(new[nd], axis=0, return_index=True)
        sel = np.flatnonzero(nd)[np.sort(first)]
        sums = new[sel]
        picks = np.hstack([picks[parent[sel]], choice[sel, None]])
        if not len(sums):
            break
    return picks, exact


def _thin(values: np.ndarray, limit: int) -> np.ndarray:
    """Indices of one row per cell of a grid over ``values``' range with about ``limit``
    cells (the row with the smallest sum in each)."""
    k = values.shape[1]
    per_axis = max(2, int(limit ** (1.0 / k)))
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cells = np.minimum(((values - lo) / span * per_axis).astype(np.int64), per_axis - 1)
    order = np.argsort(values.sum(axis=1), kind="stable")
    _, first = np.unique(cells[order], axis=0, return_index=True)
    out: np.ndarray = order[first]
    return out
