"""Render a :class:`ParetoInfo` as one self-contained HTML page (plotly.js inline, no CDN).

The static figures (trial scatters, heatmap, hypervolume) are built here with plotly; the page's
small script only wires selection: a click on a point, a heatmap column or a table row selects
that arch everywhere and draws its breakdown from the embedded per-choice parts. Every string
that comes from a user (run, study and space names, paths, arch labels) is HTML-escaped, and the
embedded JSON escapes ``<``, ``>`` and ``&`` so it cannot close its script element.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from nas.report._assets import CSS, SCRIPT
from nas.report._info import ConstraintInfo, ParetoInfo, TrialPoint, link_path

__all__ = [
    "GL_THRESHOLD",
    "budget_label",
    "front_plot_points",
    "page_data",
    "render_html",
    "variant_colours",
]

# above this many points a trial cloud is drawn with WebGL (scattergl) instead of SVG
GL_THRESHOLD = 4000

OP_COLOURS = {
    "none": "#e8e8e8",
    "conv1d": "#1f77b4",
    "conv3d": "#17becf",
    "attn1d": "#ff7f0e",
    "attn3d": "#d62728",
    "xattn1d": "#9467bd",
    "xattn3d": "#e377c2",
}
_EXTRA_COLOURS = ("#2ca02c", "#8c564b", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78")
BACKBONE_COLOURS = {
    "conv_in": "#d9d9d9",
    "time_embed": "#cfcfcf",
    "resnet": "#8c8c8c",
    "attn": "#5b5b5b",
    "downsample": "#b5b5b5",
    "upsample": "#a8a8a8",
    "conv_out": "#d9d9d9",
}
KIND_LABELS = {
    "conv_in": "conv in",
    "time_embed": "time embedding",
    "resnet": "ResNet",
    "attn": "spatial attention",
    "downsample": "downsample",
    "upsample": "upsample",
    "conv_out": "conv out",
}
_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _num(v: float | None) -> float | None:
    """A JSON-safe number: None for missing or non-finite."""
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def _op_colour(op: str, known: Sequence[str]) -> str:
    if op in OP_COLOURS:
        return OP_COLOURS[op]
    extra = [k for k in known if k not in OP_COLOURS]
    return _EXTRA_COLOURS[extra.index(op) % len(_EXTRA_COLOURS)] if op in extra else "#000000"


def _shade(colour: str, i: int, n: int) -> str:
    """The ``i``-th of ``n`` shades of ``colour``: the colour itself, then darker and lighter
    ones in turn, so neighbouring variants stay apart."""
    if n <= 1 or i == 0:
        return colour
    r, g, b = (int(colour[k : k + 2], 16) for k in (1, 3, 5))
    step = (i + 1) // 2 / max(1, n // 2)  # 0 < step <= 1
    target, amount = (0, 0.45 * step) if i % 2 else (255, 0.55 * step)
    mix = [round(c + (target - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def variant_colours(variants: Sequence[str], kinds: Sequence[str]) -> dict[str, str]:
    """A colour per choice key: its op kind's colour, shaded per variant of that kind."""
    out: dict[str, str] = {}
    for op in kinds:
        mine = [v for v in variants if v.split("(", 1)[0] == op]
        for i, v in enumerate(mine):
            out[v] = _shade(_op_colour(op, kinds), i, len(mine))
    return out


# ---------------------------------------------------------------------------------------------
# what the page script reads
# ---------------------------------------------------------------------------------------------


def _axes(info: ParetoInfo) -> tuple[str, str, str, str]:
    """(x column, x label, y column, y label) of the main scatter: latency against quality,
    or against memory for a run without quality."""
    xl = f"latency ({info.latency_unit}{'/video' if info.meta.latency == 'video' else '/step'})"
    if info.has_quality:
        q = next(o for o in info.objectives if o.name == "quality")
        return info.latency_column, xl, "quality", f"quality ({q.unit}, lower is better)"
    return info.latency_column, xl, "peak_mem_mb", "peak memory (MB)"


def _plotted(trials: Sequence[TrialPoint], x: str, y: str) -> list[int]:
    """Indices of complete trials with both values (what a scatter of x against y shows)."""
    out = []
    for i, t in enumerate(trials):
        xv, yv = t.value(x), t.value(y)
        if xv is None or yv is None or not t.complete:
            continue
        if math.isfinite(xv) and math.isfinite(yv):
            out.append(i)
    return out


