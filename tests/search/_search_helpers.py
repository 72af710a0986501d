"""Shared by the search tests (a plain module: the test folders are not packages)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")


def make_tiny_table(folder: Path, device: str = "cpu-ort", budget_mb: float = 100.0) -> Path:
    """A hand-made table for the tiny space: row i (in key order) takes i+1 ms, 1 MiB weights."""
    from nas.cost import Table, TableRow, rows_for_space
    from nas.space import load_space

    space = load_space(TINY)
    t = Table({"device": {"name": device, "precision": "fp32", "memory_budget_mb": budget_mb}})
    for i, spec in enumerate(sorted(rows_for_space(space, "fp32"), key=lambda r: r.key)):
        t.put(
            TableRow(
                spec,
                "measured",
                i + 0.5,
                i + 1.0,
                2.0 * (i + 1),
                5,
                peak_mem_mb=1.5,
                weight_bytes=2**20,
            )
        )
    t.save(folder / device)
    return folder


def tiny_overrides(tables: Path, *extra: str) -> list[str]:
    return ["device=cpu-ort", f"device.table={tables}", *extra]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    return env
