"""The statistics of ``nas validate latency``: predicted vs measured, with a bootstrap interval
for Kendall's tau, the measured-vs-measured ceiling, and runs combined from several folders.

Pure numpy/scipy on per-arch records (the rows of ``validate_latency.csv``), so a finished run
can be re-read and several runs combined without measuring anything.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError
from nas.fileio import read_utf8

__all__ = [
    "METRICS",
    "bootstrap_tau",
    "combine_runs",
    "read_records",
    "residual_by_op",
    "stats_text",
    "summarize",
]

# metric name -> (predicted column, measured column); the ceiling compares two measurements
METRICS = {
    "latency (rows + network rows)": ("predicted_ms", "measured_ms"),
    "latency (rows only)": ("predicted_rows_ms", "measured_ms"),
    "peak memory (rows + network)": ("predicted_mem_mb", "measured_mem_mb"),
    "ceiling: pass 2 vs pass 1": ("measured_ms_pass2", "measured_ms_pass1"),
}


def _kendall(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if len(a) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def bootstrap_tau(
    pred: np.ndarray, meas: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of Kendall's tau (arches resampled with
    replacement; resamples with a constant side are skipped)."""
    n = len(pred)
    if n < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        t = _kendall(pred[i], meas[i])
        if math.isfinite(t):
            taus.append(t)
    if not taus:
        return float("nan"), float("nan")
    lo, hi = np.percentile(np.asarray(taus), [2.5, 97.5])
    return float(lo), float(hi)


def pair_stats(pred: np.ndarray, meas: np.ndarray, *, n_boot: int = 1000) -> dict[str, float]:
    """Share within +-10 %, RMSPE, mean signed error, Kendall's tau and its 95 % interval."""
    rel = (pred - meas) / meas
    lo, hi = bootstrap_tau(pred, meas, n_boot=n_boot)
    return {
        "n": float(len(pred)),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "rmspe_pct": float(math.sqrt(float(np.mean(rel**2))) * 100),
        "bias_pct": float(np.mean(rel) * 100),
        "kendall_tau": _kendall(pred, meas),
        "tau_lo": lo,
        "tau_hi": hi,
    }


def _column(records: Sequence[dict[str, Any]], col: str) -> np.ndarray:
    out = []
    for r in records:
        v = r.get(col)
        out.append(float(v) if v not in (None, "") else math.nan)
    return np.asarray(out, dtype=float)


def summarize(
    records: Sequence[dict[str, Any]], *, n_boot: int = 1000
) -> dict[str, dict[str, float]]:
    """Statistics per metric (:data:`METRICS`) over the records that have both figures."""
    stats: dict[str, dict[str, float]] = {}
    for name, (pc, mc) in METRICS.items():
        pred, meas = _pairs(records, pc, mc)
        if len(pred) >= 2:
            stats[name] = pair_stats(pred, meas, n_boot=n_boot)
    return stats


def _pairs(records: Sequence[dict[str, Any]], pc: str, mc: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``pc`` and ``mc`` over the records that have both figures (a measured one > 0)."""
    pred, meas = _column(records, pc), _column(records, mc)
    ok = np.isfinite(pred) & np.isfinite(meas) & (meas > 0)
    return pred[ok], meas[ok]


def kendall_by_piece(records: Sequence[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Latency Kendall tau (predicted against measured) within each piece of a folder: the
    arches measured by one ``--seed`` run (the ``seed`` column), each timed in one stretch.
    Pooled over pieces timed on different days, the machine's drift reorders pairs across
    pieces; within a piece it cannot. Pieces of fewer than 3 arches are left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r.get("seed", "")), []).append(r)
    pc, mc = METRICS["latency (rows + network rows)"]
    out: dict[str, tuple[int, float]] = {}
    for seed, rs in sorted(groups.items()):
        pred, meas = _pairs(rs, pc, mc)
        if len(pred) >= 3:
            out[seed] = (len(pred), _kendall(pred, meas))
    return out


def residual_by_op(records: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Where the rows miss what the network runs: measured - predicted (ms) regressed by least
    squares on each arch's count of slots per temporal op, plus a fixed term. A large per-slot
    figure marks an op whose cost inside the network differs from its row alone (a fusion or
    layout effect the table's unit misses). None with fewer arches than unknowns + 2."""
    ops = sorted({kv.split(":")[0] for r in records for kv in str(r.get("ops", "")).split(";")
                  if kv and not kv.startswith("none:")})  # fmt: skip
    if len(records) < len(ops) + 3:
        return None
    x = np.zeros((len(records), len(ops) + 1))
    y = np.zeros(len(records))
    for i, r in enumerate(records):
        counts = dict(kv.split(":") for kv in str(r.get("ops", "")).split(";") if kv)
        x[i, : len(ops)] = [float(counts.get(op, 0)) for op in ops]
        x[i, -1] = 1.0
        y[i] = float(r["measured_ms"]) - float(r["predicted_ms"])
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    out = {op: float(c) for op, c in zip(ops, coef[:-1], strict=True)}
    out["fixed"] = float(coef[-1])
    return out


def stats_text(stats: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{'metric':<32}{'arches':>7}{'within 10%':>11}{'RMSPE %':>9}{'bias %':>8}"
        f"{'Kendall tau [95% CI]':>24}"
    ]
    for name, s in stats.items():
        ci = f"[{s['tau_lo']:.2f}, {s['tau_hi']:.2f}]" if math.isfinite(s["tau_lo"]) else ""
        lines.append(
            f"{name:<32}{int(s['n']):>7}{s['within_10pct'] * 100:>10.0f}%{s['rmspe_pct']:>9.1f}"
            f"{s['bias_pct']:>+8.1f}{s['kendall_tau']:>10.3f} {ci:>13}"
        )
    return "\n".join(lines)


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """The per-arch records of a finished (or partial) run folder's ``validate_latency.csv``."""
    path = Path(folder) / "validate_latency.csv"
    if not path.is_file():
        raise NasError(
            f"{path}: missing: not a `nas validate latency` run folder (or it measured no arch "
            "yet: rerun the same command to resume it)"
        )
    return list(csv.DictReader(io.StringIO(read_utf8(path), newline="")))


def combine_runs(
    folders: Sequence[str | Path], *, n_boot: int = 1000
) -> dict[str, dict[str, dict[str, float]]]:
    """Statistics of several run folders: per geometry (a ranking compares arches at one
    geometry) and, for the shares within 10 %, over every arch of every folder ("all").
    An arch measured in two folders at the same geometry counts once (the first folder's)."""
    by_geo: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for f in folders:
        for r in read_records(f):
            key = (r["geometry"], r["arch_id"])
            if key not in seen:
                seen.add(key)
                by_geo.setdefault(r["geometry"], []).append(r)
    out = {g: summarize(rs, n_boot=n_boot) for g, rs in by_geo.items()}
    if len(by_geo) > 1:
        everything = [r for rs in by_geo.values() for r in rs]
        merged = summarize(everything, n_boot=0)
        for s in merged.values():  # a rank over mixed geometries means nothing
            s["kendall_tau"] = s["tau_lo"] = s["tau_hi"] = float("nan")
        out["all geometries"] = merged
    return out