def front_plot_points(info: ParetoInfo) -> int:
    """How many markers the main scatter draws: one per complete trial with both values, one
    more per reference arch among them (its diamond), and a cost-only run's exact front."""
    x, _, y, _ = _axes(info)
    return _markers(info, x, y)


def _markers(info: ParetoInfo, x: str, y: str) -> int:
    idx = _plotted(info.trials, x, y)
    refs = {r.trial for r in info.references}
    exact = 0 if info.has_quality else sum(x in e.values and y in e.values for e in info.exact)
    return len(idx) + sum(1 for i in idx if info.trials[i].number in refs) + exact


def _parts_data(info: ParetoInfo) -> dict[str, Any] | None:
    """The breakdown parts as compact lists: cells as [where, kind, ms, weights] indices."""
    if info.parts is None:
        return None
    p = info.parts
    kinds: list[str] = []
    temporal: list[bool] = []

    def cell(c: Any) -> list[Any]:
        if c.kind not in kinds:
            kinds.append(c.kind)
            temporal.append(c.temporal)
        return [p.wheres.index(c.where), kinds.index(c.kind), c.ms, c.weights_mb]

    backbone = [cell(c) for c in p.backbone]
    choices = [[[cell(c) for c in cells] for cells in group] for group in p.choices]
    return {
        "wheres": list(p.wheres),
        "kinds": kinds,
        "labels": [
            f"temporal {k}" if t else KIND_LABELS.get(k, k)
            for k, t in zip(kinds, temporal, strict=True)
        ],
        "temporal": temporal,
        "colours": [
            _op_colour(k, info.heatmap.op_kinds) if t else BACKBONE_COLOURS.get(k, "#999999")
            for k, t in zip(kinds, temporal, strict=True)
        ],
        "backbone": backbone,
        "choices": choices,
        "overhead_ms": p.overhead_ms,
        "overhead_mb": p.overhead_mb,
    }


def page_data(info: ParetoInfo) -> dict[str, Any]:
    """The JSON the page script reads: trials as columns, arches, the front, and the parts
    that compose any arch's breakdown."""
    trials = info.trials
    arch_index: dict[str, int] = {}
    arch_ids: list[str] = []
    arch_choices: list[list[int]] = []
    arch_trial: list[int] = []
    for i, t in enumerate(trials):
        if t.arch_id and t.arch_id not in arch_index:
            arch_index[t.arch_id] = len(arch_ids)
            arch_ids.append(t.arch_id)
            arch_choices.append(list(t.indices))
            arch_trial.append(i)
        elif t.arch_id and t.complete and not trials[arch_trial[arch_index[t.arch_id]]].complete:
            arch_trial[arch_index[t.arch_id]] = i  # prefer a complete trial as the arch's own
    front_rank = [-1] * len(arch_ids)
    front_yaml: list[str | None] = [None] * len(arch_ids)
    front: list[int] = []
    by_number = {t.number: i for i, t in enumerate(trials)}
    for r, f in enumerate(info.front):
        a = arch_index[f.arch_id]
        front.append(a)
        front_rank[a] = r
        front_yaml[a] = link_path(f.yaml) or None
        arch_trial[a] = by_number.get(f.trial, arch_trial[a])
    states = sorted(
        {t.state for t in trials},
        key=lambda s: (_STATE_ORDER.index(s) if s in _STATE_ORDER else len(_STATE_ORDER), s),
    )
    statuses = sorted({t.quality_status for t in trials})

    parts = _parts_data(info)
    x, xl, y, yl = _axes(info)
    return {
        "name": info.meta.name,
        "latency_unit": info.latency_unit,
        "latency_label": xl,
        "y_column": y,
        "y_label": yl,
        "has_quality": info.has_quality,
        "objectives": [
            {"name": o.name, "column": o.column, "unit": o.unit} for o in info.objectives
        ],
        "states": states,
        "statuses": statuses,
        "trials": {
            "number": [t.number for t in trials],
            "arch": [arch_index.get(t.arch_id or "", -1) for t in trials],
            "state": [states.index(t.state) for t in trials],
            "status": [statuses.index(t.quality_status) for t in trials],
            "feasible": [1 if t.feasible else 0 for t in trials],
            "x": [_num(t.value(x)) for t in trials],
            "latency_s_video": [_num(t.latency_s_video) for t in trials],
            "latency_ms_step": [_num(t.latency_ms_step) for t in trials],
            "peak_mem_mb": [_num(t.peak_mem_mb) for t in trials],
            "weights_mb": [_num(t.weights_mb) for t in trials],
            "quality": [_num(t.quality) for t in trials],
        },
        "archs": {
            "ids": arch_ids,
            "choices": arch_choices,
            "trial": arch_trial,
            "front": front_rank,
            "yaml": front_yaml,
        },
        "front": front,
        "heat_cols": [arch_index[a] for a in info.heatmap.arch_ids if a in arch_index],
        "run_dir": info.meta.run_dir,
        "groups": [
            {"name": g.name, "where": g.where, "choices": list(g.choices)} for g in info.groups
        ],
        "parts": parts,
    }


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


