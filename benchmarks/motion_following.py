"""Do trained models follow the caption's motion? Predicted vs captioned direction.

Trains one arch (``--op`` wherever ``--space`` offers it, ``none`` elsewhere) like
``benchmarks/generation_quality.py`` (easy procedural videos, 8 frames of 16 x 16 latents,
width 1.0, spatial layers trainable), at ``--steps`` / ``--lr`` / ``--batch``, then samples the
EMA model for ``--n`` held-out captions (8 Euler steps) and prints:

- ``evaluate_generation``'s domain FD, motion / speed accuracy and flicker;
- the confusion matrix of the evaluator's predicted direction (columns) against the caption's
  direction (rows), for the samples and, as a check, for the real test videos.

    python benchmarks/motion_following.py --op attn1d --steps 4000
    python benchmarks/motion_following.py --space my_space.yaml --op xattn1d --steps 4000
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

from nas.quality import (
    DIRECTIONS,
    TrainConfig,
    evaluate_generation,
    sample_video,
    track_motion,
    train,
    train_geometry,
    train_video_evaluator,
)
from nas.space import load_arch, load_space, reference_arch

GEOMETRY = {"frames": 8, "latent_height": 16, "latent_width": 16}


def _confusion(truth: list[str], pred: list[str], title: str) -> None:
    names = list(DIRECTIONS)
    counts = Counter(zip(truth, pred, strict=True))
    print(f"{title} (rows: caption direction, columns: predicted direction)")
    print(f"{'':12s}" + "".join(f"{n:>11s}" for n in names) + f"{'total':>8s}")
    for t in names:
        row = [counts[(t, p)] for p in names]
        print(f"{t:12s}" + "".join(f"{c:11d}" for c in row) + f"{sum(row):8d}")
    print(f"{'total':12s}" + "".join(f"{sum(counts[(t, p)] for t in names):11d}" for p in names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/tiny.yaml")
    ap.add_argument("--op", default="attn1d")
    ap.add_argument("--arch", default=None, help="an arch file of --space instead of --op")
    ap.add_argument("--steps", type=int, default=TrainConfig().steps)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--text-dropout", type=float, default=0.0, help="for guidance: 0.1")
    ap.add_argument(
        "--guidance", default="1", help="comma-separated classifier-free guidance scales"
    )
    ap.add_argument("--sample-steps", type=int, default=8, help="Euler steps per sample")
    ap.add_argument("--width", type=float, default=1.0, help="backbone width multiplier")
    ap.add_argument("--difficulty", default="easy")
    ap.add_argument("--background", type=float, default=0.15, help="0: flat background")
    ap.add_argument("--colours", default="random", help="digit colour signs: random | positive")
    ap.add_argument(
        "--timestep-sampling", default="logit_normal", help="logit_normal | uniform (training)"
    )
    ap.add_argument("--out", default=None, help="train into (and resume from) this folder")
    ap.add_argument("--n", type=int, default=64, help="held-out captions to sample")
    ap.add_argument(
        "--samples-png",
        default=None,
        help="write frames of the first 4 test captions' real videos and samples (the last "
        "guidance) to this PNG",
    )
    ap.add_argument(
        "--speed-png",
        default=None,
        help="write frames of '4 moves right slow' and '... fast' samples (2 noises each, "
        "the last guidance) to this PNG",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch,
        freeze_spatial=False,
        geometry=GEOMETRY,
        difficulty=args.difficulty,
        seed=args.seed,
        checkpoint_every=min(args.steps, 1000),
        text_dropout=args.text_dropout,
        width_mult=args.width,
        timestep_sampling=args.timestep_sampling,
        background=args.background,
        colours=args.colours,
    )
    geo = train_geometry(space, config)
    evaluator = train_video_evaluator(
        geo,
        difficulty=args.difficulty,
        seed=0,
        steps=2000,
        background=args.background,
        colours=args.colours,
    )
    test = evaluator.config.dataset("test")
    specs = [test.describe(i).objects[0] for i in range(args.n)]
    truth = [o.direction for o in specs]
    real = torch.stack([test[i]["video"] for i in range(args.n)])
    text = torch.stack([test[i]["text"] for i in range(args.n)])

    if args.arch:
        arch = load_arch(space, args.arch)
        hits = sum(c.op != "none" for c in arch.as_dict().values())
        args.op = arch.arch_id
    else:
        arch, hits = reference_arch(space, args.op)
    t0 = time.perf_counter()
    res = train(space, arch, config, args.out, progress=False)
    secs = time.perf_counter() - t0
    model = res.ema_model()
    print(
        f"trained {args.op} in {hits} slots ({arch.arch_id}) of {space.name}: {args.steps} steps, "
        f"batch {args.batch}, lr {args.lr}, text dropout {args.text_dropout}, width "
        f"{args.width}, {args.difficulty}, background {args.background}, colours {args.colours}, "
        f"{args.timestep_sampling} timesteps, 8x16x16, "
        f"{secs:.0f} s this call (from step {res.start_step}), "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"  final loss (mean of last 100 steps) {sum(res.losses[-100:]) / 100:.4f}")
    for guidance in (float(g) for g in args.guidance.split(",")):
        scores = evaluate_generation(
            model,
            n=args.n,
            steps=args.sample_steps,
            seed=0,
            evaluator=evaluator,
            guidance=guidance,
        )
        print(f"guidance {guidance:g}, {args.sample_steps} Euler steps:")
        for key in (
            "fd",
            "fd_real",
            "motion_accuracy",
            "speed_accuracy",
            "tracked_motion_accuracy",
            "tracked_speed_accuracy",
            "flicker",
            "flicker_real",
        ):
            print(f"  {key:20s}{scores[key]:12.3f}")
        # The same samples as evaluate_generation (same text, steps, seed and guidance).
        samples = (
            sample_video(model, text, steps=args.sample_steps, seed=0, guidance=guidance)
            .float()
            .cpu()
            .clamp(-1.0, 1.0)
        )
        pred = evaluator.predict(samples)
        _confusion(
            truth,
            list(pred.directions),
            f"samples of {args.op}, guidance {guidance:g} (n={args.n})",
        )
        print(f"predicted speeds of samples: {dict(Counter(pred.speeds))}")
    _confusion(truth, list(evaluator.predict(real).directions), f"real test videos (n={args.n})")
    from pathlib import Path

    from generation_quality import _frames_png

    if args.samples_png:
        rows, labels = [], []
        for i in range(4):
            rows += [real[i], samples[i]]
            labels += [test[i]["caption"], f"sample, guidance {guidance:g}"]
        _frames_png(rows, labels, Path(args.samples_png), scale=6)
        print(f"wrote {args.samples_png}")
    if args.speed_png:
        rows, labels = [], []
        for caption in ("4 moves right slow", "4 moves right fast"):
            for seed in (0, 1):
                video = sample_video(
                    model,
                    test.text.encode(caption),
                    steps=args.sample_steps,
                    seed=seed,
                    guidance=guidance,
                )[0].clamp(-1.0, 1.0)
                got = track_motion(video[None])
                rows.append(video)
                labels.append(f"{caption.split()[-1]}, noise {seed}")
                print(
                    f"{caption!r}, noise seed {seed}, guidance {guidance:g}: tracked "
                    f"{got.directions[0]} {got.speeds[0]}"
                )
        _frames_png(rows, labels, Path(args.speed_png), scale=6)
        print(f"wrote {args.speed_png}")


if __name__ == "__main__":
    main()
