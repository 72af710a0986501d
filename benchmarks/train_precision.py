"""Training on CPU in bf16 autocast against fp32, side by side in one run.

Trains the same arch of the default space near the scale of `nas validate proxy`'s full
trainings (8 frames of 16x16 latents, batch 8, at width 0.25 where they run at 0.125:
--width-mult 0.125 gives theirs) for --steps steps, once per
precision, with the same seed and data, one after the other in this process at --threads
threads (default 1, as the validation runs them). Prints each run's samples/s (the
trainer's own clock, median over logged steps, the first dropped), the speed-up over fp32,
how far the bf16 run's losses are from the fp32 run's, and how far apart the two trained
models are as a share of how far fp32 training moved the weights.

    python benchmarks/train_precision.py [--steps 24] [--threads 1] [--width-mult 0.25]
        [--train-spatial]

bf16 pays off on CPUs with bf16 matrix units (AVX512-BF16, AMX); `lscpu` says which this
one has, and the script prints it.
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nas.model import build_video_unet
from nas.quality import TrainConfig, train, train_geometry
from nas.space import GeometryOverride, load_space, sample_arch


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(re.findall(r"\b(avx512_bf16|amx_bf16|avx512f)\b", text))
    return ", ".join(sorted(flags)) or "none of avx512f, avx512_bf16, amx_bf16"


def _train(space, arch, cfg: TrainConfig, out: Path):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    res = train(space, arch, cfg, out, progress=False)
    wall = time.perf_counter() - t0
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["samples_per_s"]) for r in rows[1:]] or [float(rows[-1]["samples_per_s"])]
    return float(np.median(rates)), wall, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=8, help="videos per step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width-mult", type=float, default=0.25, help="backbone width (0.25)")
    ap.add_argument(
        "--train-spatial",
        action="store_true",
        help="train the backbone too, as nas validate proxy's full trainings do",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    space = load_space("search_spaces/temporal.yaml")
    work = Path(tempfile.mkdtemp(prefix="nas-precision-"))
    arch = sample_arch(space, np.random.default_rng(0))
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        width_mult=args.width_mult,
        geometry=GeometryOverride(frames=8, latent_height=16, latent_width=16),
        log_every=1,
        checkpoint_every=args.steps,
        device="cpu",
        freeze_spatial=False if args.train_spatial else None,
    )
    print(
        f"arch {arch.arch_id} ({arch.describe()[:60]}...), width {args.width_mult:g}, 8x16x16, "
        f"batch {args.batch}, {args.steps} steps, {args.threads} thread(s), "
        f"{'backbone trained' if args.train_spatial else 'backbone frozen'}, torch "
        f"{torch.__version__}; CPU flags: {_cpu_flags()}"
    )
    # the weights before training, built as the trainer builds them (its seed)
    torch.manual_seed(cfg.seed)
    init = build_video_unet(
        space, arch, width_mult=cfg.width_mult, geometry=train_geometry(space, cfg)
    )
    print(f"{'precision':<11}{'samples/s':>10}{'speed-up':>10}{'wall s':>9}{'final loss':>12}")
    runs, base = {}, 0.0
    for precision in ("fp32", "bf16"):
        rate, wall, res = _train(space, arch, replace(cfg, precision=precision), work / precision)
        runs[precision] = res
        base = base or rate
        print(
            f"{precision:<11}{rate:>10.2f}{rate / base:>9.2f}x{wall:>9.1f}"
            f"{np.mean(res.losses[-4:]):>12.4f}"
        )
    fp32, bf16 = runs["fp32"], runs["bf16"]
    rel = np.abs(np.subtract(bf16.losses, fp32.losses)) / np.abs(fp32.losses)
    print(f"loss per step, bf16 vs fp32: median |diff| {np.median(rel):.2%}, max {rel.max():.2%}")
    w0 = dict(init.named_parameters())
    a, b = dict(fp32.model.named_parameters()), dict(bf16.model.named_parameters())
    names = [n for n in fp32.ema if n in a]  # the trained parameters
    frozen = [n for n in a if n not in fp32.ema]  # none with --train-spatial
    assert all(torch.equal(w0[n], a[n]) for n in frozen), "not the trainer's initial weights"
    moved = sum(float((a[n] - w0[n]).square().sum()) for n in names)
    apart = sum(float((a[n] - b[n]).square().sum()) for n in names)
    print(
        f"trained weights: bf16 minus fp32 is {np.sqrt(apart / moved):.1%} of what fp32 training "
        f"moved them ({len(names)} tensors)"
    )


if __name__ == "__main__":
    main()