# plotly's toolbar (top right of every plot) sits in the top margin, above the plotting area,
# and the legends sit under it, so neither covers the other, a budget label or a heatmap row
TOOLBAR_MARGIN = 40
# the reference arches (the all-none arch, an op kind everywhere) on every plot
REFERENCE_MARKER = {
    "symbol": "diamond-open",
    "size": 13,
    "color": "#444444",
    "line": {"width": 2, "color": "#444444"},
}


def _layout(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "margin": {"l": 60, "r": 20, "t": TOOLBAR_MARGIN, "b": 96},
        "legend": {
            "orientation": "h",
            "y": -0.16,
            "yanchor": "top",
            "x": 0,
            "font": {"size": 11},
        },
        "hovermode": "closest",
        "font": {"size": 12},
    }
    base.update(kw)
    return base


BUDGET_NAMES = {
    "latency_s": "latency",
    "latency_ms_step": "latency per step",
    "memory_mb": "memory",
}


def budget_label(c: ConstraintInfo) -> str:
    """``latency budget 4 s``: a budget in words, not its config key."""
    name = BUDGET_NAMES.get(c.name, c.name.replace("_", " "))
    if c.column == "latency_s_unet":
        name = "UNet latency"
    return f"{name} budget {c.budget:g} {c.unit}"


def _budget_shapes(
    info: ParetoInfo, x: str, y: str, xs: Sequence[float | None], ys: Sequence[float | None]
) -> tuple[list[Any], list[Any]]:
    """Dashed budget lines on the axes that have one. A budget far beyond the plotted values
    would squash them into a corner, so it is named in a corner note instead."""
    shapes: list[Any] = []
    notes: list[Any] = []
    line = {"color": "#d62728", "width": 1.5, "dash": "dash"}
    font = {"color": "#d62728", "size": 11}
    off: list[str] = []
    for axis, col, vals in (("x", x, xs), ("y", y, ys)):
        c = info.constraint(col)
        if c is None:
            continue
        label = _e(budget_label(c))
        v = [float(a) for a in vals if a is not None]
        if v:
            lo, hi = min(v), max(v)
            span = hi - lo if hi > lo else abs(hi) or 1.0
            if c.budget > hi + 0.5 * span or c.budget < lo - 0.5 * span:
                where = "above" if c.budget > hi else "below"
                off.append(f"{label} ({where} every plotted trial)")
                continue
        if axis == "x":
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": c.budget,
                    "x1": c.budget,
                    "y0": 0,
                    "y1": 1,
                    "line": line,
                }
            )
            notes.append(
                {
                    "xref": "x",
                    "yref": "paper",
                    "x": c.budget,
                    "y": 1,
                    "yanchor": "top",
                    "xanchor": "right",
                    "showarrow": False,
                    "font": font,
                    "text": label,
                    "textangle": 0,
                }
            )
        else:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "yref": "y",
                    "x0": 0,
                    "x1": 1,
                    "y0": c.budget,
                    "y1": c.budget,
                    "line": line,
                }
            )
            notes.append(
                {
                    "xref": "paper",
                    "yref": "y",
                    "x": 0,
                    "y": c.budget,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": font,
                    "text": label,
                }
            )
    if off:
        notes.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 0,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": font,
                "align": "left",
                "text": "<br>".join(off),
            }
        )
    return shapes, notes


