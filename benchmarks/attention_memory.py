"""How many arches of a space each attention execution model puts over the memory budget.

For every row of the space that holds attention (the backbone's spatial ``attn`` rows and the
temporal ``attn1d``/``xattn1d``/``attn3d``/``xattn3d`` rows), the row is converted to Core ML
for real (as ``nas profile`` does) and its peak memory re-estimated under each attention model
(``fused``, ``split_heads`` per head, ``split_heads`` per 512-query chunk, ``materialized``:
profilers/_estimator.py). The other rows come from the device's table. For each model a
``CostModel`` is built and the arches whose peak memory exceeds the device budget are
**counted exactly, without enumerating them**: an arch's peak is the sum of its choices'
weights plus the largest of their working sets (nas/cost/_model.py), so for every candidate
largest working set M the arches whose choices all stay at or below M and whose weights fit in
the rest of the budget are counted by convolving the per-group weight histograms (weights
rounded up to 1/64 MB: a conservative count). The count is checked against the CostModel on
random arches.

Run: ``python benchmarks/attention_memory.py`` (converts about 15 rows: a few minutes on a
2-core CPU the first time, seconds once cached under ``--cache``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.cost import CostModel, Table, rows_for_space  # noqa: E402
from nas.mil import MilSummary, inspect_mlprogram  # noqa: E402
from nas.space import SearchSpace, dim_sizes, load_space  # noqa: E402
from profilers import (  # noqa: E402
    AttentionModel,
    Device,
    build_row_module,
    convert_row,
    get_device,
    roofline,
)

CACHE = Path.home() / ".cache" / "nas" / "estimator" / "rows"
MODELS = (
    AttentionModel("fused"),
    AttentionModel("split_heads"),
    AttentionModel("split_heads", 512),
    AttentionModel("materialized"),
)
ATTENTION_OPS = ("attn", "attn1d", "xattn1d", "attn3d", "xattn3d")
STEP = 64.0  # weight bins per MB


def row_summary(key: str, device: Device, cache: Path, build: object) -> MilSummary:
    f = cache / f"{device.name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    if f.is_file():
        return MilSummary.from_dict(json.loads(f.read_text()))
    with tempfile.TemporaryDirectory(prefix="attn-mem-") as tmp:
        _, path = convert_row(build, device, tmp)  # type: ignore[arg-type]
        s = inspect_mlprogram(path, float_bytes=2 if device.precision == "fp16" else 4)
    cache.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(s.to_dict()))
    return s


def tables_per_model(space: SearchSpace, table: Table, device: Device,
                     cache: Path) -> dict[str, Table]:  # fmt: skip
    """The table with its attention rows re-estimated under each model."""
    assert device.estimator is not None
    out = {m.label: Table(dict(table.meta), dict(table.rows), table.folder) for m in MODELS}
    groups = space.backbone.config.norm_num_groups
    for spec in rows_for_space(space, device.precision):
        if spec.op not in ATTENTION_OPS:
            continue
        s = row_summary(spec.key, device, cache, build_row_module(spec, groups=groups))
        for m in MODELS:
            est = roofline(s, replace(device.estimator, attention=m), 2)
            old = out[m.label].rows[spec.key]
            out[m.label].rows[spec.key] = replace(
                old, peak_mem_mb=est.peak_mem_bytes / 2**20, weight_bytes=s.weight_bytes
            )
    return out


def per_dim_terms(model: CostModel) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """(base weights, per dim: each choice's extra weights, each choice's working set floor):
    with every other dim at its first choice (``none``), so that an arch's peak is
    base + sum(weights) + max(working sets) + overhead."""
    sizes = dim_sizes(model.space)
    zero = np.zeros((1, len(sizes)), dtype=np.int64)
    base = model.evaluate_indices(zero)
    w0 = float(base["weights_mb"][0])
    ws, acts = [], []
    for j, n in enumerate(sizes):
        idx = np.zeros((n, len(sizes)), dtype=np.int64)
        idx[:, j] = np.arange(n)
        e = model.evaluate_indices(idx)
        ws.append(e["weights_mb"] - w0)
        acts.append(e["peak_mem_mb"] - e["weights_mb"] - model.overhead_mb)
    return w0, ws, acts


def count_over(model: CostModel, budget_mb: float | None = None) -> tuple[int, int, float]:
    """(arches over the budget, all arches, the largest peak in the space); ``budget_mb``
    defaults to the table's."""
    w0, ws, acts = per_dim_terms(model)
    total = math.prod(len(w) for w in ws)
    budget = model.memory_budget_mb if budget_mb is None else budget_mb
    room = budget - w0 - model.overhead_mb
    largest = w0 + sum(float(w.max()) for w in ws) + max(float(a.max()) for a in acts)
    if not math.isfinite(room):
        return 0, total, largest + model.overhead_mb
    caps = sorted({float(a) for arr in acts for a in arr})
    feasible = 0.0
    prev = -math.inf
    for cap in caps:
        if cap > room:
            break
        limit = room - cap  # weights allowed when the largest working set is cap
        feasible += _count(ws, acts, cap, limit) - _count(ws, acts, prev, limit)
        prev = cap
    return total - round(feasible), total, largest + model.overhead_mb


