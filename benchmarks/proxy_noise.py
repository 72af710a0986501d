"""The seed-to-seed noise of the search's proxies at their shipped settings, written as the
measured defaults the search draws as error bars (``proxy.noise: auto``).

For each proxy of ``experiments/conf/proxy/`` (its options as shipped, the default data), this
evaluates ``--n`` arches of the space (diverse picks, arch seed ``--arch-seed``) under
``--seeds`` proxy seeds and prints the seed-to-seed std of the value between arches (the seed's
common shift taken out, ``nas.quality.seed_noise``), the plain pooled std that keeps the shift,
and the spread of the values across arches. ``--write`` stores them in
``nas/_data/proxy_noise.json`` with their provenance. Not a timing: the figures do not depend
on the machine's load.

    python benchmarks/proxy_noise.py --write                         # the shipped defaults
    python benchmarks/proxy_noise.py --space search_spaces/tiny.yaml --n 3 --seeds 2  # a check
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch
import yaml

from nas.quality import make_proxy, pick_diverse_arches, resolved_data, seed_noise
from nas.space import load_space

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nas" / "_data" / "proxy_noise.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--proxies", default="train,naswot,synflow")
    ap.add_argument("--n", type=int, default=8, help="arches")
    ap.add_argument("--seeds", type=int, default=3, help="proxy seeds per arch: 0 .. N-1")
    ap.add_argument("--seed-list", help="the proxy seeds, comma-separated (instead of --seeds)")
    ap.add_argument("--arch-seed", type=int, default=3)
    ap.add_argument("--write", action="store_true", help=f"store the figures in {OUT}")
    args = ap.parse_args()
    try:
        seeds = [int(x) for x in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    except ValueError:
        ap.error(f"--seed-list={args.seed_list!r}: give integers, comma-separated (0,1,2)")
    if len(seeds) < 2:
        ap.error("the noise needs at least 2 proxy seeds")
    torch.set_num_threads(1)
    space = load_space(args.space)
    arches = pick_diverse_arches(space, args.n, np.random.default_rng(args.arch_seed))
    entries = []
    print(f"{space.name}: {args.n} arches (arch seed {args.arch_seed}) x proxy seeds {list(seeds)}")
    print(f"{'proxy':<10}{'noise std':>12}{'pooled std':>12}{'std across arches':>19}{'ratio':>8}")
    for name in args.proxies.split(","):
        conf = yaml.safe_load((ROOT / "experiments/conf/proxy" / f"{name}.yaml").read_text())
        options = dict(conf.get("options") or {})
        values = np.array(
            [
                [make_proxy(name, space, **{**options, "seed": s}).evaluate(a) for s in seeds]
                for a in arches
            ]
        )  # fmt: skip
        noise, pooled = seed_noise(values)
        across = float(np.std(values.mean(axis=1), ddof=1))
        print(
            f"{name:<10}{noise:>12.4g}{pooled:>12.4g}{across:>19.4g}{noise / across:>8.2f}",
            flush=True,
        )
        print("  seed means: " + " ".join(f"{m:.4g}" for m in values.mean(axis=0)), flush=True)
        settings = {k: v for k, v in options.items() if k not in ("seed", "progress")}
        settings.update(resolved_data(options))
        cmd = shlex.join(["python", "benchmarks/proxy_noise.py", *sys.argv[1:]])
        entries.append(
            {
                "proxy": name,
                "space": space.name,
                "settings": settings,
                "noise_std": noise,
                "pooled_std": pooled,
                "std_across_arches": across,
                "source": f"{cmd} on {date.today()}: residual std (the seed's common shift out) "
                f"over proxy seeds {list(seeds)} of {args.n} arches (arch seed {args.arch_seed}) "
                f"of {space.name}",
            }
        )
    if args.write:
        old = json.loads(OUT.read_text()) if OUT.is_file() else {"entries": []}
        keep = [e for e in old["entries"] if (e["proxy"], e["space"]) not in
                {(x["proxy"], x["space"]) for x in entries}]  # fmt: skip
        doc = {"format": "nas-proxy-noise/1", "entries": keep + entries}
        OUT.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
