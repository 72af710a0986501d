"""Can the evaluator and the model-free tracker read noisy clips? Accuracy against noise.

Generated clips carry residual noise that the procedural data never has. This trains (or loads
from its cache) the video evaluator at 8 frames of 16 x 16 latents on easy data, with the
given ``--evaluator-noise`` augmentation (0: clean clips only, the first recipe), and prints,
for held-out real videos with Gaussian noise of each std added (clipped to [-1, 1]), the
evaluator's direction and speed accuracy and its domain FD to the clean videos, and the same
accuracies for ``track_motion``. Last, the domain FD of other real, frame-shuffled real and
noise videos.

    python benchmarks/evaluator_robustness.py [--steps 2000] [--evaluator-noise 0.2]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch

from nas.quality import (
    TrainConfig,
    frechet_distance,
    shuffle_frames,
    track_motion,
    train_geometry,
    train_video_evaluator,
)
from nas.space import load_space

GEOMETRY = {"frames": 8, "latent_height": 16, "latent_width": 16}


def _share(a: tuple[str, ...], b: list[str]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="evaluator training steps")
    ap.add_argument("--evaluator-noise", type=float, default=0.2)
    ap.add_argument("--n", type=int, default=256, help="held-out videos")
    ap.add_argument("--noise", default="0,0.05,0.1,0.2,0.3", help="comma-separated stds")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space("search_spaces/tiny.yaml")
    geo = train_geometry(space, TrainConfig(geometry=GEOMETRY))
    t0 = time.perf_counter()
    ev = train_video_evaluator(
        geo, difficulty="easy", seed=0, steps=args.steps, noise=args.evaluator_noise
    )
    print(
        f"evaluator: {args.steps} steps, augmentation noise {args.evaluator_noise}, "
        f"{time.perf_counter() - t0:.0f} s (or cached); n={args.n}, 8x16x16, easy"
    )
    test = ev.config.dataset("test")
    real = torch.stack([test[i]["video"] for i in range(args.n)])
    objs = [test.describe(i).objects[0] for i in range(args.n)]
    directions = [o.direction for o in objs]
    speeds = [o.speed for o in objs]
    f_real = ev.features(real)
    gen = torch.Generator().manual_seed(0)
    print(
        f"{'noise std':>10s}{'eval dir':>10s}{'eval speed':>11s}{'FD':>10s}"
        f"{'track dir':>11s}{'track speed':>12s}  most common evaluator label"
    )
    for std in (float(s) for s in args.noise.split(",")):
        x = (real + std * torch.randn(real.shape, generator=gen)).clamp(-1.0, 1.0)
        pred = ev.predict(x)
        tracked = track_motion(x)
        label, count = Counter(pred.directions).most_common(1)[0]
        print(
            f"{std:10.2f}{_share(pred.directions, directions):10.3f}"
            f"{_share(pred.speeds, speeds):11.3f}{frechet_distance(ev.features(x), f_real):10.1f}"
            f"{_share(tracked.directions, directions):11.3f}"
            f"{_share(tracked.speeds, speeds):12.3f}  {label} ({count} of {args.n})"
        )
    other = torch.stack([ev.config.dataset("val")[i]["video"] for i in range(args.n)])
    noise = torch.randn(real.shape, generator=gen).clamp(-1.0, 1.0)
    for name, videos in (
        ("other real videos", other),
        ("frame-shuffled real videos", shuffle_frames(other)),
        ("noise", noise),
    ):
        print(f"domain FD, {name:28s}{frechet_distance(ev.features(videos), f_real):10.1f}")


if __name__ == "__main__":
    main()
