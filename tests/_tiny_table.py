"""A hand-made latency table for the tiny space, shared by the search and dashboard tests.

A plain module at the top of tests/ (importable from every test folder, which are not packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY = str(Path(__file__).resolve().parents[1] / "search_spaces" / "tiny.yaml")


def tiny_table(
    space: Any = None,
    device: str = "cpu-ort",
    budget_mb: float = 100.0,
    work_mb: dict[str, float] | None = None,
) -> Any:
    """The hand-made table of the tiny space (or of ``space``), every row ``measured``: row i
    (in key order) takes i+0.5 ms at p10, i+1 at p50, 2(i+1) at p90; its peak is its 1 MiB of
    weights plus a working set of ``work_mb[op]`` (0.5 MB by default)."""
    from nas.cost import Table, TableRow, rows_for_space
    from nas.space import load_space

    space = space if space is not None else load_space(TINY)
    t = Table({"device": {"name": device, "precision": "fp32", "memory_budget_mb": budget_mb}})
    # block and pipeline rows only: like a table made before the network rows (call, glue)
    specs = [r for r in rows_for_space(space, "fp32") if not r.is_network]
    for i, spec in enumerate(sorted(specs, key=lambda r: r.key)):
        work = (work_mb or {}).get(spec.op, 0.5)
        t.put(
            TableRow(
                spec,
                "measured",
                i + 0.5,
                i + 1.0,
                2.0 * (i + 1),
                5,
                peak_mem_mb=1.0 + work,
                weight_bytes=2**20,
            )
        )
    return t


def make_tiny_table(folder: Path, device: str = "cpu-ort", budget_mb: float = 100.0) -> Path:
    """:func:`tiny_table`, saved as ``folder/<device>/``. Returns ``folder``."""
    tiny_table(device=device, budget_mb=budget_mb).save(folder / device)
    return folder