class _Traces:
    """Builds the scatter's traces: columns of the chosen trials, one hover template."""

    def __init__(self, info: ParetoInfo, x: str, xl: str, y: str, yl: str, colour_label: str):
        self.trials = info.trials
        self.x, self.y = x, y
        self.hover = (
            "trial %{customdata[1]}<br>arch %{text}<br>"
            f"{_e(xl)}: %{{x:.4g}}<br>{_e(yl)}: %{{y:.4g}}<br>"
            f"{_e(colour_label)}: %{{marker.color:.4g}}<extra>%{{fullData.name}}</extra>"
        )
        self.over_budget = self.hover.replace(
            f"<br>{_e(colour_label)}: %{{marker.color:.4g}}", "<br>over budget"
        )

    def col(self, ii: list[int], c: str) -> list[float | None]:
        if c == "trial":
            return [float(self.trials[i].number) for i in ii]
        return [_num(self.trials[i].value(c)) for i in ii]

    def trace(self, ii: list[int], name: str, t: str, marker: dict[str, Any], **kw: Any) -> Any:
        return {
            "type": t,
            "mode": "markers",
            "name": name,
            "x": self.col(ii, self.x),
            "y": self.col(ii, self.y),
            "text": [_e(self.trials[i].arch_id or "") for i in ii],
            "customdata": [[i, self.trials[i].number] for i in ii],
            "hovertemplate": self.hover,
            "marker": marker,
            **kw,
        }


def _scatter(
    info: ParetoInfo,
    x: str,
    xl: str,
    y: str,
    yl: str,
    colour: str,
    colour_label: str,
    gl_threshold: int,
) -> dict[str, Any]:
    """Trials of ``x`` against ``y``: feasible (coloured by ``colour``), infeasible (grey),
    and the front (outlined; a line when x and y are the run's two objectives). The page
    draws the selection ring as a shape."""
    trials = info.trials
    idx = _plotted(trials, x, y)
    front_trials = {f.trial for f in info.front}
    on_front = [i for i in idx if trials[i].number in front_trials]
    on_front.sort(key=lambda i: (trials[i].value(x), trials[i].value(y)))  # the staircase
    feas = [i for i in idx if trials[i].feasible and trials[i].number not in front_trials]
    infeas = [i for i in idx if not trials[i].feasible]
    kind = "scattergl" if len(idx) > gl_threshold else "scatter"
    tr = _Traces(info, x, xl, y, yl, colour_label)
    cvals = [v for v in tr.col(feas + on_front, colour) if v is not None]
    scale = {
        "colorscale": "Viridis",
        "cmin": min(cvals) if cvals else 0.0,
        "cmax": max(cvals) if cvals else 1.0,
    }
    size = 7 if kind == "scatter" else 5
    colourbar = {"title": {"text": _e(colour_label), "side": "right"}, "thickness": 12}
    two = [o.column for o in info.objectives] in ([x, y], [y, x])
    data = [
        tr.trace(
            feas,
            f"feasible ({len(feas)})",
            kind,
            {"size": size, "color": tr.col(feas, colour), **scale, "opacity": 0.75}
            | {"colorbar": colourbar},
        ),
        tr.trace(
            infeas,
            f"infeasible ({len(infeas)})",
            kind,
            {"size": size, "color": "#9e9e9e", "symbol": "x", "opacity": 0.6},
            hovertemplate=tr.over_budget,
        ),
        tr.trace(
            on_front,
            f"Pareto front ({len(on_front)})",
            "scatter",
            {"size": 11, "color": tr.col(on_front, colour), **scale}
            | {"line": {"color": "#111111", "width": 1.5}},
            mode="lines+markers" if two else "markers",
            line={"color": "#111111", "width": 1, "shape": "hv"},
        ),
    ]
    _noise_bars(data[0], feas, trials, x, y)
    _noise_bars(data[2], on_front, trials, x, y)
    exact = [e for e in info.exact if x in e.values and y in e.values]
    if exact and not info.has_quality:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"exact front ({len(exact)})",
                "x": [e.values[x] for e in exact],
                "y": [e.values[y] for e in exact],
                "text": [_e(e.arch_id) for e in exact],
                "marker": {"symbol": "star-open", "size": 12, "color": "#2ca02c"},
                "line": {"color": "#2ca02c", "width": 1, "dash": "dot", "shape": "hv"},
                "hovertemplate": "exact front: arch %{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
            }
        )
    refs = {r.trial: r.label for r in info.references}
    on_ref = [i for i in idx if trials[i].number in refs]
    if on_ref:
        data.append(
            tr.trace(
                on_ref,
                f"reference arches ({len(on_ref)})",
                "scatter",
                REFERENCE_MARKER,
                mode="markers+text",
                textposition="top center",
                texttemplate=[_e(refs[trials[i].number]) for i in on_ref],
                textfont={"size": 10, "color": "#444444"},
            )
        )
    shapes, notes = _budget_shapes(info, x, y, tr.col(idx, x), tr.col(idx, y))
    layout = _layout(
        xaxis={"title": {"text": _e(xl)}, "zeroline": False},
        yaxis={"title": {"text": _e(yl)}, "zeroline": False},
        shapes=shapes,
        annotations=notes,
        height=420,
    )
    return {"data": data, "layout": layout}


