"""The Pareto dashboard of a search run: data first (:class:`ParetoInfo`), then one HTML page.

    info = pareto_info("experiments/runs/20261122-224621-temporal")   # plain frozen data
    info.front[0].arch_id, info.breakdowns[0].cells, info.table.estimated
    write_dashboard(info.meta.run_dir)                                  # -> dashboard.html

``nas search`` writes the page at the end of every run; ``nas report RUN_DIR`` rewrites it (and
the run's csvs). The page is self-contained (plotly.js inline) and works offline from file://.
Importing this package does not import plotly.
"""

from __future__ import annotations

from pathlib import Path

from nas.report._html import page_data, render_html
from nas.report._info import (
    ArchBreakdown,
    BreakdownCell,
    BreakdownParts,
    ConstraintInfo,
    FrontArch,
    GroupInfo,
    HeatmapInfo,
    ObjectiveInfo,
    ParetoInfo,
    RunMeta,
    TableInfo,
    TrialPoint,
    pareto_info,
)

__all__ = [
    "ArchBreakdown",
    "BreakdownCell",
    "BreakdownParts",
    "ConstraintInfo",
    "FrontArch",
    "GroupInfo",
    "HeatmapInfo",
    "ObjectiveInfo",
    "ParetoInfo",
    "RunMeta",
    "TableInfo",
    "TrialPoint",
    "page_data",
    "pareto_info",
    "render_html",
    "write_dashboard",
]


def write_dashboard(run_dir: str | Path) -> Path:
    """Write ``dashboard.html`` into a run dir from its outputs; returns its path."""
    d = Path(run_dir)
    page = render_html(pareto_info(d))
    out = d / "dashboard.html"
    tmp = out.with_name(out.name + ".tmp")  # readers never see half a page
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
