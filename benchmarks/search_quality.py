"""Search quality: how much of the exact Pareto front each sampler finds, side by side.

On a space small enough to enumerate (search_spaces/temporal-small.yaml, 9,216 arches) every
arch is scored exactly, giving the true Pareto front of two objectives: latency per video from
the device table, and minus the temporal parameter count (exact, analytic), a deterministic
stand-in for "more temporal capacity" that conflicts with latency the way a quality proxy does.
(Latency and memory alone make a one-point front: the all-none arch is cheapest in both.)
Then NSGA-II, multi-objective TPE and random sampling (the samplers
`nas search` builds, with its parameter encoding) each run --trials trials for --seeds seeds;
the printout is the mean hypervolume ratio (found / exhaustive, in the exhaustive front's unit
box, reference point 1.1) after each checkpoint, and the trials each needs to reach 99 %.

    python benchmarks/search_quality.py [--trials 460] [--seeds 5] [--device iphone16pm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna

from nas.cost import CostModel, Table, arch_cost, find_table
from nas.results import hypervolume, non_dominated, normalise
from nas.search import compose_config, make_sampler
from nas.space import arch_indices, enumerate_arches, load_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal-small.yaml")
    ap.add_argument("--device", default="iphone16pm")
    ap.add_argument("--trials", type=int, default=460, help="per run (default: 5 %% of 9,216)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--samplers", default="nsga2,tpe,random")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = load_space(args.space)
    cost = CostModel(space, Table.load(find_table(args.device)))
    t0 = time.perf_counter()
    arches = list(enumerate_arches(space))
    idx = np.array([arch_indices(space, a) for a in arches])
    c = cost.evaluate_indices(idx)
    capacity = np.array([arch_cost(space, a).temporal_params for a in arches], dtype=float)
    values = np.stack([c["latency_s_video"], -capacity], axis=1)
    table = {tuple(i): v for i, v in zip(idx.tolist(), values, strict=True)}
    front = values[non_dominated(values)]
    lo, hi = front.min(axis=0), front.max(axis=0)
    ref = np.full(2, 1.1)
    hv_exact = hypervolume(normalise(front, lo, hi), ref)
    print(
        f"space {space.name}: {len(arches):,} arches, exact front {len(front)} arches, "
        f"enumerated in {time.perf_counter() - t0:.1f} s; objectives latency (s/video) and "
        f"-temporal params; device {args.device}"
    )
    names = [(g.name, [ch.key for ch in g.choices]) for g in space.groups]
    checkpoints = sorted({max(1, round(args.trials * f)) for f in (0.1, 0.25, 0.5, 1.0)})

    results: dict[str, np.ndarray] = {}
    for sampler_name in args.samplers.split(","):
        curves = []
        t1 = time.perf_counter()
        for seed in range(args.seeds):
            cfg, _ = compose_config(
                [f"sampler={sampler_name}", "proxy=none", "search.objectives=[latency,memory]"]
            )
            study = optuna.create_study(
                directions=["minimize"] * 2,
                sampler=make_sampler(cfg.sampler.name, cfg.sampler.options, seed),
            )

            def objective(trial: optuna.Trial) -> tuple[float, float]:
                key = tuple(keys.index(trial.suggest_categorical(n, keys)) for n, keys in names)
                v = table[key]
                return float(v[0]), float(v[1])

            study.optimize(objective, n_trials=args.trials)
            found = np.array([t.values for t in study.trials])
            curve = np.zeros(args.trials)
            best = np.zeros((0, 2))
            hv = 0.0
            norm = normalise(found, lo, hi)
            for i in range(args.trials):
                if not (len(best) and np.all(best <= norm[i], axis=1).any()):
                    best = np.vstack([best, norm[i]])
                    best = best[non_dominated(best)]
                    hv = hypervolume(best, ref)
                curve[i] = hv / hv_exact
            curves.append(curve)
        results[sampler_name] = np.array(curves)
        print(
            f"  {sampler_name}: {args.seeds} x {args.trials} trials in "
            f"{time.perf_counter() - t1:.0f} s"
        )

    print()
    head = (
        f"{'sampler':<8}"
        + "".join(f"{f'{n} ({n / len(arches):.1%})':>16}" for n in checkpoints)
        + f"{'trials to 99 %':>18}"
    )
    print("hypervolume ratio (found / exhaustive), mean [min, max] over seeds")
    print(head)
    for name, curves in results.items():
        cells = "".join(
            f"{curves[:, n - 1].mean():>8.3f} [{curves[:, n - 1].min():.2f}]" for n in checkpoints
        )
        reach = [int(np.argmax(cv >= 0.99)) + 1 if (cv >= 0.99).any() else None for cv in curves]
        got = [r for r in reach if r is not None]
        txt = (
            f"{np.mean(got):.0f} ({len(got)}/{len(reach)} seeds)"
            if got
            else f"not reached (0/{len(reach)})"
        )
        print(f"{name:<8}{cells}{txt:>18}")
    print("\n[min] is the worst seed. Exhaustive hypervolume 1.0 = every exact front arch found.")


if __name__ == "__main__":
    main()