def _noise_bars(
    trace: dict[str, Any], ii: Sequence[int], trials: Sequence[TrialPoint], x: str, y: str
) -> None:
    """+- the proxy's seed-to-seed std on the quality axis of ``trace`` (points ``ii``), when
    the trials record one: a gap in the front smaller than the bars is within proxy noise."""
    axis = "error_y" if y == "quality" else "error_x" if x == "quality" else None
    noise = [trials[i].quality_noise for i in ii]
    if axis is None or all(v is None for v in noise):
        return
    trace[axis] = {
        "type": "data",
        "array": [v if v is not None else 0.0 for v in noise],
        "visible": True,
        "thickness": 1,
        "width": 2,
        "color": "rgba(60, 60, 60, 0.45)",
    }


def noise_hint(info: ParetoInfo) -> str:
    """A sentence on the quality error bars (their size and source); "" without them."""
    found = next((t for t in info.trials if t.quality_noise is not None), None)
    if found is None:
        return ""
    return (
        f" Error bars on quality: +-{found.quality_noise:.3g}, the proxy's seed-to-seed std "
        f"({_e(found.quality_noise_source)}); gaps smaller than that are within proxy noise."
    )


def hv_hint(info: ParetoInfo) -> str:
    """What the hypervolume measures, under its card's title (the axis title stays short)."""
    names = " x ".join(o.name for o in info.objectives)
    box = info.box
    if box is not None and box.complete:
        lower, upper = box.bounds()
        spans = ", ".join(
            f"{o.name} {lo:.4g} to {hi:.4g} {o.unit}"
            for o, lo, hi in zip(info.objectives, lower, upper, strict=False)
        )
        return (
            f"The fraction of the run's fixed box ({spans}: from the all-none arch to the "
            f"budgets and the all-none arch's quality) that the front of {names} dominates. "
            "It never decreases."
        )
    return (
        f"The front's hypervolume ({names}) in the feasible range of the trials, reference "
        "point 1.1 (a run from before boxes were recorded)."
    )


def _hv_figure(info: ParetoInfo) -> dict[str, Any]:
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "hypervolume",
            "x": [t.number for t in info.trials],
            "y": list(info.hypervolume),
            "line": {"color": "#1f77b4", "width": 2, "shape": "hv"},
            "hovertemplate": "after trial %{x}: %{y:.4f}<extra></extra>",
        }
    ]
    at = {t.number: i for i, t in enumerate(info.trials)}
    refs = [r for r in info.references if r.trial in at]
    if refs and info.hypervolume:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "reference arches",
                "x": [r.trial for r in refs],
                "y": [info.hypervolume[at[r.trial]] for r in refs],
                "text": [_e(r.label) for r in refs],
                "marker": REFERENCE_MARKER,
                "hovertemplate": "reference arch %{text}, trial %{x}: %{y:.4f}<extra></extra>",
            }
        )
    annotations = []
    if not any(h > 0 for h in info.hypervolume):
        annotations.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "text": "no feasible trial yet",
                "font": {"size": 14, "color": "#777777"},
            }
        )
    layout = _layout(
        xaxis={"title": {"text": "trial"}},
        yaxis={"title": {"text": "hypervolume"}, "rangemode": "tozero", "automargin": True},
        showlegend=False,
        annotations=annotations,
        height=300,
        margin={"l": 60, "r": 20, "t": TOOLBAR_MARGIN, "b": 50},
    )
    return {"data": data, "layout": layout}


