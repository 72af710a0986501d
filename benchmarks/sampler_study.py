"""Which sampler, measured with the real proxy in the loop (issue 17 item 6).

Each sampler (NSGA-II, multi-objective TPE, random, GP) runs the main search, latency per video
and the training proxy on the default space under SnapGen-V's budget, for several seeds; a long
NSGA-II run is the reference. Every run is a real ``nas search`` run dir under --out, so the
study is resumable: run the same command again and finished runs are read back, unfinished ones
resumed where they stopped (``nas search`` finds a run by its config).

The printout is, per sampler, the hypervolume after 60, 120 and 240 trials as a fraction of the
reference front's: the non-dominated set of every feasible arch any run evaluated (the long run
and all the others), in one fixed box shared by every run (latency from the all-none arch to the
budget, proxy loss from 0 to the all-none arch's; the same box ``nas search`` records in
run.json). Mean and worst over seeds; a table in the out folder keeps the numbers.

    python benchmarks/sampler_study.py                    # 4 samplers x 3 seeds x 240 trials + 960
    python benchmarks/sampler_study.py --tiny             # a minute: checks the script end to end

The full study runs about 12 x 240 + 960 proxy trainings (about 1.5 s each on one core of the
2-core development machine, two at a time): plan on 1 h 20 min alone on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.results import HypervolumeBox, RunInfo, box_hypervolume, minimised, non_dominated
from nas.search import compose_config, run_search

SPACE = "search_spaces/temporal.yaml"


@dataclass(frozen=True)
class Plan:
    space: str
    samplers: list[str]
    seeds: list[int]
    checkpoints: list[int]
    reference_trials: int
    overrides: list[str]  # every run's config beyond sampler, seed and trials


def plan_of(args: argparse.Namespace) -> Plan:
    seeds = list(range(args.seeds))
    samplers = args.samplers.split(",")
    if args.tiny:  # the smallest setting that runs every step: a slice of the space, 2 steps
        return Plan(
            "search_spaces/temporal-small.yaml",
            samplers,
            seeds[:2],
            [4, 8, 12],
            16,
            ["proxy.options.steps=2", "sampler.population_size=4", "search.batch=4"],
        )
    return Plan(SPACE, samplers, seeds, [60, 120, 240], args.reference_trials, [])


def sampler_overrides(name: str, plan: Plan, tiny: bool) -> list[str]:
    """The sampler's overrides: the plan's own options where they apply to it."""
    out = [f"sampler={name}"]
    out += [o for o in plan.overrides if name == "nsga2" or "population_size" not in o]
    if tiny and name in ("tpe", "gp"):
        out.append("sampler.n_startup_trials=4")
    return out


def run_one(plan: Plan, out: Path, sampler: str, seed: int, trials: int, tiny: bool) -> Path:
    """One search, resumed if it exists; its run dir."""
    cfg, raw = compose_config(
        [
            *sampler_overrides(sampler, plan, tiny),
            f"search.seed={seed}",
            f"search.trials={trials}",
            f"search.runs_dir={out / 'runs'}",
            f"name={sampler}-seed{seed}",
        ]
    )
    t0 = time.perf_counter()
    res = run_search(plan.space, cfg, raw, progress=False, log=lambda _m: None)
    if res.stopped_early == "interrupted":  # Ctrl-C or SIGTERM: stop the study, not this run
        raise SystemExit(f"interrupted in {res.run_dir}; run the same command again to resume")
    state = "resumed" if res.resumed else "ran"
    print(
        f"  {sampler:<7} seed {seed}: {state} {len(res.records)} trials in "
        f"{time.perf_counter() - t0:.0f} s -> {res.run_dir.name}",
        flush=True,
    )
    return res.run_dir


def feasible_points(run_dir: Path) -> tuple[np.ndarray, np.ndarray, HypervolumeBox]:
    """A run's minimised objective values by trial number, which are feasible, and its box."""
    from nas.results import read_trials

    info = RunInfo.load(run_dir)
    s = info.require_settings()
    records = sorted(read_trials(run_dir / "trials.csv"), key=lambda r: r.number)
    assert info.box is not None and info.box.complete, f"{run_dir}: no complete box"
    v = minimised(records, s.objectives)
    ok = np.array([r.usable for r in records], dtype=bool) & np.all(np.isfinite(v), axis=1)
    return v, ok, info.box


