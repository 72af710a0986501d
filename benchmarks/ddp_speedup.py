"""Data-parallel training speed-up on this machine, side by side in one run.

Trains the same arch of the default space at proxy scale (width 0.25, 8 frames of 16x16
latents) for --steps steps at the same global batch three ways, and reads each run's
samples/s from its metrics.csv (the trainer's own clock, first logged step dropped):

- 1 process, 1 thread;
- 1 process, 2 threads (intra-op parallelism);
- torchrun --nproc_per_node 2, 1 thread each (DDP over gloo, half the batch per process).

    python benchmarks/ddp_speedup.py [--steps 12] [--batch 8]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.space import load_space, sample_arch

GEOMETRY = ["frames=8", "latent_height=16", "latent_width=16"]


def _train(cmd: list[str], out: Path, threads: int, log_every: int) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["samples_per_s"]) for r in rows[1:]] or [float(rows[-1]["samples_per_s"])]
    return float(np.median(rates)), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8, help="global batch (videos per step)")
    args = ap.parse_args()
    space = load_space("search_spaces/temporal.yaml")
    work = Path(tempfile.mkdtemp(prefix="nas-ddp-"))
    arch = sample_arch(space, np.random.default_rng(0))
    arch_file = arch.save(work / "arch.yaml")
    common = [
        "--arch",
        str(arch_file),
        "--width-mult",
        "0.25",
        "--steps",
        str(args.steps),
        "--log-every",
        "1",
        "--checkpoint-every",
        str(args.steps),
        "--no-progress",
    ]
    for g in GEOMETRY:
        common += ["--geometry", g]
    torchrun = Path(sys.executable).with_name("torchrun")
    runs = {
        "1 process x 1 thread": (
            [sys.executable, "-m", "nas", "train", *common, "--batch-size", str(args.batch)],
            1,
        ),
        "1 process x 2 threads": (
            [sys.executable, "-m", "nas", "train", *common, "--batch-size", str(args.batch)],
            2,
        ),
        "torchrun 2 processes x 1 thread": (
            [
                str(torchrun),
                "--standalone",
                "--nproc_per_node",
                "2",
                "-m",
                "nas",
                "train",
                *common,
                "--batch-size",
                str(args.batch // 2),
            ],
            1,
        ),
    }
    print(
        f"arch {arch.arch_id} ({arch.describe()[:60]}...), width 0.25, 8x16x16, "
        f"global batch {args.batch}, {args.steps} steps, {os.cpu_count()} CPUs"
    )
    base = None
    print(f"{'run':<34}{'samples/s':>10}{'speed-up':>10}{'wall s':>9}")
    for name, (cmd, threads) in runs.items():
        out = work / name.replace(" ", "_")
        rate, wall = _train([*cmd, "--out", str(out)], out, threads, 1)
        base = base or rate
        print(f"{name:<34}{rate:>10.2f}{rate / base:>9.2f}x{wall:>9.1f}")


if __name__ == "__main__":
    main()