def _heatmap_figure(info: ParetoInfo) -> dict[str, Any]:
    h = info.heatmap
    kinds = list(h.op_kinds)
    variants = list(h.variants) or kinds
    colours = variant_colours(variants, kinds) if h.variants else {}
    n = max(len(variants), 1)
    scale: list[Any] = []
    for i, v in enumerate(variants):
        c = colours.get(v) or _op_colour(v, kinds)
        scale += [[i / n, c], [(i + 1) / n, c]]
    rows = [
        f"{g} ({w})" if not g.startswith(w) else g for g, w in zip(h.groups, h.where, strict=True)
    ]
    if not h.arch_ids:
        return {
            "data": [],
            "layout": _layout(
                height=260,
                xaxis={"visible": False},
                yaxis={"visible": False},
                annotations=[
                    {
                        "xref": "paper",
                        "yref": "paper",
                        "x": 0.5,
                        "y": 0.5,
                        "showarrow": False,
                        "text": "no arch on the front yet (no feasible trial)",
                        "font": {"size": 14, "color": "#777777"},
                    }
                ],
            ),
        }
    cells = h.choices if h.variants else h.ops
    z = [[variants.index(k) if k in variants else 0 for k in row] for row in cells]
    refs = h.references or ("",) * len(h.arch_ids)
    labels = [
        f"{r + 1}. {_e(a)}" if not ref else f"ref {_e(ref)}: {_e(a)}"
        for r, (a, ref) in enumerate(zip(h.arch_ids, refs, strict=True))
    ]
    data = [
        {
            "type": "heatmap",
            "z": z,
            "x": labels,
            "y": [_e(r) for r in rows],
            "zmin": -0.5,
            "zmax": n - 0.5,
            "colorscale": scale if variants else "Greys",
            "showscale": False,
            "xgap": 2,
            "ygap": 2,
            "customdata": [[_e(c) for c in row] for row in h.choices],
            "hovertemplate": "%{y}<br>arch %{x}<br>%{customdata}<extra></extra>",
        }
    ]
    if len(h.arch_ids) <= 16:  # op names in the cells while they fit
        data[0]["text"] = [[op if op != "none" else "" for op in row] for row in h.ops]
        data[0]["texttemplate"] = "%{text}"
        data[0]["textfont"] = {"size": 10, "color": "#ffffff"}
    height = max(260, 26 * len(rows) + 150)
    front_cols = sum(1 for r in refs if not r)
    shapes = []
    if front_cols < len(refs):  # a dotted line between the front and the reference arches
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": front_cols - 0.5,
                "x1": front_cols - 0.5,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#555555", "width": 1, "dash": "dot"},
            }
        )
    layout = _layout(
        height=height,
        xaxis={"tickangle": -40, "type": "category", "tickfont": {"size": 10}},
        yaxis={
            "autorange": "reversed",
            "type": "category",
            "tickfont": {"size": 11},
            "automargin": True,
        },
        margin={"l": 60, "r": 10, "t": TOOLBAR_MARGIN, "b": 130},
        shapes=shapes,
    )
    return {"data": data, "layout": layout}


def figures(info: ParetoInfo, gl_threshold: int = GL_THRESHOLD) -> dict[str, dict[str, Any]]:
    """The static figures, as plotly JSON dicts (``data``/``layout``)."""
    x, xl, y, yl = _axes(info)
    out: dict[str, dict[str, Any]] = {}
    if info.has_quality:
        out["front"] = _scatter(info, x, xl, y, yl, "peak_mem_mb", "memory (MB)", gl_threshold)
        out["cost"] = _scatter(
            info, x, xl, "peak_mem_mb", "peak memory (MB)", "quality", "quality", gl_threshold
        )
    else:
        out["front"] = _scatter(info, x, xl, y, yl, "trial", "trial", gl_threshold)
    out["hv"] = _hv_figure(info)
    out["heatmap"] = _heatmap_figure(info)
    return out


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside a <script> element: no "</script>", no "<!--"."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _banner(info: ParetoInfo) -> str:
    t = info.table
    if not t.known:
        return (
            '<div class="banner warn" id="provenance-banner"><strong>Where these latency '
            "numbers come from is unknown:</strong> this run did not record its table's "
            "provenance. Re-run the search with a current <code>nas</code> to record it.</div>"
        )
    if not t.estimated:
        return ""
    parts = ", ".join(f"{n} {_e(k)}" for k, n in sorted(t.unmeasured.items()))
    dev = _e(t.device)
    desc = f" ({_e(t.description)})" if t.description else ""
    return (
        '<div class="banner" id="provenance-banner"><strong>Latency and memory are estimated, '
        f"not measured.</strong> Of the {t.rows} rows of the {dev} table{desc}, {parts} "
        "are not measurements on the device, so absolute numbers (and budgets met) are "
        "approximate; rankings are more reliable than values. Measure the rows on the device "
        f"with <code>nas profile --device {dev}</code> and re-run the search.</div>"
    )


