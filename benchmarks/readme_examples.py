"""Time the README's quickstart commands as written, one after another, in a scratch folder.

Each command is read from the README's Quickstart block (continuation lines joined), with
``<run>`` replaced by the run dir of the first search and ``<arch_id>`` by an arch of its
front (``my_arch.yaml`` by the same arch file). The full-scale ``nas train`` (it says it needs
a GPU) is skipped unless ``--with-gpu-commands``. Prints each command's wall time and peak
RSS next to the time the README states, so the comments can be checked. Run it alone on the
machine: anything else competing for the cores changes the figures.

    python benchmarks/readme_examples.py                  # everything that runs on a CPU
    python benchmarks/readme_examples.py --only "nas train" --only "nas export"
    python benchmarks/readme_examples.py --dry-run        # the commands, nothing run
"""

from __future__ import annotations

import argparse
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[tuple[str, str]]:
    """(command, comment) of each `nas` line of the README's Quickstart block."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Quickstart")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None
    out = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        if line.startswith("nas "):
            cmd, _, comment = line.partition("#")
            out.append((" ".join(cmd.split()), comment.strip()))
    return out


def _fill(cmd: str, run: Path | None, arch: Path | None, cwd: Path) -> list[str]:
    argv = shlex.split(cmd)
    if run is not None:
        argv = [a.replace("experiments/runs/<run>", str(run)) for a in argv]
    if arch is not None:
        argv = [str(arch) if a.endswith(("<arch_id>.yaml", "my_arch.yaml")) else a for a in argv]
    if argv[:2] == ["nas", "train"] and "--out" not in argv:
        argv += ["--out", str(cwd / f"train-{int(time.time())}")]
    return [sys.executable, "-m", "nas", *argv[1:]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="commands starting with this")
    ap.add_argument("--with-gpu-commands", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    cwd = Path(tempfile.mkdtemp(prefix="readme-examples-"))
    (cwd / "search_spaces").symlink_to(ROOT / "search_spaces")
    shutil.copytree(ROOT / "latency_tables", cwd / "latency_tables")  # nas profile writes here
    run: Path | None = None
    arch: Path | None = None
    print(f"{'wall':>9}  {'peak RSS':>9}  rc  command  [README says]")
    for cmd, comment in readme_commands():
        wanted = not args.only or any(cmd.startswith(o) for o in args.only)
        is_search = cmd.startswith("nas search") and run is None
        if "needs a GPU" in comment and not args.with_gpu_commands:
            print(f"{'skipped':>9}  {'':>9}      {cmd}  [{comment}]")
            continue
        if not (wanted or is_search):  # the first search makes <run> for the others
            continue
        argv = _fill(cmd, run, arch, cwd)
        if args.dry_run:
            print(f"{'-':>9}  {'-':>9}   -  {shlex.join(argv)}  [{comment}]")
            continue
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
        print(f"{wall:8.1f}s  {rss:7.2f}GB  {r.returncode:>2}  {cmd}  [{comment}]", flush=True)
        if r.returncode != 0:
            print("    " + (r.stderr.strip().splitlines() or ["?"])[-1])
        if run is None and cmd.startswith("nas search") and r.returncode == 0:
            runs = sorted((cwd / "experiments" / "runs").iterdir())
            run = runs[-1]
            arch = sorted((run / "archs").glob("*.yaml"))[-1]
    print(f"scratch folder: {cwd}  (peak RSS: the largest child so far)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