def _count(ws: list[np.ndarray], acts: list[np.ndarray], cap: float, limit: float) -> float:
    """Arches whose every choice's working set is <= cap and whose weights sum <= limit."""
    if cap == -math.inf or limit < 0:
        return 0.0
    bins = math.floor(limit * STEP) + 1
    dist = np.zeros(bins)
    dist[0] = 1.0
    for w, a in zip(ws, acts, strict=True):
        nxt = np.zeros(bins)
        for wi, ai in zip(w, a, strict=True):  # a few choices per dim: shift and add
            b = math.ceil(round(wi * STEP, 6))
            if ai <= cap and b < bins:
                nxt[b:] += dist[: bins - b]
        dist = nxt
    return float(dist.sum())


def check(model: CostModel, n: int, seed: int = 0) -> float:
    """Largest gap (MB) between base + sum(weights) + max(working sets) and the CostModel's peak
    on ``n`` random arches: the decomposition the count relies on."""
    w0, ws, acts = per_dim_terms(model)
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, len(w), n) for w in ws], axis=1)
    peak = model.evaluate_indices(idx)["peak_mem_mb"]
    mine = w0 + sum(w[idx[:, j]] for j, w in enumerate(ws))
    mine = mine + np.max(np.stack([a[idx[:, j]] for j, a in enumerate(acts)]), axis=0)
    return float(np.abs(mine + model.overhead_mb - peak).max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default=str(ROOT / "search_spaces" / "temporal.yaml"))
    ap.add_argument("--device", default="iphone16pm")
    ap.add_argument("--table", default=None, help="table folder (default: the shipped one)")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument(
        "--budgets",
        default="",
        help="also count at these budgets (MB, comma-separated), e.g. 3072,2048",
    )
    args = ap.parse_args(argv)
    extra = [float(b) for b in args.budgets.split(",") if b.strip()]
    t0 = time.perf_counter()
    space = load_space(args.space)
    device = get_device(args.device)
    folder = Path(args.table) if args.table else ROOT / "latency_tables" / device.name
    table = Table.load(folder)
    print(f"$ python benchmarks/attention_memory.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"# space {space.name}: {math.prod(dim_sizes(space)):,} arches; device {device.name}, "
          f"budget {device.memory_budget_mb:.0f} MB; other rows from {folder}")  # fmt: skip
    print(f"{'attention model':<22} {'budget':>7} {'over budget':>17} {'share':>9} "
          f"{'largest peak':>13} {'check':>8}")  # fmt: skip
    for label, t in tables_per_model(space, table, device, args.cache).items():
        model = CostModel(space, t)
        gap = check(model, 2000)
        for budget in [device.memory_budget_mb, *extra]:
            over, total, largest = count_over(model, budget)
            print(f"{label:<22} {budget:>7.0f} {over:>17,} {100 * over / total:>8.3f}% "
                  f"{largest:>10.0f} MB {gap:>7.1e}")  # fmt: skip
    print("- check: largest |decomposed - CostModel| peak over 2,000 random arches, MB")
    print(f"- wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
