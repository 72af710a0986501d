"""Do trained models generate motion? A per-frame model against one with temporal layers.

Trains two arches of the tiny space (search_spaces/tiny.yaml) on ``easy`` procedural videos at
8 frames of 16 x 16 latents, width 1.0, spatial layers trainable (the tiny backbone has no
pretrained weights, so a frozen one would leave the all-none arch untrained), batch 4,
lr 1e-3, the trainer's default 1,000 steps (about 2-3 minutes each on one CPU thread):

- ``none``: every slot ``none``, a per-frame image model;
- ``attn1d`` (or ``--op``, e.g. ``xattn1d`` with ``--space search_spaces/tiny-xattn.yaml``):
  that temporal op wherever the space offers it.

``--text-dropout 0.1 --guidance 3`` trains with 10 % empty captions and samples with
classifier-free guidance.

First it trains (or loads from its cache) the video evaluator and prints its accuracy on
held-out real videos and the domain FD of other real, frame-shuffled real and noise videos.
Then it prints, side by side, the EMA model's validation loss at t = 800, and from
``evaluate_generation`` (64 held-out captions, 8 Euler steps, and again with 32) the domain
Frechet distance to real videos, the motion accuracy (by the evaluator and by the model-free
``track_motion``) and the flicker of samples and data; and writes a grid of frames (real
video, none sample, temporal sample, 32 Euler steps; channel mean) to ``docs/img/samples.png``.

    python benchmarks/generation_quality.py [--steps 1000] [--png docs/img/samples.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from nas.quality import (
    ProceduralVideos,
    TrainConfig,
    evaluate_generation,
    frechet_distance,
    sample_video,
    shuffle_frames,
    train,
    train_geometry,
    train_video_evaluator,
    validation_loss,
)
from nas.space import load_space, reference_arch

GEOMETRY = {"frames": 8, "latent_height": 16, "latent_width": 16}


def _frames_png(rows: list[torch.Tensor], labels: list[str], path: Path, scale: int = 8) -> None:
    """One row per video ``(C, T, H, W)``: its frames' channel mean, grey, scaled up."""
    from PIL import Image, ImageDraw

    t, h, w = rows[0].shape[1:]
    pad, label_w = 2, 140
    cell_h, cell_w = h * scale, w * scale
    img = Image.new(
        "L",
        (label_w + t * (cell_w + pad), len(rows) * (cell_h + pad)),
        color=255,
    )
    draw = ImageDraw.Draw(img)
    for r, (video, label) in enumerate(zip(rows, labels, strict=True)):
        y0 = r * (cell_h + pad)
        draw.text((4, y0 + cell_h // 2 - 6), label, fill=0)
        frames = video.mean(dim=0).clamp(-1, 1)  # (T, H, W)
        for k in range(t):
            grey = ((frames[k].numpy() + 1.0) * 127.5).round().astype(np.uint8)
            tile = Image.fromarray(grey).resize((cell_w, cell_h), Image.Resampling.NEAREST)
            img.paste(tile, (label_w + k * (cell_w + pad), y0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/tiny.yaml")
    ap.add_argument("--steps", type=int, default=TrainConfig().steps)
    ap.add_argument("--n", type=int, default=64, help="held-out captions to sample")
    ap.add_argument("--png", default="docs/img/samples.png")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--op", default="attn1d", help="the temporal op of the second arch")
    ap.add_argument(
        "--text-dropout", type=float, default=0.0, help="empty-caption share (for --guidance)"
    )
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    config = TrainConfig(
        steps=args.steps,
        lr=1e-3,
        freeze_spatial=False,
        geometry=GEOMETRY,
        difficulty="easy",
        seed=args.seed,
        checkpoint_every=args.steps,
        text_dropout=args.text_dropout,
    )
    geo = train_geometry(space, config)
    t0 = time.perf_counter()
    evaluator = train_video_evaluator(geo, difficulty="easy", seed=0, steps=2000)
    acc = evaluator.accuracy(evaluator.config.dataset("test"), n=256)
    print(
        f"evaluator: {time.perf_counter() - t0:.0f} s (or cached); held-out real videos: "
        f"direction accuracy {acc['direction']:.3f}, speed accuracy {acc['speed']:.3f}"
    )
    cfg = evaluator.config
    real = torch.stack([cfg.dataset("test")[i]["video"] for i in range(args.n)])
    other = torch.stack([cfg.dataset("val")[i]["video"] for i in range(args.n)])
    noise = torch.randn(other.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    f_real = evaluator.features(real)
    sanity = {
        "other real videos": other,
        "frame-shuffled real videos": shuffle_frames(other),
        "noise": noise,
    }
    print(f"domain FD to {args.n} held-out real videos (n={args.n} each):")
    for name, videos in sanity.items():
        print(f"  {name:28s}{frechet_distance(evaluator.features(videos), f_real):12.1f}")
    val = ProceduralVideos.for_geometry(geo, difficulty="easy", split="val")
    test = evaluator.config.dataset("test")
    caption_index = 0
    rows = [test[caption_index]["video"]]
    labels = ["real"]
    results = {}
    ops = ("none", args.op)
    for op in ops:
        arch, _ = reference_arch(space, op)
        t1 = time.perf_counter()
        res = train(space, arch, config, None, progress=False)
        secs = time.perf_counter() - t1
        model = res.ema_model()
        loss800 = validation_loss(model, val, timesteps=(800,), n_videos=32)[800]
        scores = evaluate_generation(
            model, n=args.n, steps=8, seed=0, evaluator=evaluator, guidance=args.guidance
        )
        # more sampler steps: is it the sampler or the model?
        more = evaluate_generation(
            model, n=args.n, steps=32, seed=0, evaluator=evaluator, guidance=args.guidance
        )
        results[op] = {
            "loss_t800": loss800,
            "train_s": secs,
            **scores,
            **{f"{k}_32": v for k, v in more.items()},
        }
        sample = sample_video(
            model, test[caption_index]["text"], steps=32, seed=0, guidance=args.guidance
        )[0]
        rows.append(sample.clamp(-1, 1))
        labels.append(f"{op} sample")
        print(f"trained {op} ({arch.arch_id}) in {secs:.0f} s")
    print(f"caption of the figure's row: {test[caption_index]['caption']!r}")
    print(
        f"{args.steps} steps, batch {config.batch_size}, lr {config.lr}, text dropout "
        f"{args.text_dropout}, guidance {args.guidance:g}, easy, "
        f"{GEOMETRY['frames']}x{GEOMETRY['latent_height']}x{GEOMETRY['latent_width']}, "
        f"n={args.n}, torch threads {torch.get_num_threads()}"
    )
    keys = [
        ("val loss t=800", "loss_t800"),
        ("domain FD (samples vs real)", "fd"),
        ("domain FD floor (real vs real)", "fd_real"),
        ("motion accuracy (direction)", "motion_accuracy"),
        ("speed accuracy", "speed_accuracy"),
        ("tracked direction accuracy", "tracked_motion_accuracy"),
        ("tracked speed accuracy", "tracked_speed_accuracy"),
        ("evaluator on real (direction)", "real_motion_accuracy"),
        ("flicker, samples", "flicker"),
        ("flicker, real", "flicker_real"),
        ("32 sampler steps: domain FD", "fd_32"),
        ("32 sampler steps: motion acc.", "motion_accuracy_32"),
        ("32 sampler steps: tracked acc.", "tracked_motion_accuracy_32"),
        ("32 sampler steps: flicker", "flicker_32"),
        ("training s", "train_s"),
    ]
    print(f"{'':32s}" + "".join(f"{op:>10s}" for op in ops))
    for label, key in keys:
        print(f"{label:32s}" + "".join(f"{results[op][key]:10.3f}" for op in ops))
    _frames_png(rows, labels, Path(args.png))
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
