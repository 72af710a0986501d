"""Shared by the search tests (a plain module: the test folders are not packages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")


def tiny_overrides(tables: Path, *extra: str) -> list[str]:
    """The tiny space's test table, then ``extra``. Tests that are not about the sampler run
    NSGA-II (milliseconds per ask; the default GP takes seconds): ``sampler=nsga2`` unless
    ``extra`` picks a sampler or an experiment, or says ``sampler=default``."""
    picks = any(e.startswith(("sampler=", "experiment=")) for e in extra)
    extra = tuple(e for e in extra if e != "sampler=default")
    return [
        "device=cpu-ort",
        f"device.table={tables}",
        *([] if picks else ["sampler=nsga2"]),
        *extra,
    ]


def search_cmd(tables: Path, *extra: str) -> list[str]:
    """The `nas search` command line on the tiny space and its test table, no progress bar;
    ``extra`` goes after the table overrides (more overrides, then any flags)."""
    return [
        sys.executable,
        "-m",
        "nas",
        "search",
        "--space",
        TINY,
        "--no-progress",
        *tiny_overrides(tables, *extra),
    ]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_cli(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a `nas` command line to the end, as a user would, capturing its output."""
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def running_search(cwd: Path) -> tuple[Path | None, list[Any]]:
    """While a search started in ``cwd`` runs: its run dir and the study's trials, or (None, [])
    until the study is in its journal (the journal file appears a moment before the study's
    first record, and a reader that opens it then finds no study)."""
    from nas.errors import NasError
    from nas.search import open_run_study

    journals = list((cwd / "experiments" / "runs").glob("*/study.journal"))
    if not journals:
        return None, []
    try:
        trials = open_run_study(journals[0].parent).get_trials(deepcopy=False)
    except NasError:  # "study ... not found in its storage": not written yet
        return None, []
    return journals[0].parent, trials
