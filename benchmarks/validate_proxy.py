"""Do the quality proxies rank arches as (proxy-scale) training does? One run, printed.

Runs ``nas validate proxy`` on the default space and prints its table, the wall time and the
equivalent command. The CLI's default (8 arches x 3 seeds x 150 steps) takes about 30-35
minutes on this busy 2-core CPU, so by default this runs a smaller one that finishes in about
15 minutes: 6 arches (the all-none, the all-attn1d and 4 max-min-Hamming picks), 2 seeds, the
same 150-step budget and proxies. It picks its arches with ``--seed 1``, not the CLI's default
0: the training proxy's setting (16 steps on 8x8 latents) was chosen on the seed-0 arches, so
this is a check on arches it was not tuned on. ``--default`` runs the CLI's defaults.

    python benchmarks/validate_proxy.py [--default] [--out DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

from nas.quality import ProxyValidationConfig, validate_proxies
from nas.space import load_space

SMALL = {"n": 6, "seeds": 2, "seed": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--default", action="store_true", help="the CLI's defaults (8 arches, 3 seeds)")
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
    options = {} if args.default else SMALL
    config = ProxyValidationConfig(**options)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="validate-proxy-"))
    cmd = ["nas", "validate", "proxy", "--space", args.space, "--threads", str(args.threads)]
    cmd += [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    cmd += ["--out", str(out)]
    t0 = time.perf_counter()
    res = validate_proxies(load_space(args.space), out, config, progress=False, log=print)
    wall = time.perf_counter() - t0
    print(f"$ {shlex.join(cmd)}")
    print(res.table_text())
    threads = torch.get_num_threads()
    print(f"wall time {wall / 60:.1f} min (torch threads {threads}); files in {out}")


if __name__ == "__main__":
    main()
