"""Reading a config, running a cost-only search and drawing its report load no torch or onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _search_helpers import TINY, subprocess_env

from nas.extras import EXTRAS

HEAVY = tuple(EXTRAS)  # every module of an extra: the slim core install (no extras) lacks them


def test_config_search_and_report_import_no_torch(tmp_path: Path, tiny_tables: Path) -> None:
    code = f"""
import sys
from nas.cli import main
from nas.search import compose_config, run_search

cfg, raw = compose_config([
    "device=cpu-ort", "device.table={tiny_tables}", "search.runs_dir={tmp_path}",
    "experiment=cost_only", "search.trials=3", "proxy=train",
])
assert not [m for m in {HEAVY!r} if m in sys.modules], "config"
res = run_search({TINY!r}, cfg, raw, progress=False, log=lambda m: None)
assert main(["report", str(res.run_dir)]) == 0
print("LOADED", sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout, r.stdout