def _meta_html(info: ParetoInfo) -> str:
    m, t = info.meta, info.table
    states = ", ".join(f"{n} {_e(s.lower())}" for s, n in sorted(info.states.items()))
    opts = ", ".join(f"{k}={v}" for k, v in m.sampler_options.items())
    hours = m.trial_seconds
    dur = f"{hours / 3600:.2f} h" if hours >= 3600 else f"{hours:.1f} s"
    sources = ", ".join(f"{n} {k}" for k, n in sorted(t.sources.items())) or "not recorded"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(t.versions.items()))
    cons = (
        "; ".join(
            f"{_e(budget_label(c))} <span class=dim>({_e(c.name)})</span>" for c in info.constraints
        )
        or "none"
    )
    rows = [
        ("run", _e(m.name)),
        ("run dir", f"<code>{_e(m.run_dir)}</code>"),
        ("study", f"{_e(m.study)} <span class=dim>({_e(m.storage)})</span>"),
        ("status", _e(m.status)),
        ("created", _e(m.created)),
        (
            "trials",
            f"{len(info.trials)} of {m.trials_target} ({states}); {info.feasible} feasible; "
            f"front: {len(info.front)} arch(es)",
        ),
        ("trial time", f"{dur} <span class=dim>(sum of trial durations)</span>"),
        (
            "space",
            f"{_e(m.space_name)} <span class=dim>(hash {_e(m.space_hash)}, "
            f"{m.space_size:,} arches; {_e(m.space_source)})</span>",
        ),
        ("device", f"{_e(m.device)} <span class=dim>{_e(t.description)}</span>"),
        (
            "latency table",
            f"{_e(sources)}; backend {_e(t.backend or '?')}, quantile {_e(m.quantile)}"
            f"<br><span class=dim>{_e(t.path)} {_e(t.created)}</span>",
        ),
        ("sampler", f"{_e(m.sampler)} <span class=dim>{_e(opts)}</span>"),
        ("proxy", _e(m.proxy)),
        (
            "objectives",
            ", ".join(_e(o.label) for o in info.objectives) + " <span class=dim>(minimised)</span>",
        ),
        ("constraints", cons),
        ("seed", str(m.seed)),
    ]
    if versions:
        rows.append(("versions", f"<span class=dim>{_e(versions)}</span>"))
    return "<dl class=meta>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _objective_cols(info: ParetoInfo) -> list[tuple[str, str, str]]:
    """(column, header, unit) of the front table: the objectives, then the costs not among
    them."""
    cols = [(o.column, o.name, o.unit) for o in info.objectives]
    have = {c for c, _, _ in cols}
    for c, h, u in (
        ("latency_s_video", "latency", "s/video"),
        ("latency_ms_step", "latency", "ms/step"),
        ("peak_mem_mb", "memory", "MB"),
        ("weights_mb", "weights", "MB"),
    ):
        if c not in have:
            cols.append((c, h, u))
    return cols


def _arch_link(arch_id: str, yaml: str) -> str:
    href = link_path(yaml)
    if not href:
        return f'<span class="arch">{_e(arch_id)}</span>'
    return f'<a href="{_e(href)}" class="arch">{_e(arch_id)}</a>'


