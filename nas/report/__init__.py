"""The Pareto dashboard of a search run: data first (:class:`ParetoInfo`), then one HTML page.

    info = pareto_info("experiments/runs/20261122-224621-temporal")   # plain frozen data
    info.front[0].arch_id, info.breakdowns[0].cells, info.table.estimated
    write_dashboard(info.meta.run_dir)                                  # -> dashboard.html

``nas search`` asks for the page at the end of every run; ``nas report RUN_DIR`` rewrites the
run's csvs from its study and then the page. The page is self-contained (plotly.js inline) and
works offline from file://. It reads the run only through :mod:`nas.results` and the run's
latency table through :class:`nas.cost.CostModel`; importing this package imports neither
plotly, torch nor Optuna.
"""

from __future__ import annotations

from pathlib import Path

from nas.fileio import atomic_write_text
from nas.report._html import (
    GL_THRESHOLD,
    budget_label,
    figures,
    front_plot_points,
    page_data,
    render_html,
    variant_colours,
)
from nas.report._info import (
    ArchBreakdown,
    BreakdownCell,
    BreakdownParts,
    ConstraintInfo,
    ExactPoint,
    FrontArch,
    GroupInfo,
    HeatmapInfo,
    ObjectiveInfo,
    ParetoInfo,
    ReferenceArch,
    RunMeta,
    TableInfo,
    TrialPoint,
    link_path,
    pareto_info,
)

__all__ = [
    "GL_THRESHOLD",
    "ArchBreakdown",
    "BreakdownCell",
    "BreakdownParts",
    "ConstraintInfo",
    "ExactPoint",
    "FrontArch",
    "GroupInfo",
    "HeatmapInfo",
    "ObjectiveInfo",
    "ParetoInfo",
    "ReferenceArch",
    "RunMeta",
    "TableInfo",
    "TrialPoint",
    "budget_label",
    "figures",
    "front_plot_points",
    "link_path",
    "page_data",
    "pareto_info",
    "render_html",
    "variant_colours",
    "write_dashboard",
]


def write_dashboard(run_dir: str | Path) -> Path:
    """Write ``dashboard.html`` into a run dir from its outputs; returns its path."""
    d = Path(run_dir)
    return atomic_write_text(d / "dashboard.html", render_html(pareto_info(d)))
