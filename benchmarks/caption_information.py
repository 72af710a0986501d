"""How much can a caption tell an MSE-trained denoiser at high noise? The caption's share of
the data's variance in the mean video.

At high noise a rectified-flow model's best prediction of the clean video is its mean given
the caption, so only the part of the data that this conditional mean explains rewards reading
the caption there. For easy procedural videos (one digit) this draws ``--n`` validation clips
and prints, per colour setting, the share of the centred clips' energy that the mean clip per
(direction, speed) caption explains, next to the same share with the captions shuffled (the
finite-sample floor).

    python benchmarks/caption_information.py [--n 4000] [--background 0]
"""

from __future__ import annotations

import argparse
import random

import torch

from nas.quality import ProceduralVideos


def _explained(videos: torch.Tensor, keys: list[tuple[str, str]]) -> float:
    centred = videos - videos.mean(dim=0)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    means = {k: centred[idx].mean(dim=0) for k, idx in groups.items()}
    fitted = torch.stack([means[k] for k in keys])
    return float(fitted.square().mean() / centred.square().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--background", type=float, default=0.0)
    args = ap.parse_args()
    print(f"easy, 8x16x16, 4 channels, background {args.background}, n={args.n} val clips")
    print(f"{'colours':10s}{'caption explains':>18s}{'shuffled captions':>19s}")
    for colours in ("random", "positive"):
        shape = {"frames": 8, "height": 16, "width": 16, "channels": 4}
        data = ProceduralVideos(
            **shape,
            text_length=6,
            text_dim=16,
            difficulty="easy",
            split="val",
            background=args.background,
            colours=colours,
        )
        videos = torch.stack([data[i]["video"] for i in range(args.n)]).double()
        keys = []
        for i in range(args.n):
            o = data.describe(i).objects[0]
            keys.append((o.direction, o.speed))
        shuffled = keys[:]
        random.Random(0).shuffle(shuffled)
        print(f"{colours:10s}{_explained(videos, keys):18.4f}{_explained(videos, shuffled):19.4f}")


if __name__ == "__main__":
    main()
