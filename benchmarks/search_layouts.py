"""The README's main search under two process layouts, side by side in one run.

- ``default``: what ``nas search --space search_spaces/temporal.yaml`` does now: one process
  asks the trials in batches and the training proxies run in a pool of ``search.workers=auto``
  processes (the usable cores) with one torch thread each;
- ``one process``: ``search.workers=1 proxy.threads=2``: the proxies run one after another in
  the search's own process, on two torch threads (the layout before batches).

Each layout runs ``--repeats`` times, alternating, each a fresh run dir; the script prints wall
time, CPU time (user + system of the search and its children) and whether every run found the
same trials. Run it alone on the machine: anything else competing for the cores changes both.

    python benchmarks/search_layouts.py --repeats 2
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
LAYOUTS = {"default": [], "one process": ["search.workers=1", "proxy.threads=2"]}


def run(extra: list[str], runs: Path) -> tuple[float, float, list[tuple[str, ...]]]:
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
    return wall, cpu, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in LAYOUTS}
    found = set()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, extra in LAYOUTS.items():
                wall, cpu, rows = run(extra, Path(tmp) / f"{name}-{i}".replace(" ", "_"))
                times[name].append((wall, cpu))
                found.add(tuple(rows))
                print(f"{name:<12} run {i + 1}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s", flush=True)
    print(f"\n{'layout':<12} {'wall s (median)':>16} {'CPU-s (median)':>15} {'wall vs one':>12}")
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }
    for name, (wall, cpu) in med.items():
        print(f"{name:<12} {wall:>16.1f} {cpu:>15.1f} {wall / med['one process'][0]:>11.2f}x")
    print(f"\nevery run found the same 60 trials: {len(found) == 1}")


if __name__ == "__main__":
    main()