def elapsed_s(run_dir: Path, checkpoints: list[int]) -> list[float]:
    """Wall seconds from the run's first trial's start to the end of its first k trials, for
    each checkpoint k (the sampler's asks, the proxies and the writes; a resumed run's pause
    counts too, so the figure is only meaningful for a run made in one go)."""
    from nas.search import open_run_study

    trials = sorted(open_run_study(run_dir).get_trials(deepcopy=False), key=lambda t: t.number)
    t0 = trials[0].datetime_start
    out = []
    for k in checkpoints:
        ends = [t.datetime_complete for t in trials[:k] if t.datetime_complete is not None]
        out.append((max(ends) - t0).total_seconds() if t0 is not None and ends else math.nan)
    return out


def hv_at(v: np.ndarray, ok: np.ndarray, k: int, box: HypervolumeBox) -> float:
    pts = v[:k][ok[:k]]
    return box_hypervolume(pts[non_dominated(pts)], box) if len(pts) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samplers", default="nsga2,tpe,random,gp")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reference-trials", type=int, default=960)
    ap.add_argument("--out", default="benchmarks/out/sampler_study")
    ap.add_argument("--tiny", action="store_true", help="a tiny setting that runs in a minute")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    plan = plan_of(args)
    out = Path(args.out + ("-tiny" if args.tiny else ""))
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"space {plan.space}, samplers {', '.join(plan.samplers)}, seeds {plan.seeds}, "
        f"checkpoints {plan.checkpoints}, reference {plan.reference_trials} trials; out {out}"
    )

    ref_dir = run_one(plan, out, "nsga2", 1000, plan.reference_trials, args.tiny)
    runs = {
        (s, seed): run_one(plan, out, s, seed, plan.checkpoints[-1], args.tiny)
        for s in plan.samplers
        for seed in plan.seeds
    }
    data = {key: feasible_points(d) for key, d in [(("reference", 1000), ref_dir), *runs.items()]}
    boxes = {b for _, _, b in data.values()}
    if len(boxes) != 1:  # the all-none arch's proxy loss is seeded: the same in every run
        print(f"note: the runs' boxes differ ({len(boxes)}); the reference run's is used")
    box = data[("reference", 1000)][2]
    every = np.vstack([v[ok] for v, ok, _ in data.values()])
    ref_front = every[non_dominated(every)]
    ref_hv = box_hypervolume(ref_front, box)
    print(
        f"\nreference front: {len(ref_front)} arches from {len(every)} feasible trials, "
        f"hypervolume {ref_hv:.4f} in the box {box.describe()}"
    )

    rows = []
    times = {key: elapsed_s(d, plan.checkpoints) for key, d in runs.items()}
    head = "".join(f"{f'@{k} mean':>11}{f'@{k} worst':>11}" for k in plan.checkpoints)
    print(f"\nhypervolume / reference front's, over {len(plan.seeds)} seeds\n{'sampler':<8}{head}")
    for s in plan.samplers:
        cells = []
        for i, k in enumerate(plan.checkpoints):
            ratios = [hv_at(*data[(s, seed)][:2], k, box) / ref_hv for seed in plan.seeds]
            cells.append(f"{np.mean(ratios):>11.3f}{np.min(ratios):>11.3f}")
            rows += [
                {
                    "sampler": s,
                    "seed": seed,
                    "trials": k,
                    "hv_ratio": f"{r:.5f}",
                    "elapsed_s": f"{times[(s, seed)][i]:.1f}",
                }
                for seed, r in zip(plan.seeds, ratios, strict=True)
            ]
        print(f"{s:<8}{''.join(cells)}")
    head = "".join(f"{f'@{k}':>11}" for k in plan.checkpoints)
    print(
        "\nwall seconds to k trials (sampler, proxies, writes), fastest seed: a run that "
        f"shared the machine or was resumed is slower\n{'sampler':<8}{head}"
    )
    for s in plan.samplers:
        cells = [
            min(times[(s, seed)][i] for seed in plan.seeds) for i in range(len(plan.checkpoints))
        ]
        print(f"{s:<8}{''.join(f'{c:>11.0f}' for c in cells)}")
    with (out / "sampler_study.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sampler", "seed", "trials", "hv_ratio", "elapsed_s"])
        w.writeheader()
        w.writerows(rows)
    (out / "reference.json").write_text(
        json.dumps({"box": box.to_dict(), "front": ref_front.tolist(), "hv": ref_hv}, indent=2)
    )
    print(f"\nper seed: {out / 'sampler_study.csv'}")


if __name__ == "__main__":
    main()
