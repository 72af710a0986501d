"""Where do temporal ops matter? The temporal share of a UNet step at candidate validation
geometries, from FLOPs scaled by a measured table (no timing here: it runs in seconds).

For each row kind (resnet, attn, conv1d, attn3d, ...), the measured table at the space's own
geometry (default: the shipped cpu-ort table, 16 x 36 x 64) gives milliseconds per analytic MAC;
at a candidate geometry each row is predicted as its MACs x its kind's rate, and the cost model
sums them for random arches of the space. Prints, per geometry, the temporal ops' share of the
step (median over random arches, and in the heaviest arch) and the predicted step of the
all-none and heaviest arches, i.e. how long one whole-network repeat takes. A rate per kind
ignores how efficiency changes with size (small tensors run below the big ones' rate), so
treat the seconds as a guide; `nas validate latency` prints the share from the measured rows.

    python benchmarks/latency_geometry.py [--table latency_tables/cpu-ort] [--n 2000]
"""

from __future__ import annotations

import argparse

import numpy as np

from nas.cost import CostModel, Table, TableRow, rows_for_space
from nas.space import dim_sizes, load_space, with_geometry
from profilers import analytic_costs

CANDIDATES = [
    (4, 16, 16), (8, 16, 16), (16, 16, 16), (16, 8, 16), (16, 16, 32), (24, 16, 16),
    (8, 36, 64), (16, 36, 64),
]  # fmt: skip


def rates(space, table: Table) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Milliseconds per MAC of each row kind, over the table's rows of the space."""
    macs = analytic_costs(space, table.info.precision or space.geometry.precision)
    ms: dict[str, float] = {}
    mac: dict[str, float] = {}
    for key, c in macs.items():
        r = table.rows.get(key)
        if r is None or not r.ok or c.macs == 0:
            continue
        ms[r.spec.op] = ms.get(r.spec.op, 0.0) + float(r.latency_ms_p50 or 0.0)
        mac[r.spec.op] = mac.get(r.spec.op, 0.0) + c.macs
    return {k: ms[k] / mac[k] for k in ms}


def predicted_table(vspace, table: Table, rate: dict[str, float]) -> Table:  # type: ignore[no-untyped-def]
    prec = table.info.precision or vspace.geometry.precision
    macs = analytic_costs(vspace, prec)
    out = Table(dict(table.meta))
    for spec in rows_for_space(vspace, prec):
        if spec.is_network:
            continue
        if spec.is_pipeline:  # not part of a UNet step: any figure will do
            out.put(TableRow(spec, "estimated", 1.0, 1.0, 1.0, 0, weight_bytes=0))
            continue
        ms = max(macs[spec.key].macs * rate[spec.op], 1e-6)
        out.put(TableRow(spec, "estimated", ms, ms, ms, 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--table", default="latency_tables/cpu-ort")
    ap.add_argument("--n", type=int, default=2000, help="random arches per geometry")
    args = ap.parse_args()
    space = load_space(args.space)
    table = Table.load(args.table)
    rate = rates(space, table)
    rng = np.random.default_rng(0)
    sizes = dim_sizes(space)
    idx = np.stack([rng.integers(0, n, args.n) for n in sizes], axis=1)
    print(f"rates from {args.table} at {space.geometry.frames}x{space.geometry.latent_height}x"
          f"{space.geometry.latent_width} (ms per GMAC): "
          + ", ".join(f"{k} {v * 1e9:.0f}" for k, v in sorted(rate.items())))  # fmt: skip
    print(f"{'frames x H x W':<16}{'temporal share median':>23}{'heaviest':>10}"
          f"{'all-none s':>12}{'heaviest s':>12}")  # fmt: skip
    for t, h, w in CANDIDATES:
        vspace = with_geometry(space, frames=t, latent_height=h, latent_width=w, batch=1, cfg=False)
        model = CostModel(vspace, predicted_table(vspace, table, rate))
        ms = model.evaluate_indices(idx)["latency_ms_step"]
        heavy = [int(np.argmax(model.evaluate_indices(
            np.asarray([[*([0] * j), i, *([0] * (len(sizes) - j - 1))] for i in range(n)])
        )["latency_ms_step"])) for j, n in enumerate(sizes)]  # fmt: skip
        none = np.zeros((1, len(sizes)), dtype=np.int64)
        none_ms = float(model.evaluate_indices(none)["latency_ms_step"][0])
        heavy_ms = float(model.evaluate_indices(np.asarray([heavy]))["latency_ms_step"][0])
        share = 1 - none_ms / ms
        print(f"{f'{t} x {h} x {w}':<16}{np.median(share) * 100:>22.0f}%"
              f"{(1 - none_ms / heavy_ms) * 100:>9.0f}%{none_ms / 1e3:>12.2f}"
              f"{heavy_ms / 1e3:>12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
