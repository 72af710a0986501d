"""Pareto math on plain ``(n, m)`` arrays of minimised values (no Optuna, no I/O), and the
front of a run's trial records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nas.results._box import HypervolumeBox
from nas.results._schema import Objective, TrialRecord, finite_or_inf

__all__ = [
    "box_hypervolume",
    "front_of",
    "hypervolume",
    "hypervolume_history",
    "minimised",
    "non_dominated",
    "normalise",
]


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (all <= and one <). Duplicated rows
    are all kept. Rows with a non-finite value are never on the front."""
    v = np.asarray(values, dtype=float)
    n = v.shape[0]
    finite = np.all(np.isfinite(v), axis=1) if n else np.zeros(0, bool)
    mask = finite.copy()
    idx = np.flatnonzero(finite)
    if v.ndim == 2 and v.shape[1] == 2:
        return _non_dominated_2d(v, idx, mask)
    # sort by the first objective so a row can only be dominated by earlier-or-equal rows
    order = idx[np.lexsort(v[idx].T[::-1])]
    front: list[int] = []
    for i in order:
        p = v[i]
        dominated = False
        for j in front:
            q = v[j]
            if np.all(q <= p) and np.any(q < p):
                dominated = True
                break
        if dominated:
            mask[i] = False
        else:
            front.append(int(i))
    return mask


def _non_dominated_2d(v: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A sweep in x order: O(n log n) instead of comparing against the front."""
    order = idx[np.lexsort((v[idx, 1], v[idx, 0]))]
    best_y = np.inf  # lowest y among points with a strictly smaller x
    k = 0
    while k < len(order):
        x = v[order[k], 0]
        j = k
        while j < len(order) and v[order[j], 0] == x:
            j += 1
        group = order[k:j]
        ym = v[group[0], 1]  # sorted by y within the same x
        for i in group:
            mask[i] = v[i, 1] == ym and ym < best_y
        best_y = min(best_y, ym)
        k = j
    return mask


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    pts = points[np.all(points < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    hv, best_y = 0.0, float(ref[1])
    for x, y in pts:
        if y < best_y:
            hv += (float(ref[0]) - float(x)) * (best_y - float(y))
            best_y = float(y)
    return hv


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume dominated by ``points`` (minimised) and bounded by ``ref``; exact for any
    number of objectives (slicing on the last one; fine for the front sizes a search makes)."""
    p = np.asarray(points, dtype=float)
    r = np.asarray(ref, dtype=float)
    if p.size == 0:
        return 0.0
    p = p[np.all(np.isfinite(p), axis=1) & np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    m = p.shape[1]
    if m == 1:
        return float(r[0] - p[:, 0].min())
    p = p[non_dominated(p)]
    if m == 2:
        return _hv2(p, r)
    # slice along the last objective: between consecutive levels, the (m-1)-D volume of the
    # points at or below the level
    levels = np.unique(p[:, -1])
    hv = 0.0
    for k, z in enumerate(levels):
        top = levels[k + 1] if k + 1 < len(levels) else r[-1]
        hv += hypervolume(p[p[:, -1] <= z][:, :-1], r[:-1]) * float(top - z)
    return hv


def normalise(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Scale each objective to [0, 1] over [lo, hi] (a zero range maps to 0)."""
    span = np.where(hi > lo, hi - lo, 1.0)
    out: np.ndarray = (np.asarray(values, dtype=float) - lo) / span
    return out


def box_hypervolume(points: np.ndarray, box: HypervolumeBox) -> float:
    """The fraction of a complete :class:`HypervolumeBox` that ``points`` (minimised, in the
    box's objectives' order) dominate; 0 for an empty box (a budget below the cheapest arch)."""
    m = len(box.columns)
    p = np.asarray(points, dtype=float).reshape(-1, m)
    return hypervolume(box.normalise(p), np.ones(m)) if len(p) else 0.0


def hypervolume_history(
    values: np.ndarray, feasible: np.ndarray, box: HypervolumeBox | None = None
) -> np.ndarray:
    """Hypervolume after each trial. In a complete ``box`` (the run's, recorded in run.json):
    the fraction of it dominated, which never decreases. Without one (runs written before
    boxes were recorded): in the unit box of the feasible values' range with the reference
    point at 1.1 per objective (comparable within a run only once it has ended)."""
    v = np.asarray(values, dtype=float)
    ok = np.asarray(feasible, dtype=bool) & np.all(np.isfinite(v), axis=1)
    out = np.zeros(len(v))
    if not ok.any():
        return out
    if box is not None and box.complete:
        norm = box.normalise(v)  # NaN in an empty box's objective: never inside, no volume
        ref = np.ones(v.shape[1])
    else:
        lo, hi = v[ok].min(axis=0), v[ok].max(axis=0)
        norm = normalise(v, lo, hi)
        ref = np.full(v.shape[1], 1.1)
    front = np.zeros((0, v.shape[1]))
    hv = 0.0
    for i in range(len(v)):
        # a point the front already weakly dominates adds no volume: skip the recomputation
        if ok[i] and not (len(front) and np.all(front <= norm[i], axis=1).any()):
            front = np.vstack([front, norm[i]])
            front = front[non_dominated(front)]
            hv = hypervolume(front, ref)
        out[i] = hv
    return out


def minimised(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> np.ndarray:
    """``(n, m)`` objective values of ``records``, signed so that lower is better; a missing
    value is +inf (never on a front)."""
    v = np.array(
        [[o.sign * finite_or_inf(r.value(o.column)) for o in objectives] for r in records],
        dtype=float,
    )
    return v.reshape(len(records), len(objectives))


def front_of(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """Feasible complete trials on the Pareto front, one per arch (its first trial), best
    first by the first objective."""
    uniq: dict[str, TrialRecord] = {}
    for r in records:
        if (
            r.usable
            and r.arch_id is not None
            and r.arch_id not in uniq
            and all(r.value(o.column) is not None for o in objectives)
        ):
            uniq[r.arch_id] = r
    rows = list(uniq.values())
    if not rows:
        return []
    v = minimised(rows, objectives)
    front = [(tuple(x), r) for r, x, m in zip(rows, v, non_dominated(v), strict=True) if m]
    return [r for _, r in sorted(front, key=lambda p: p[0])]
