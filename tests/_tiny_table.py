"""A hand-made latency table for the tiny space, shared by the search and dashboard tests.

A plain module at the top of tests/ (importable from every test folder, which are not packages).
"""

from __future__ import annotations

from pathlib import Path

TINY = str(Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")


def make_tiny_table(folder: Path, device: str = "cpu-ort", budget_mb: float = 100.0) -> Path:
    """Row i (in key order) takes i+1 ms at p50, 2(i+1) at p90, 1.5 MB peak, 1 MiB weights;
    the table is saved as ``folder/<device>/``. Returns ``folder``."""
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
