"""What the dashboard shows, as plain frozen data: :func:`pareto_info` reads a run dir.

Everything the page draws is computed here, so tests check numbers, not HTML. The sources are
the run's own outputs (``run.json``, ``config.yaml``, ``space.yaml``, ``trials.csv``,
``pareto.csv``) and the latency table the run used, for the per-block breakdowns. No plotting
library is imported.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import NasError

if TYPE_CHECKING:
    from nas.cost import CostModel, TableRow
    from nas.search import SearchConfig
    from nas.space import SearchSpace

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
    "pareto_info",
]

MIB = float(2**20)
# trials.csv columns that hold a number
_COST_COLS = ("latency_s_video", "latency_ms_step", "peak_mem_mb", "weights_mb", "quality")
_CONSTRAINT_UNITS = {"latency_s": "s", "latency_ms_step": "ms", "memory_mb": "MB"}


@dataclass(frozen=True)
class ObjectiveInfo:
    """One minimised objective of the run."""

    name: str  # "latency" | "memory" | "quality"
    column: str  # its trials.csv column, e.g. "latency_s_video"
    unit: str  # "s", "ms", "MB", "proxy loss"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})"


@dataclass(frozen=True)
class ConstraintInfo:
    """A budget: a trial is feasible when ``column <= budget`` for every constraint."""

    name: str  # "latency_s" | "latency_ms_step" | "memory_mb"
    column: str  # the trials.csv column it bounds
    budget: float
    unit: str


@dataclass(frozen=True)
class TableInfo:
    """Where the latency and memory numbers come from (``run.json``'s ``table``)."""

    path: str
    device: str
    description: str
    backend: str
    sources: dict[str, int]  # table rows per provenance: measured, estimated, published, failed
    quantile: str
    created: str
    versions: dict[str, str]

    @property
    def rows(self) -> int:
        return sum(self.sources.values())

    @property
    def known(self) -> bool:
        """Whether the run recorded the table's provenance at all."""
        return bool(self.sources)

    @property
    def unmeasured(self) -> dict[str, int]:
        """Rows whose numbers were not measured on the device (estimated or published)."""
        return {k: n for k, n in self.sources.items() if k not in ("measured", "failed") and n}

    @property
    def estimated(self) -> bool:
        """True when any usable table row is not a measurement."""
        return bool(self.unmeasured)


@dataclass(frozen=True)
class RunMeta:
    """The run's identity and settings."""

    name: str
    run_dir: str  # absolute
    study: str
    storage: str
    status: str  # running | complete | interrupted | incomplete ("complete" once all done)
    created: str  # ISO time the run was created
    trials_target: int
    trial_seconds: float  # sum of the trials' durations (compute time, not wall time)
    space_name: str
    space_hash: str
    space_source: str
    space_size: int  # distinct arches in the space
    device: str
    quantile: str
    sampler: str
    sampler_options: dict[str, Any]
    proxy: str
    latency: str  # "video" (s per video) | "step" (ms per step)
    seed: int


@dataclass(frozen=True)
class GroupInfo:
    """A searchable slot group (a row of the heatmap); its slots share one choice."""

    name: str
    where: str  # the level its first slot sits at, e.g. "down.1", "mid.2", "up.0"
    slots: tuple[str, ...]
    choices: tuple[str, ...]  # canonical choice keys, in the space's order


@dataclass(frozen=True)
class TrialPoint:
    """One trial of ``trials.csv``."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    arch_id: str  # "" when the trial never got an arch
    latency_s_video: float | None
    latency_ms_step: float | None
    peak_mem_mb: float | None
    weights_mb: float | None
    quality: float | None
    quality_status: str
    feasible: bool
    choices: tuple[int, ...]  # choice index per group (-1: unknown); () without an arch
    duration_s: float | None

    def value(self, column: str) -> float | None:
        """A numeric column (``latency_s_video``, ``peak_mem_mb``, ``quality``, ...)."""
        v: float | None = getattr(self, column)
        return v

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"


@dataclass(frozen=True)
class FrontArch:
    """An arch of the Pareto front (``pareto.csv``), best first by the first objective."""

    arch_id: str
    trial: int  # the trial that evaluated it
    values: tuple[float, ...]  # the objectives, in ParetoInfo.objectives order
    latency_s_video: float
    latency_ms_step: float
    peak_mem_mb: float
    weights_mb: float
    quality: float | None
    yaml: str  # its arch file, relative to the run dir ("archs/<id>.yaml"); "" if unsafe
    choices: tuple[str, ...]  # choice key per group
    ops: str  # a summary, e.g. "conv1dx3, attn1dx1"


@dataclass(frozen=True)
class HeatmapInfo:
    """Which temporal op each front arch puts in each slot group."""

    groups: tuple[str, ...]  # rows, in execution order
    where: tuple[str, ...]  # each row's level
    arch_ids: tuple[str, ...]  # columns, in front order
    ops: tuple[tuple[str, ...], ...]  # [row][column] -> op kind ("none", "conv1d", ...)
    choices: tuple[tuple[str, ...], ...]  # [row][column] -> full choice key
    op_kinds: tuple[str, ...]  # every op kind the space offers, legend order


@dataclass(frozen=True)
class BreakdownCell:
    """Latency and weights of the blocks of one kind at one level of one step."""

    where: str  # "in" | "down.<level>" | "mid.<level>" | "up.<level>" | "out"
    kind: str  # a backbone block kind ("resnet", "attn", ...) or a temporal op ("conv1d", ...)
    temporal: bool
    ms: float
    weights_mb: float


@dataclass(frozen=True)
class ArchBreakdown:
    """One arch's latency per step and memory, by level and block kind.

    ``sum(c.ms for c in cells) + overhead_ms == latency_ms_step``; the weights sum to
    ``weights_mb``; peak memory is weights + the largest live activation set + overhead.
    """

    arch_id: str
    cells: tuple[BreakdownCell, ...]  # one per (where, kind), in execution order
    overhead_ms: float
    latency_ms_step: float
    weights_mb: float
    activation_mb: float
    overhead_mb: float
    peak_mem_mb: float

    @property
    def backbone_ms(self) -> float:
        return sum(c.ms for c in self.cells if not c.temporal)

    @property
    def temporal_ms(self) -> float:
        return sum(c.ms for c in self.cells if c.temporal)


@dataclass(frozen=True)
class BreakdownParts:
    """The pieces any arch's breakdown is summed from: the fixed backbone, and per slot group
    and choice its temporal op's cells. The page composes a clicked arch's breakdown from
    these, exactly as :meth:`compose` does."""

    wheres: tuple[str, ...]  # every level, in execution order
    backbone: tuple[BreakdownCell, ...]
    choices: tuple[tuple[tuple[BreakdownCell, ...], ...], ...]  # [group][choice] -> cells
    overhead_ms: float
    overhead_mb: float

    def compose(self, indices: Sequence[int]) -> tuple[BreakdownCell, ...]:
        """Cells of the arch taking choice ``indices[g]`` in group ``g``, merged by
        (where, kind), in execution order (backbone kinds before temporal ops)."""
        if len(indices) != len(self.choices):
            raise ValueError(f"expected {len(self.choices)} choice indices, got {len(indices)}")
        cells = list(self.backbone)
        for g, i in enumerate(indices):
            cells.extend(self.choices[g][i])
        return _merge(cells, self.wheres)


@dataclass(frozen=True)
class ParetoInfo:
    """Everything the dashboard of one run shows."""

    meta: RunMeta
    table: TableInfo
    objectives: tuple[ObjectiveInfo, ...]
    constraints: tuple[ConstraintInfo, ...]
    groups: tuple[GroupInfo, ...]
    trials: tuple[TrialPoint, ...]  # every trial, by number
    front: tuple[FrontArch, ...]
    hypervolume: tuple[float, ...]  # normalised hypervolume after each trial (as trials)
    heatmap: HeatmapInfo
    breakdowns: tuple[ArchBreakdown, ...]  # one per front arch, in front order
    parts: BreakdownParts | None  # None when the run's latency table cannot be read
    notes: tuple[str, ...] = field(default=())  # warnings the page shows under the banner

    @property
    def has_quality(self) -> bool:
        return any(o.name == "quality" for o in self.objectives)

    @property
    def latency_column(self) -> str:
        """The latency column the page plots: the run's latency objective's unit."""
        return "latency_ms_step" if self.meta.latency == "step" else "latency_s_video"

    @property
    def latency_unit(self) -> str:
        return "ms" if self.meta.latency == "step" else "s"

    @property
    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    @property
    def feasible(self) -> int:
        """Complete feasible trials."""
        return sum(1 for t in self.trials if t.complete and t.feasible)

    def constraint(self, column: str) -> ConstraintInfo | None:
        """The budget on a trials.csv column, if the run has one."""
        for c in self.constraints:
            if c.column == column:
                return c
        return None

    def breakdown(self, arch_id: str) -> ArchBreakdown | None:
        for b in self.breakdowns:
            if b.arch_id == arch_id:
                return b
        return None


# ---------------------------------------------------------------------------------------------
# reading a run dir
# ---------------------------------------------------------------------------------------------


def _float(s: str | None) -> float | None:
    if s is None or s == "":
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise NasError(
            f"{path.parent} has no {path.name}; regenerate the outputs with: nas report "
            f"{path.parent}"
        )
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _where(stage: str, level: int) -> str:
    return stage if stage in ("in", "out") else f"{stage}.{level}"


def _op_of(choice_key: str) -> str:
    return choice_key.split("(", 1)[0]


def _merge(cells: Iterable[BreakdownCell], wheres: Sequence[str]) -> tuple[BreakdownCell, ...]:
    order = {w: i for i, w in enumerate(wheres)}
    acc: dict[tuple[str, str], list[float]] = {}
    temporal: dict[tuple[str, str], bool] = {}
    first: dict[tuple[str, str], int] = {}
    for n, c in enumerate(cells):
        k = (c.where, c.kind)
        a = acc.setdefault(k, [0.0, 0.0])
        a[0] += c.ms
        a[1] += c.weights_mb
        temporal[k] = c.temporal
        first.setdefault(k, n)
    keys = sorted(acc, key=lambda k: (order.get(k[0], len(order)), temporal[k], first[k]))
    return tuple(BreakdownCell(w, kind, temporal[(w, kind)], *acc[(w, kind)]) for w, kind in keys)


def _parts(space: SearchSpace, cost: CostModel, quantile: str) -> BreakdownParts:
    """Per-block latency and weights, exactly as nas.cost.CostModel sums them."""
    from dataclasses import replace

    from nas.cost import (  # the row keys CostModel looks up
        backbone_block_cost,
        backbone_row,
        temporal_op_cost,
        temporal_row,
    )

    table = cost.table
    geo = replace(space.geometry, precision=cost.precision)
    bpe = geo.bytes_per_element
    col = f"latency_ms_{quantile}"

    def lat(r: TableRow) -> float:
        v = getattr(r, col, None)
        v = r.latency_ms_p50 if v is None else v
        assert v is not None  # CostModel rejected tables without these rows' latency
        return float(v)

    def weights(r: TableRow, params: int) -> float:
        return float((r.weight_bytes if r.weight_bytes is not None else params * bpe) / MIB)

    wheres: list[str] = []
    backbone: list[BreakdownCell] = []
    for b in space.blocks:
        w = _where(b.stage, b.level)
        if w not in wheres:
            wheres.append(w)
        if b.kind == "temporal":
            continue
        r = table.rows[backbone_row(b, space, cost.precision).key]
        c = backbone_block_cost(b, space.backbone.config, geo)
        backbone.append(BreakdownCell(w, b.kind, False, lat(r), weights(r, c.params)))
    per_group: list[tuple[tuple[BreakdownCell, ...], ...]] = []
    for g in space.groups:
        per_choice: list[tuple[BreakdownCell, ...]] = []
        for choice in g.choices:
            cells: list[BreakdownCell] = []
            if choice.op != "none":
                for sname in g.slots:
                    slot = space.slot(sname)
                    r = table.rows[temporal_row(choice, slot, space, cost.precision).key]
                    c = temporal_op_cost(choice, slot, geo)
                    cells.append(
                        BreakdownCell(
                            _where(slot.stage, slot.level),
                            choice.op,
                            True,
                            lat(r),
                            weights(r, c.params),
                        )
                    )
            per_choice.append(tuple(cells))
        per_group.append(tuple(per_choice))
    return BreakdownParts(
        tuple(wheres),
        tuple(backbone),
        tuple(per_group),
        float(cost.overhead_ms),
        float(cost.overhead_mb),
    )


def _trial(row: dict[str, str], groups: Sequence[GroupInfo]) -> TrialPoint:
    vals = {c: _float(row.get(c)) for c in _COST_COLS}
    arch_id = row.get("arch_id", "") or ""
    choices: tuple[int, ...] = ()
    if arch_id:
        idx = []
        for g in groups:
            key = row.get(f"choice:{g.name}", "")
            idx.append(g.choices.index(key) if key in g.choices else -1)
        choices = tuple(idx)
    number = row.get("trial", "")
    return TrialPoint(
        number=int(number) if number.isdigit() else -1,
        state=row.get("state", "") or "",
        arch_id=arch_id,
        latency_s_video=vals["latency_s_video"],
        latency_ms_step=vals["latency_ms_step"],
        peak_mem_mb=vals["peak_mem_mb"],
        weights_mb=vals["weights_mb"],
        quality=vals["quality"],
        quality_status=row.get("quality_status", "") or "",
        feasible=row.get("feasible", "") == "true",
        choices=choices,
        duration_s=_float(row.get("duration_s")),
    )


def _hypervolume(trials: Sequence[TrialPoint], columns: Sequence[str]) -> tuple[float, ...]:
    """Normalised hypervolume after each trial (``nas.search.hypervolume_history``)."""
    from nas.search import hypervolume_history

    if not trials:
        return ()
    v = np.array([[_inf(t.value(c)) for c in columns] for t in trials], dtype=float).reshape(
        len(trials), len(columns)
    )
    ok = np.array([t.complete and t.feasible for t in trials], dtype=bool)
    return tuple(float(x) for x in hypervolume_history(v, ok))


def link_path(path: str) -> str:
    """``path`` if it is a plain relative path inside the run dir (safe to link to from the
    page: no scheme, no ``..``), else ""."""
    plain = re.fullmatch(r"[\w.\-/]+", path) is not None
    return path if plain and not path.startswith("/") and ".." not in path.split("/") else ""


def _inf(v: float | None) -> float:
    return math.inf if v is None else v


def pareto_info(run_dir: str | Path) -> ParetoInfo:
    """Read a search run dir into a :class:`ParetoInfo` (no plotting, no study access).

    Needs the files ``nas search`` writes: run.json, config.yaml, space.yaml, trials.csv and
    pareto.csv (``nas report RUN_DIR`` rewrites the csvs from the study first). Raises
    :class:`nas.errors.NasError` for a folder that is not a run dir.
    """
    from nas.search import (
        RunInfo,
        objective_column,
        objective_unit,
        ops_summary,
        run_table_folder,
    )

    d = Path(run_dir)
    if not d.is_dir():
        raise NasError(f"{d} is not a directory")
    info = RunInfo.load(d)
    try:
        cfg, _ = info.config()
        space = info.space()
    except OSError as e:
        raise NasError(f"{d} is not a complete run dir: {e}") from None
    notes: list[str] = []

    groups = tuple(
        GroupInfo(
            g.name,
            _where(space.slot(g.slots[0]).stage, space.slot(g.slots[0]).level),
            tuple(g.slots),
            tuple(c.key for c in g.choices),
        )
        for g in space.groups
    )
    objectives = tuple(
        ObjectiveInfo(o, objective_column(cfg, o), objective_unit(cfg, o))
        for o in cfg.search.objectives
    )
    t = info.table
    table = TableInfo(
        path=str(t.get("path", "")),
        device=str(t.get("device", cfg.device.name)),
        description=str(t.get("description", "")),
        backend=str(t.get("backend", "")),
        sources={str(k): int(v) for k, v in dict(t.get("sources", {})).items()},
        quantile=str(t.get("quantile", cfg.device.quantile)),
        created=str(t.get("created", "")),
        versions={str(k): str(v) for k, v in dict(t.get("versions", {})).items()},
    )

    # the table: breakdowns and the device's memory budget
    cost: CostModel | None = None
    try:
        from nas.cost import CostModel, Table

        folder = run_table_folder(info, cfg)
        cost = CostModel(space, Table.load(folder), quantile=cfg.device.quantile)
    except NasError as e:
        notes.append(f"latency table unavailable, so no per-block breakdown: {e}")
    constraints = _constraints(cfg, cost, t)

    rows = _read_csv(d / "trials.csv")
    trials = tuple(sorted((_trial(r, groups) for r in rows), key=lambda x: x.number))
    by_trial = {x.number: x for x in trials}
    ocols = [o.column for o in objectives]

    front: list[FrontArch] = []
    for r in _read_csv(d / "pareto.csv"):
        p = by_trial.get(int(r["trial"])) if r.get("trial", "").isdigit() else None
        if p is None or not p.arch_id:
            continue
        vals = [p.value(c) for c in ocols]
        keys = tuple(r.get(f"choice:{g.name}", "") for g in groups)
        front.append(
            FrontArch(
                arch_id=p.arch_id,
                trial=p.number,
                values=tuple(_inf(v) for v in vals),
                latency_s_video=_inf(p.latency_s_video),
                latency_ms_step=_inf(p.latency_ms_step),
                peak_mem_mb=_inf(p.peak_mem_mb),
                weights_mb=_inf(p.weights_mb),
                quality=p.quality,
                yaml=link_path(r.get("arch_yaml", "")) or link_path(f"archs/{p.arch_id}.yaml"),
                choices=keys,
                ops=ops_summary(keys),
            )
        )

    op_kinds: list[str] = []
    for g in space.groups:
        for c in g.choices:
            if c.op not in op_kinds:
                op_kinds.append(c.op)
    heatmap = HeatmapInfo(
        groups=tuple(g.name for g in groups),
        where=tuple(g.where for g in groups),
        arch_ids=tuple(f.arch_id for f in front),
        ops=tuple(tuple(_op_of(f.choices[i]) for f in front) for i in range(len(groups))),
        choices=tuple(tuple(f.choices[i] for f in front) for i in range(len(groups))),
        op_kinds=tuple(sorted(op_kinds, key=lambda o: (o != "none", o))),
    )

    parts: BreakdownParts | None = None
    breakdowns: list[ArchBreakdown] = []
    if cost is not None:
        parts = _parts(space, cost, cfg.device.quantile)
        for f in front:
            idx = by_trial[f.trial].choices
            if -1 in idx:
                continue
            cells = parts.compose(idx)
            b = ArchBreakdown(
                arch_id=f.arch_id,
                cells=cells,
                overhead_ms=parts.overhead_ms,
                latency_ms_step=f.latency_ms_step,
                weights_mb=f.weights_mb,
                activation_mb=f.peak_mem_mb - f.weights_mb - parts.overhead_mb,
                overhead_mb=parts.overhead_mb,
                peak_mem_mb=f.peak_mem_mb,
            )
            total = sum(c.ms for c in cells) + parts.overhead_ms
            if not math.isclose(total, f.latency_ms_step, rel_tol=1e-4) and not notes:
                notes.append(
                    f"the latency table ({folder}) no longer matches the run: arch {f.arch_id} "
                    f"sums to {total:.4g} ms per step, the run recorded {f.latency_ms_step:.4g}"
                )
            breakdowns.append(b)

    meta = RunMeta(
        name=info.name,
        run_dir=str(d.resolve()),
        study=info.study,
        storage=info.storage,
        status=info.status,
        created=info.created,
        trials_target=info.trials,
        trial_seconds=float(sum(x.duration_s or 0.0 for x in trials)),
        space_name=space.name,
        space_hash=space.hash,
        space_source=info.space_source,
        space_size=space.size,
        device=cfg.device.name,
        quantile=cfg.device.quantile,
        sampler=cfg.sampler.name,
        sampler_options=dict(cfg.sampler.options),
        proxy=cfg.proxy.name,
        latency=cfg.search.latency,
        seed=cfg.search.seed,
    )
    return ParetoInfo(
        meta=meta,
        table=table,
        objectives=objectives,
        constraints=constraints,
        groups=groups,
        trials=trials,
        front=tuple(front),
        hypervolume=_hypervolume(trials, ocols),
        heatmap=heatmap,
        breakdowns=tuple(breakdowns),
        parts=parts,
        notes=tuple(notes),
    )


def _constraints(
    cfg: SearchConfig, cost: CostModel | None, run_table: dict[str, Any]
) -> tuple[ConstraintInfo, ...]:
    if cost is not None:
        from nas.search import constraint_names

        named = constraint_names(cfg, cost)
    else:  # the same rule without the table: the device budget as run.json recorded it
        named = []
        c = cfg.constraints
        if c.latency_s is not None:
            named.append(("latency_s", "latency_s_video", c.latency_s))
        if c.latency_ms_step is not None:
            named.append(("latency_ms_step", "latency_ms_step", c.latency_ms_step))
        mem = run_table.get("memory_budget_mb") if c.memory_mb == "device" else c.memory_mb
        if mem is not None and math.isfinite(float(mem)):
            named.append(("memory_mb", "peak_mem_mb", float(mem)))
    return tuple(
        ConstraintInfo(name, col, float(budget), _CONSTRAINT_UNITS.get(name, ""))
        for name, col, budget in named
    )
