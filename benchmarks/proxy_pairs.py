"""Which proxy of a finished ``nas validate proxy`` run ranks the arches best, and by how much?

``nas validate proxy`` gives each proxy's Kendall tau against the ground truth with its own
bootstrap interval. Two proxies' intervals overlap whenever the sample is small, which does not
say whether one is ahead. This script reads the run's ``summary.json`` (nothing is trained or
computed again) and prints, for pairs of proxies:

- the paired bootstrap of the difference of their Kendall taus: the same resampled arches for
  both proxies, so their shared luck cancels; with its 95 % interval and the share of
  resamples in which the first is ahead;
- each proxy's agreement on the pairs of arches that every ground-truth seed orders the same
  way (the pairs the ground truth can resolve), as a Kendall-style score in [-1, 1];
- the true ranks of each proxy's three best-rated arches (1 = the best arch).

    python benchmarks/proxy_pairs.py --summary experiments/vp15/summary.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", type=Path, default=Path("experiments/vp15/summary.json"))
    ap.add_argument(
        "--pairs",
        default="synflow:train,latency:synflow,latency:train,latency:params,generate:train",
        help="proxy pairs a:b, comma-separated (a minus b)",
    )
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.summary.is_file():
        raise SystemExit(
            f"error: {args.summary} not found; give the summary.json of a finished "
            "nas validate proxy run with --summary"
        )
    arches = json.loads(args.summary.read_text())["arches"]
    truth = np.array([a["quality_mean"] for a in arches])
    per_seed = np.array([a["quality_per_seed"] for a in arches])
    names = list(arches[0]["scores"])
    scores = {k: np.array([a["scores"][k] for a in arches], dtype=float) for k in names}
    n = len(arches)

    pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p]
    for a, b in pairs:
        for name in (a, b):
            if name not in scores:
                raise SystemExit(f"error: --pairs names {name!r}; the run has {', '.join(names)}")

    rng = np.random.default_rng(args.seed)
    diffs: dict[tuple[str, ...], list[float]] = {p: [] for p in pairs}
    paired = {name for p in pairs for name in p}  # only these proxies' taus are compared
    for _ in range(args.resamples):
        idx = rng.integers(0, n, n)
        if len(set(idx.tolist())) < 3:
            continue
        tau = {k: kendalltau(truth[idx], scores[k][idx])[0] for k in paired}
        for p in pairs:
            d = tau[p[0]] - tau[p[1]]
            if np.isfinite(d):
                diffs[p].append(float(d))

    print(f"{args.summary}: {n} arches, {per_seed.shape[1]} ground-truth seeds; lower is better")
    print(
        f"\npaired bootstrap of Kendall differences ({args.resamples} resamples, seed {args.seed})"
    )
    for p, d in diffs.items():
        arr = np.array(d)
        lo, hi = np.percentile(arr, [2.5, 97.5])
        print(
            f"  {p[0]} - {p[1]}: {arr.mean():+.3f} [{lo:+.3f}, {hi:+.3f}], "
            f"{p[0]} ahead in {100 * (arr > 0).mean():.0f} % of resamples"
        )

    agreed = [
        (i, j)
        for i, j in itertools.combinations(range(n), 2)
        if np.all(np.sign(per_seed[i] - per_seed[j]) == np.sign(per_seed[i, 0] - per_seed[j, 0]))
        and per_seed[i, 0] != per_seed[j, 0]
    ]
    true_rank = np.argsort(np.argsort(truth)) + 1
    print(f"\non the {len(agreed)} of {n * (n - 1) // 2} pairs every seed orders the same way:")
    for k, v in scores.items():
        s = sum(np.sign(v[i] - v[j]) * np.sign(truth[i] - truth[j]) for i, j in agreed)
        top = sorted(true_rank[np.argsort(v, kind="stable")[:3]].tolist())
        print(f"  {k:10s} agreement {s / len(agreed):+.3f}   its 3 best are truly {top}")


if __name__ == "__main__":
    main()
