"""The README's main search under several layouts and samplers, side by side in one run.

- ``default``: what ``nas search --space search_spaces/temporal.yaml`` does now: the GP sampler;
  one process asks the trials in batches and the training proxies run in a pool of
  ``search.workers=auto`` processes (the usable cores) with one torch thread each, each proxy
  starting as soon as its trial is asked;
- ``one process``: ``search.workers=1 proxy.threads=2``: the proxies run one after another in
  the search's own process, on two torch threads (the layout before batches);
- ``nsga2``: the default layout with ``sampler=nsga2`` (the default sampler before the sampler
  study).

Each layout runs ``--repeats`` times, alternating, each a fresh run dir; the script prints wall
time, CPU time (user + system of the search and its children), the front's hypervolume in the
run's fixed box (``run.json``), and whether the runs of one sampler found the same trials (they
should, whatever the layout). Run it alone on the machine: anything else competing for the cores
changes the times.

    python benchmarks/search_layouts.py --repeats 2
    python benchmarks/search_layouts.py --repeats 2 --layouts default,nsga2
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = {
    "default": [],
    "one process": ["search.workers=1", "proxy.threads=2"],
    "nsga2": ["sampler=nsga2"],
}


def front_hypervolume(run_dir: Path) -> float:
    """The hypervolume of the run's feasible front in the box its run.json records (the
    sampler study's reading of a run dir)."""
    from sampler_study import feasible_points, hv_at

    v, ok, box = feasible_points(run_dir)
    return hv_at(v, ok, len(v), box)


def run(extra: list[str], runs: Path) -> tuple[float, float, list[tuple[str, ...]], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nas",
            "search",
            "--space",
            "search_spaces/temporal.yaml",
            "--no-progress",
            f"search.runs_dir={runs}",
            *extra,
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (trials,) = runs.glob("*/trials.csv")
    with trials.open() as f:
        rows = [(r["arch_id"], r["latency_s_video"], r["quality"]) for r in csv.DictReader(f)]
    return wall, cpu, rows, front_hypervolume(trials.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="of: " + ", ".join(LAYOUTS))
    args = ap.parse_args()
    names = args.layouts.split(",")
    bad = [n for n in names if n not in LAYOUTS]
    if bad:
        raise SystemExit(f"unknown layout {bad[0]!r}; valid: {', '.join(LAYOUTS)}")
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in names}
    found: dict[str, set[tuple[tuple[str, ...], ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name in names:
                wall, cpu, rows, hv = run(
                    LAYOUTS[name], Path(tmp) / f"{name}-{i}".replace(" ", "_")
                )
                times[name].append((wall, cpu, hv))
                sampler = "nsga2" if "sampler=nsga2" in LAYOUTS[name] else "gp"
                found.setdefault(sampler, set()).add(tuple(rows))
                print(
                    f"{name:<12} run {i + 1}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s, "
                    f"front hypervolume {hv:.4f}",
                    flush=True,
                )
    print(
        f"\n{'layout':<12} {'wall s (median)':>16} {'CPU-s (median)':>15} "
        f"{'hypervolume':>12} {'wall vs default':>16}"
    )
    med = {k: tuple(statistics.median(x[j] for x in v) for j in range(3)) for k, v in times.items()}
    for name, (wall, cpu, hv) in med.items():
        ratio = f"{wall / med['default'][0]:>15.2f}x" if "default" in med else ""
        print(f"{name:<12} {wall:>16.1f} {cpu:>15.1f} {hv:>12.4f} {ratio}")
    for sampler, runs in found.items():
        print(f"every {sampler} run found the same 60 trials: {len(runs) == 1}")


if __name__ == "__main__":
    main()
