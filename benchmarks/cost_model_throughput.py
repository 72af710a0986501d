"""How fast the cost model scores arches, side by side in one run.

Scores the same random arches of the default space three ways: CostModel.evaluate_indices
(vectorised, what the search uses), CostModel.evaluate (one arch at a time), and the analytic
arch_cost (no table). Prints arches per second and the ratios.

    python benchmarks/cost_model_throughput.py [--device iphone16pm] [--n 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nas.cost import CostModel, Table, arch_cost, find_table
from nas.space import arch_from_indices, load_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="iphone16pm")
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    space = load_space(args.space)
    t0 = time.perf_counter()
    model = CostModel(space, Table.load(find_table(args.device)))
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(len(g.choices), size=args.n) for g in space.groups], axis=1)

    t0 = time.perf_counter()
    out = model.evaluate_indices(idx)
    vec_s = time.perf_counter() - t0
    m = min(args.n, 2000)
    archs = [arch_from_indices(space, row) for row in idx[:m]]
    t0 = time.perf_counter()
    single = [model.evaluate(a) for a in archs]
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a in archs:
        arch_cost(space, a)
    ana_s = time.perf_counter() - t0
    assert np.allclose(out["latency_ms_step"][:m], [e.latency_ms_step for e in single])
    vec, one, ana = args.n / vec_s, m / one_s, m / ana_s
    print(
        f"space {space.name} ({space.size:,} arches), table {args.device}: "
        f"CostModel built in {build_s * 1e3:.0f} ms"
    )
    print(f"{'method':<36}{'arches/s':>14}{'vs one-at-a-time':>18}")
    label = f"CostModel.evaluate_indices (n={args.n})"
    print(f"{label:<36}{vec:>14,.0f}{vec / one:>17.0f}x")
    print(f"{'CostModel.evaluate (n=' + str(m) + ')':<36}{one:>14,.0f}{1:>17.0f}x")
    print(f"{'analytic arch_cost (n=' + str(m) + ')':<36}{ana:>14,.0f}{ana / one:>17.2f}x")


if __name__ == "__main__":
    main()
