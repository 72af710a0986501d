from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _report_helpers import (
    EVIL_NAME,
    EVIL_STUDY,
    browser_missing,
    chromium,
    make_run,
)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def quality_run(tiny_tables: Path, runs_dir: Path) -> Path:
    """Latency and quality (params proxy), a latency budget that some arches break, and a
    run name and study name that try to inject script."""
    return make_run(
        tiny_tables,
        runs_dir,
        "proxy=params",
        "sampler=random",
        "search.trials=30",
        "constraints.latency_s=0.42",
        f"name='{EVIL_NAME}'",
        f"search.study='{EVIL_STUDY}'",
    )


@pytest.fixture(scope="session")
def cost_run(tiny_tables: Path, runs_dir: Path) -> Path:
    """Cost only (latency and memory), NSGA-II, a latency budget."""
    return make_run(
        tiny_tables,
        runs_dir,
        "experiment=cost_only",
        "search.trials=40",
        "constraints.latency_s=0.42",
    )


@pytest.fixture(scope="session")
def one_trial_run(tiny_tables: Path, runs_dir: Path) -> Path:
    return make_run(tiny_tables, runs_dir, "experiment=cost_only", "search.trials=1")


@pytest.fixture(scope="session")
def infeasible_run(tiny_tables: Path, runs_dir: Path) -> Path:
    """No trial meets the budget."""
    return make_run(
        tiny_tables,
        runs_dir,
        "experiment=cost_only",
        "sampler=random",
        "search.trials=6",
        "constraints.latency_s=0.001",
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    why = browser_missing()
    if why is not None:
        pytest.skip(why)
    with chromium() as b:
        yield b
