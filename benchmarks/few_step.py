"""A few-step student without guidance against its guided teacher (issue 16, SnapGen-V stage 2).

Trains a teacher on the caption-informative procedural data (easy, flat background, positive
colours, 10 % empty captions, spatial layers trainable, 8 frames of 16 x 16 latents: the
settings under which captioned direction is learned, docs/training.md), then the adversarial
student from it (``TrainConfig(stage="adversarial")``), and scores with the evaluator and the
tracker on ``--n`` held-out captions (``evaluate_generation``, noise seed 0):

    teacher, 32 steps, guidance G    teacher, 4 steps, no guidance
    student, 4 / 2 / 1 steps, no guidance

Direction and speed accuracy (evaluator / tracker), domain FD (with the real-vs-real floor),
flicker, and UNet calls per video (steps, doubled under guidance). Resumable: both runs
checkpoint into ``--out`` (a finished run is loaded, not retrained) and the scores of each row
are cached in ``--out/scores.json``. ``--png`` writes frames of the first 4 captions.

    python benchmarks/few_step.py --out /tmp/few_step                      # real size
    python benchmarks/few_step.py --tiny --out /tmp/few_step_tiny          # a check, ~2 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from nas.quality import (
    GENERATED_PARTS,
    TrainConfig,
    evaluate_generation,
    few_step_sample,
    sample_video,
    train,
    train_geometry,
    train_video_evaluator,
)
from nas.space import load_space, reference_arch

GEOMETRY = {"frames": 8, "latent_height": 16, "latent_width": 16}
KEYS = GENERATED_PARTS  # evaluate_generation's figures, in the printed order


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/tiny-xattn.yaml")
    ap.add_argument("--op", default="xattn1d")
    ap.add_argument("--out", default="/tmp/few_step")
    ap.add_argument("--teacher-steps", type=int, default=4000)
    ap.add_argument("--teacher-lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--student-steps", type=int, default=2000)
    ap.add_argument("--student-lr", type=float, default=2e-4)
    ap.add_argument("--disc-lr", type=float, default=1e-3)
    ap.add_argument("--adv-weight", type=float, default=0.1)
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--guided-weight", type=float, default=1.0)
    ap.add_argument("--few-steps", type=int, default=4, help="the student's training grid")
    ap.add_argument(
        "--guidance", type=float, default=2.0, help="the guided teacher's scale (row and distill)"
    )
    ap.add_argument("--joint-images", action="store_true")
    ap.add_argument("--evaluator-steps", type=int, default=2000)
    ap.add_argument("--n", type=int, default=256, help="held-out captions")
    ap.add_argument("--png", default=None, help="frames of the first 4 captions, every row")
    ap.add_argument("--tiny", action="store_true", help="a quick check of the script")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.tiny:
        args.teacher_steps, args.student_steps = 20, 10
        args.evaluator_steps, args.n, args.batch = 40, 8, 2
    return args


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    space = load_space(args.space)
    arch, _ = reference_arch(space, args.op)
    teacher_cfg = TrainConfig(
        steps=args.teacher_steps,
        lr=args.teacher_lr,
        batch_size=args.batch,
        freeze_spatial=False,
        geometry=GEOMETRY,
        difficulty="easy",
        checkpoint_every=min(args.teacher_steps, 500),
        text_dropout=0.1,
        background=0.0,
        colours="positive",
    )
    student_cfg = replace(
        teacher_cfg,
        stage="adversarial",
        teacher=str(out / "teacher"),
        steps=args.student_steps,
        lr=args.student_lr,
        disc_lr=args.disc_lr,
        adv_weight=args.adv_weight,
        distill_weight=args.distill_weight,
        guided_weight=args.guided_weight,
        few_steps=args.few_steps,
        teacher_guidance=args.guidance,
        joint_images=args.joint_images,
        text_dropout=0.0,
        checkpoint_every=min(args.student_steps, 100),
    )
    geo = train_geometry(space, teacher_cfg)
    evaluator = train_video_evaluator(
        geo,
        difficulty="easy",
        seed=0,
        steps=args.evaluator_steps,
        background=0.0,
        colours="positive",
    )
    models = {}
    for name, cfg in (("teacher", teacher_cfg), ("student", student_cfg)):
        t0 = time.perf_counter()
        res = train(space, arch, cfg, out / name, progress=True)
        models[name] = res.ema_model()
        tail = res.losses[-min(100, len(res.losses)) :]
        print(
            f"{name}: {res.step} steps ({time.perf_counter() - t0:.0f} s this call, from step "
            f"{res.start_step}), loss (last {len(tail)}) {sum(tail) / len(tail):.4f}",
            flush=True,
        )
        for part, values in res.parts.items():
            last = values[-min(100, len(values)) :]
            print(f"  {part} (last {len(last)}) {sum(last) / len(last):.4f}", flush=True)
    rows = [
        ("teacher", 32, args.guidance),
        ("teacher", 4, 1.0),
        ("student", 4, 1.0),
        ("student", 2, 1.0),
        ("student", 1, 1.0),
    ]
    cache = out / "scores.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    settings = json.dumps(student_cfg.to_dict(), sort_keys=True, default=str)
    student_id = hashlib.sha256(settings.encode()).hexdigest()[:8]  # scores follow the settings
    stamp = f"{arch.arch_id}/{args.teacher_steps}/{student_id}/{args.n}"
    for who, steps, g in rows:
        key = f"{stamp}/{who}/{steps}/{g:g}"
        if key not in scores:
            t0 = time.perf_counter()
            scores[key] = evaluate_generation(
                models[who], n=args.n, steps=steps, seed=0, evaluator=evaluator, guidance=g
            )
            scores[key]["seconds"] = time.perf_counter() - t0
            cache.write_text(json.dumps(scores, indent=1))
    _table(rows, scores, stamp, args.n)
    if args.png:
        _png(models, rows, evaluator, Path(args.png))


def _table(rows: list[tuple[str, int, float]], scores: dict, stamp: str, n: int) -> None:  # type: ignore[type-arg]
    heads = [f"{who} {steps}{' g' + format(g, 'g') if g != 1 else ''}" for who, steps, g in rows]
    print(f"{'':26s}" + "".join(f"{h:>14s}" for h in heads))
    print(f"{'UNet calls per video':26s}" + "".join(
        f"{steps * (2 if g != 1 else 1):14d}" for _, steps, g in rows
    ))  # fmt: skip
    for k in KEYS:
        vals = [scores[f"{stamp}/{who}/{steps}/{g:g}"][k] for who, steps, g in rows]
        print(f"{k:26s}" + "".join(f"{v:14.3f}" for v in vals))
    ref = scores[f"{stamp}/{rows[0][0]}/{rows[0][1]}/{rows[0][2]:g}"]
    s4 = scores[f"{stamp}/student/4/1"]
    gap = 100 * (s4["motion_accuracy"] - ref["motion_accuracy"])
    lo_s, hi_s = _wilson(s4["motion_accuracy"], n)
    lo_t, hi_t = _wilson(ref["motion_accuracy"], n)
    print(
        f"direction, 95 % Wilson interval over the {n} captions: guided teacher "
        f"[{lo_t:.3f}, {hi_t:.3f}], student 4 [{lo_s:.3f}, {hi_s:.3f}]"
    )
    print(
        f"student 4 vs guided teacher 32: direction {gap:+.1f} "
        f"points (target >= -5), FD ratio {s4['fd'] / max(ref['fd'], 1e-9):.2f} (target <= 1.5), "
        f"UNet calls {rows[0][1] * 2 // 4}x fewer"
    )


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` of ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _png(models: dict, rows: list[tuple[str, int, float]], evaluator, path: Path) -> None:  # type: ignore[no-untyped-def, type-arg]
    from generation_quality import _frames_png  # benchmarks/ is on sys.path when run

    test = evaluator.config.dataset("test")
    text = torch.stack([test[i]["text"] for i in range(4)])
    samples = {}
    for who, steps, g in rows:
        m = models[who]
        if g == 1:
            samples[(who, steps, g)] = few_step_sample(m, text, steps=steps) if steps <= 8 else None
        if samples.get((who, steps, g)) is None:
            samples[(who, steps, g)] = sample_video(m, text, steps=steps, guidance=g)
    videos, labels = [], []
    for i in range(4):
        videos.append(test[i]["video"])
        labels.append(test[i]["caption"])
        for who, steps, g in rows:
            videos.append(samples[(who, steps, g)][i].float().clamp(-1, 1))
            labels.append(f"{who} {steps} steps" + (f" g{g:g}" if g != 1 else ""))
    _frames_png(videos, labels, path, scale=6)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
