"""Do the quality proxies rank arches as full training does? One run, printed.

Runs ``nas validate proxy`` on the default space and prints its table, the wall time and the
equivalent command. By default that is issue 15's measurement, the CLI's defaults: 12 arches
picked with arch seed 2 (never used while tuning a proxy) x 2 seeds, each trained 4,000 steps
of 8 videos on caption-informative data and scored on 64 generated clips (the generated-quality
scalar, docs/training.md), every proxy (naswot, synflow, params, the cost model's latency, the
training proxy at 3 budgets, the generation-based early proxy) with Kendall and Spearman
intervals, noise and cost; plus ``--transfer-n`` arches trained again at 32 x 32 latents for
the scale transfer. Hours on a GPU, days on the 2-core CPU: it resumes from ``--out``, so run
the same command again to continue.

``--previous`` reruns the earlier, smaller validation (6 arches x 2 seeds, 150 steps, the
validation loss at t=800 on the old data, arch seed 1); ``--tiny`` checks the script in a
couple of minutes (the figures mean nothing).

    python benchmarks/validate_proxy.py --out runs/vp15                # issue 15
    python benchmarks/validate_proxy.py --tiny --out /tmp/vp_tiny      # a check
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.quality import LEGACY_DATA, ProxyValidationConfig, validate_proxies
from nas.space import load_space

TRANSFER: dict[str, Any] = {
    "transfer_n": 4,
    "transfer_geometry": {"latent_height": 32, "latent_width": 32},
}
PREVIOUS: dict[str, Any] = {
    "n": 6, "seeds": 2, "seed": 1, "steps": 150, "batch_size": 4, "lr": 1e-3,
    "quality": "t800_ema", "train_spatial": False, "text_dropout": 0.0,
    "proxies": ("naswot", "synflow", "params", "train"), **LEGACY_DATA,
}  # fmt: skip
TINY: dict[str, Any] = {
    "n": 4, "seeds": 2, "steps": 8, "batch_size": 2, "gen_n": 4, "sample_steps": 2,
    "evaluator_steps": 5, "early_steps": 2, "early_n": 2, "n_val": 2, "bootstrap": 50,
    "geometry": {"frames": 4, "latent_height": 8, "latent_width": 8},
    "proxy_geometry": {}, "transfer_n": 3, "transfer_geometry": {"latent_height": 16,
    "latent_width": 16}, "checkpoint_every": 4,
}  # fmt: skip


def _flags(options: dict[str, Any]) -> list[str]:
    out = []
    for k, v in options.items():
        if k in ("geometry", "proxy_geometry", "transfer_geometry"):
            flag = f"--{k.replace('_', '-')}"
            out += [x for g, n in v.items() for x in (flag, f"{g}={n}")]
        elif k == "proxies":
            out += ["--proxies", ",".join(v)]
        elif k == "train_spatial":
            out += [] if v else ["--freeze-spatial"]
        else:
            out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--previous", action="store_true", help="the earlier, smaller validation")
    ap.add_argument("--tiny", action="store_true", help="a quick check of the script")
    ap.add_argument("--out", help="run folder (default: a fresh temporary folder)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine more threads than free "
        "cores slow training down many times over)",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    options = PREVIOUS if args.previous else TINY if args.tiny else TRANSFER
    space = args.space if not args.tiny else "search_spaces/tiny.yaml"
    config = ProxyValidationConfig(**options)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="validate-proxy-"))
    cmd = ["nas", "validate", "proxy", "--space", space, "--threads", str(args.threads)]
    cmd += [*_flags(options), "--out", str(out)]
    t0 = time.perf_counter()
    res = validate_proxies(load_space(space), out, config, progress=True, log=print)
    wall = time.perf_counter() - t0
    print(f"$ {shlex.join(cmd)}")
    print(res.table_text())
    threads = torch.get_num_threads()
    print(f"wall time {wall / 60:.1f} min this call (torch threads {threads}); files in {out}")


if __name__ == "__main__":
    main()
