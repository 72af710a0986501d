"""Training with torch.compile against eager, side by side in one run.

Trains one arch at the scale of `nas validate proxy`'s full trainings (width 0.125, 8 frames
of 16x16 latents, batch 8, backbone trained, bf16 autocast by default) for --steps steps,
eager then compiled, with the same seed and data, one after the other in this process at
--threads threads (default 1, as the validation runs them). Prints each run's videos/s (the
trainer's own clock, median over the logged steps after the first), the speed-up, the
compiled run's first step (the compilation: it happens again in every process and after every
resume), the steps after which compiling has paid for itself, and how far the compiled run's
losses are from the eager run's.

    python benchmarks/train_compile.py [--steps 24] [--threads 1] [--precision bf16]
        [--arch docs/examples/arch_all_none.yaml]

Inductor keeps compiled kernels in a cache (/tmp/torchinductor_$USER): a second process that
compiles the same model starts faster. --fresh-cache compiles into an empty cache folder, as
a new machine would.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.quality import TrainConfig, train
from nas.space import GeometryOverride, load_arch, load_space, sample_arch


def _run(space, arch, cfg: TrainConfig, out: Path) -> tuple[float, float, list[float]]:  # type: ignore[no-untyped-def]
    """(median videos/s after the first step, first step's seconds, losses)."""
    res = train(space, arch, cfg, out, progress=False)
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["samples_per_s"]) for r in rows]
    first = cfg.batch_size / rates[0]
    return float(np.median(rates[1:])), first, list(res.losses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--width-mult", type=float, default=0.125)
    ap.add_argument("--arch", help="an arch YAML of the default space (default: a random one)")
    ap.add_argument("--fresh-cache", action="store_true", help="compile into an empty cache")
    args = ap.parse_args()
    if args.steps < 3:
        ap.error("--steps must be at least 3 (the first step compiles)")
    work = Path(tempfile.mkdtemp(prefix="nas-compile-"))
    if args.fresh_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor-cache")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    space = load_space("search_spaces/temporal.yaml")
    arch = (
        load_arch(space, args.arch) if args.arch else sample_arch(space, np.random.default_rng(0))
    )
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=8,
        lr=1e-3,
        width_mult=args.width_mult,
        geometry=GeometryOverride(frames=8, latent_height=16, latent_width=16),
        precision=args.precision,
        freeze_spatial=False,
        log_every=1,
        checkpoint_every=args.steps,
        device="cpu",
    )
    print(
        f"arch {arch.arch_id} ({arch.describe()[:60]}...), width {args.width_mult:g}, 8x16x16, "
        f"batch 8, backbone trained, {args.precision}, {args.steps} steps, {args.threads} "
        f"thread(s), torch {torch.__version__}, "
        f"{'empty' if args.fresh_cache else 'the usual'} inductor cache"
    )
    print(f"{'run':<10}{'videos/s':>10}{'speed-up':>10}{'first step s':>14}")
    eager_rate, eager_first, eager_losses = _run(space, arch, cfg, work / "eager")
    print(f"{'eager':<10}{eager_rate:>10.2f}{1:>9.2f}x{eager_first:>14.1f}")
    rate, first, losses = _run(space, arch, replace(cfg, compile=True), work / "compiled")
    print(f"{'compiled':<10}{rate:>10.2f}{rate / eager_rate:>9.2f}x{first:>14.1f}")
    saved = 8 / eager_rate - 8 / rate  # seconds per step
    extra = first - eager_first
    even = f"{extra / saved:,.0f} steps" if saved > 0 else "never (no faster)"
    print(f"compiling costs {extra:.0f} s more on the first step; it pays for itself after {even}")
    rel = np.abs(np.subtract(losses, eager_losses)) / np.abs(eager_losses)
    print(
        f"loss per step, compiled vs eager: median |diff| {np.median(rel):.3%}, max {rel.max():.3%}"
    )


if __name__ == "__main__":
    main()