def _table_html(info: ParetoInfo) -> str:
    if not info.front:
        return (
            '<p class="empty" id="front-empty">No arch on the front yet: no trial is both '
            "complete and feasible.</p>"
        )
    cols = _objective_cols(info)
    head = [
        '<th data-type="num" class="sortable">#</th>',
        '<th class="sortable">arch</th>',
        '<th data-type="num" class="sortable">trial</th>',
    ]
    head += [
        f'<th data-type="num" class="sortable">{_e(h)} <span class=dim>({_e(u)})</span></th>'
        for _, h, u in cols
    ]
    head.append('<th class="sortable">temporal ops</th>')
    body = []
    for r, f in enumerate(info.front):
        vals = {
            "latency_s_video": f.latency_s_video,
            "latency_ms_step": f.latency_ms_step,
            "peak_mem_mb": f.peak_mem_mb,
            "weights_mb": f.weights_mb,
            "quality": f.quality,
        }
        cells = [
            f'<td data-v="{r + 1}">{r + 1}</td>',
            f'<td data-v="{_e(f.arch_id)}">{_arch_link(f.arch_id, f.yaml)}</td>',
            f'<td data-v="{f.trial}">{f.trial}</td>',
        ]
        for c, _, _ in cols:
            v = vals.get(c)
            dv = "" if v is None or not math.isfinite(v) else repr(v)
            cells.append(f'<td data-v="{dv}">{_fmt(v)}</td>')
        cells.append(f'<td data-v="{_e(f.ops)}">{_e(f.ops)}</td>')
        body.append(f'<tr data-arch="{_e(f.arch_id)}">' + "".join(cells) + "</tr>")
    return (
        '<table id="front-table" class="front"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _legend_html(info: ParetoInfo) -> str:
    h = info.heatmap
    kinds = h.op_kinds
    colours = variant_colours(h.variants, kinds)
    items = []
    for k in kinds:
        mine = [v for v in h.variants if v.split("(", 1)[0] == k]
        if len(mine) <= 1:
            items.append(
                f'<span class="key"><i style="background:{_op_colour(k, kinds)}"></i>{_e(k)}</span>'
            )
            continue
        items += [
            f'<span class="key"><i style="background:{colours[v]}"></i>{_e(v)}</span>' for v in mine
        ]
    return f'<div class="legend" id="heatmap-legend">{"".join(items)}</div>'


def _notes_html(info: ParetoInfo) -> str:
    notes = list(info.notes)
    if info.has_quality:
        x, _, y, _ = _axes(info)
        missing = [t for t in info.trials if t.complete and t.value(y) is None and t.value(x)]
        if missing:
            notes.append(
                f"{len(missing)} complete trial(s) have no quality (infeasible arches skip the "
                "proxy); they appear in the latency–memory view only."
            )
    return "".join(f'<div class="note">{_e(n)}</div>' for n in notes)


def render_html(
    info: ParetoInfo, *, plotlyjs: str | None = None, gl_threshold: int = GL_THRESHOLD
) -> str:
    """The dashboard page. ``plotlyjs`` is the plotly.js source to inline (default: the copy
    shipped with the plotly package)."""
    if plotlyjs is None:
        from plotly.offline import get_plotlyjs

        plotlyjs = get_plotlyjs()
    figs = figures(info, gl_threshold)
    payload = _json_for_script({"data": page_data(info), "figs": figs})
    m = info.meta
    title = f"{m.name} · Pareto dashboard"
    sub = (
        f"space {_e(m.space_name)} · device {_e(m.device)} · sampler {_e(m.sampler)} · proxy "
        f"{_e(m.proxy)} · {len(info.trials)} trials · {info.feasible} feasible · front "
        f"{len(info.front)} · {_e(m.status)}"
    )
    cost_card = ""
    if "cost" in figs:
        cost_card = (
            '<section class="card"><div class="card-head"><h2>All trials: latency, memory and '
            'quality</h2><button id="toggle-3d" type="button">3-D view</button></div>'
            '<p class="hint">Colour is quality; grey crosses are over budget (no quality '
            "evaluated). The 3-D view plots the three objectives.</p>"
            '<div id="plot-cost" class="plot"></div></section>'
        )
    hv_class = "" if cost_card else " full"
    front_title = (
        "Front: latency against quality (colour: memory)"
        if info.has_quality
        else "Front: latency against memory (colour: trial)"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1 id="run-title">{_e(m.name)} <span class=dim>Pareto dashboard</span></h1>
<p class="sub">{sub}</p>
</header>
{_banner(info)}
{_notes_html(info)}
<main>
<section class="card">
<h2>{front_title}</h2>
<p class="hint">Click a point, a heatmap column or a table row to select an arch. Dashed red
lines are budgets.{noise_hint(info)}</p>
<div id="plot-front" class="plot"></div>
</section>
<section class="card" id="details-card">
<h2>Selected arch</h2>
<div id="details"><p class="empty">Nothing selected.</p></div>
</section>
<section class="card">
<h2>Where the selected arch spends time and memory</h2>
<div class="pair"><div id="plot-breakdown-ms" class="plot"></div>
<div id="plot-breakdown-mem" class="plot"></div></div>
<div id="breakdown-legend" class="legend"></div>
</section>
<section class="card">
<h2>Temporal op per slot group, front arches</h2>
<div id="plot-heatmap" class="plot"></div>
{_legend_html(info)}
</section>
{cost_card}
<section class="card{hv_class}">
<h2>Hypervolume over trials</h2>
<p class="hint" id="hv-hint">{_e(hv_hint(info))}</p>
<div id="plot-hv" class="plot"></div>
</section>
<section class="card full">
<h2>Front arches <span class=dim>(click a header to sort)</span></h2>
<div class="table-wrap">{_table_html(info)}</div>
</section>
<section class="card full">
<h2>Run</h2>
{_meta_html(info)}
</section>
</main>
<script>{plotlyjs}</script>
<script type="application/json" id="nas-data">{payload}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
