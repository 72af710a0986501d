"""Do the quality proxies rank arches as (proxy-scale) training does? One run, printed.

Runs ``nas validate proxy`` on the default space and prints its table, the wall time and the
equivalent command. By default it runs a smaller validation than the CLI's default so that it
finishes in about 10-15 minutes on a busy 2-core CPU: 6 arches instead of 8 (the all-none,
all-attn1d and 4 max-min-Hamming picks), the same 3 seeds, full budget 150 steps and proxy
budget 6 steps. ``--default`` runs the CLI's defaults (8 arches: about 30-40 minutes here).

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

SMALL = {"n": 6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="search_spaces/temporal.yaml")
    ap.add_argument("--default", action="store_true", help="the CLI's default size (8 arches)")
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
