"""How much can a caption tell an MSE-trained denoiser at high noise? The caption's share of
the data's variance in the mean video.

At high noise a rectified-flow model's best prediction of the clean video is its mean given
the caption, so only the part of the data that this conditional mean explains rewards reading
the caption there. This draws ``--n`` validation clips of procedural videos for every
combination of ``--difficulty``, ``--background``, ``--colours`` and ``--size`` (latent
height = width), and prints the share of the centred clips' energy that the mean clip per
caption explains (the caption's (direction, speed) of every digit), next to the same share with
the captions shuffled (the finite-sample floor) and their ratio. Settings whose ratio is at
least 10 are caption-informative (issue 15); the defaults of ``nas train``, the proxies and
``nas validate proxy`` are chosen among them (docs/training.md).

    python benchmarks/caption_information.py                        # the candidates, n=4000
    python benchmarks/caption_information.py --n 500 --size 8       # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import random

import torch

from nas.quality import ProceduralVideos


def _explained(videos: torch.Tensor, keys: list[tuple[str, ...]]) -> float:
    centred = videos - videos.mean(dim=0)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    means = {k: centred[idx].mean(dim=0) for k, idx in groups.items()}
    fitted = torch.stack([means[k] for k in keys])
    return float(fitted.square().mean() / centred.square().mean())


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def measure(
    n: int, difficulty: str, background: float, colours: str, size: int
) -> tuple[float, float]:
    """(caption explains, shuffled floor) over ``n`` val clips of 8 frames x size x size x 4."""
    data = ProceduralVideos(
        frames=8,
        height=size,
        width=size,
        channels=4,
        text_length=6,
        text_dim=16,
        difficulty=difficulty,
        split="val",
        background=background,
        colours=colours,
    )
    videos = torch.stack([data[i]["video"] for i in range(n)]).double()
    keys = []
    for i in range(n):
        objs = data.describe(i).objects
        keys.append(tuple(f"{o.direction}/{o.speed}" for o in objs))
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)
    return _explained(videos, keys), _explained(videos, shuffled)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--difficulty", default="easy,medium", help="comma-separated")
    ap.add_argument("--background", type=_floats, default=[0.0, 0.15], help="comma-separated")
    ap.add_argument("--colours", default="random,positive", help="comma-separated")
    ap.add_argument("--size", default="16,8", help="latent height = width, comma-separated")
    args = ap.parse_args()
    print(f"8 frames x 4 channels, n={args.n} val clips; key: every digit's (direction, speed)")
    print(
        f"{'difficulty':<11}{'size':>5}{'background':>11}  {'colours':<9}"
        f"{'caption explains':>17}{'shuffled (floor)':>17}{'ratio':>8}"
    )
    for diff, size, bg, col in itertools.product(
        args.difficulty.split(","),
        [int(s) for s in args.size.split(",")],
        args.background,
        args.colours.split(","),
    ):
        share, floor = measure(args.n, diff, bg, col, size)
        print(
            f"{diff:<11}{size:>5}{bg:>11g}  {col:<9}{share:>17.4f}{floor:>17.4f}"
            f"{share / floor:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
