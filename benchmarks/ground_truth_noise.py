"""How much of the ground truth's seed-to-seed spread is the evaluation's own sampling?

``nas validate proxy --quality generated`` scores each finished training by sampling
``gen_n`` (64) held-out captions with one noise seed (0) and scoring the clips
(:func:`nas.quality.score_generation`). Two trainings of one arch with different seeds
differ by their weights *and* by how those weights meet that one draw of noise. This script
re-scores finished trainings of a validation folder with other noise seeds, so the two parts
can be told apart:

- the evaluation's spread: the standard deviation of one training's score over noise seeds;
- the training's spread: that of the per-training means (over noise seeds) across the seeds of
  one arch.

It reads the trainings' EMA weights from ``--folder``'s run folders and the evaluator from
its cache (``--folder/evaluator``): nothing is trained, and nothing in the folder changes.
The first training is also re-scored with noise seed 0 and compared with its record in
``trained.jsonl`` (the same model and evaluator give the same number).

    python benchmarks/ground_truth_noise.py --folder experiments/vp15 \
        --arch-ids 6697a6a428ff,0dbdf9657591 --noise-seeds 1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nas.fileio import jsonl_records
from nas.quality import (
    ProxyValidationConfig,
    TrainConfig,
    load_trained,
    score_generation,
    train_geometry,
    train_video_evaluator,
)
from nas.space import load_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("experiments/vp15"))
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--arch-ids", required=True, help="comma-separated arch ids")
    ap.add_argument("--noise-seeds", default="1,2", help="comma-separated sampling seeds")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    c = ProxyValidationConfig()  # the validation's defaults: evaluator, gen_n, sample steps
    records = {
        (r["arch_id"], r["seed"]): r
        for r in jsonl_records(args.folder / "trained.jsonl")
        if r.get("scale") == "base" and "generated" in r
    }
    arch_ids = args.arch_ids.split(",")
    noise_seeds = [int(s) for s in args.noise_seeds.split(",")]
    runs = sorted(
        p
        for a in arch_ids
        for p in args.folder.glob(f"runs/*/{a}-s*")
        if p.is_dir() and p.name.rsplit("-s", 1)[1].isdigit()
    )
    if not runs:
        raise SystemExit(f"no run folders of {arch_ids} under {args.folder}/runs")
    evaluator = None
    table: dict[tuple[str, int], dict[int, float]] = {}
    for i, run in enumerate(runs):
        arch_id, seed = run.name.rsplit("-s", 1)[0], int(run.name.rsplit("-s", 1)[1])
        rec = records.get((arch_id, seed))
        if rec is None:
            print(f"{run.name}: not finished (no record), skipped")
            continue
        cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
        if evaluator is None:
            evaluator = train_video_evaluator(
                train_geometry(space, cfg),
                difficulty=c.difficulty,
                background=c.background,
                colours=c.colours,
                steps=c.evaluator_steps,
                cache_dir=args.folder / "evaluator",
            )
        model = load_trained(space, run, ema=True)
        scores = {0: float(rec["generated"]["score"])}
        for s in ([0] if i == 0 else []) + noise_seeds:
            t0 = time.perf_counter()
            got = score_generation(model, evaluator, n=c.gen_n, steps=c.sample_steps, seed=s)
            took = time.perf_counter() - t0
            if s == 0:
                print(f"{run.name}: noise seed 0 re-scored {got['score']:.4f}, recorded "
                      f"{scores[0]:.4f}")  # fmt: skip
                continue
            scores[s] = float(got["score"])
            print(f"{run.name}: noise seed {s}: {scores[s]:.4f} ({took:.0f} s)", flush=True)
        table[(arch_id, seed)] = scores
    print()
    print(f"{'training':<18}" + "".join(f"{'noise ' + str(s):>10}" for s in [0, *noise_seeds])
          + f"{'mean':>9}{'sd':>8}")  # fmt: skip
    within = []
    for (a, s), sc in table.items():
        v = np.array([sc[k] for k in [0, *noise_seeds]])
        within.append(v.std(ddof=1))
        print(f"{a}-s{s:<5}" + "".join(f"{x:>10.4f}" for x in v) + f"{v.mean():>9.4f}"
              f"{v.std(ddof=1):>8.4f}")  # fmt: skip
    between = []
    for a in arch_ids:
        means = [np.mean(list(sc.values())) for (x, _), sc in table.items() if x == a]
        if len(means) >= 2:
            between.append(float(np.std(means, ddof=1)))
            print(f"{a}: seed-mean scores {', '.join(f'{m:.4f}' for m in means)}")
    print(f"evaluation's spread (sd over noise seeds, RMS over trainings): "
          f"{float(np.sqrt(np.mean(np.square(within)))):.4f}")  # fmt: skip
    if between:
        print(f"training's spread (sd across training seeds of the noise-mean, RMS over arches; "
              f"still holds 1/{1 + len(noise_seeds)} of the evaluation's variance): "
              f"{float(np.sqrt(np.mean(np.square(between)))):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
