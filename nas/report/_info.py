"""What the dashboard shows, as plain frozen data: :func:`pareto_info` reads a run dir.

Everything the page draws is computed here, so tests check numbers, not HTML. The sources are
the run's own outputs, read through :mod:`nas.results` (``run.json`` with the run's settings,
``space.yaml``, ``trials.csv``, ``pareto.csv``), and the latency table the run used, whose
:class:`nas.cost.CostModel` gives the per-block breakdowns. No plotting library is imported,
and nothing of :mod:`nas.search`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from nas.cost import BlockCell, CostBreakdown, CostModel, CostParts, Table, where_of
from nas.errors import NasError
from nas.results import (
    DECODER_CHOICE,
    Constraint,
    HypervolumeBox,
    Objective,
    RunInfo,
    RunSettings,
    TrialRecord,
    finite_or_inf,
    hypervolume_history,
    minimised,
    ops_summary,
    read_csv,
    read_trials,
    reference_arches,
    run_table_folder,
)
from nas.space import SearchSpace, arch_from_indices, load_space

__all__ = [
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
    "pareto_info",
]

# the run's objectives and budgets, and the cost cells, are the shared types themselves
ObjectiveInfo = Objective
ConstraintInfo = Constraint
BreakdownCell = BlockCell
BreakdownParts = CostParts
ArchBreakdown = CostBreakdown


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
class TrialPoint(TrialRecord):
    """One trial of ``trials.csv`` (a :class:`nas.results.TrialRecord`) with its choices as
    indices into the space's groups, as the page addresses them."""

    indices: tuple[int, ...] = ()  # choice index per group (-1: unknown); () without an arch

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
    # every choice the space offers, grouped by op kind in legend order: one colour each (a
    # shade of its op kind's), so kernel, depthwise and heads variants look different
    variants: tuple[str, ...] = ()
    # per column: "" for a front arch, else the reference arch's label (the columns after
    # the front are the reference arches that are not on it)
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceArch:
    """A reference arch the run tried (the all-none arch, an op kind everywhere it is allowed),
    which the page marks on every plot."""

    label: str  # "none", "conv1d", ... ("none+<decoder>" for another decode choice)
    arch_id: str
    trial: int  # the number of its first complete trial


@dataclass(frozen=True)
class ExactPoint:
    """An arch of a cost-only run's exact front (``exact_front.csv``, by dynamic programming
    over the whole space), with its metric values by column."""

    arch_id: str
    values: dict[str, float]


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
    hypervolume: tuple[float, ...]  # hypervolume after each trial (as trials), in ``box``
    heatmap: HeatmapInfo
    breakdowns: tuple[ArchBreakdown, ...]  # one per front arch, in front order
    parts: BreakdownParts | None  # None when the run's latency table cannot be read
    notes: tuple[str, ...] = field(default=())  # warnings the page shows under the banner
    # the run's fixed hypervolume box (run.json); None (or incomplete) in older run dirs,
    # whose hypervolume is normalised over the feasible range instead
    box: HypervolumeBox | None = None
    references: tuple[ReferenceArch, ...] = ()  # the reference arches the run completed
    exact: tuple[ExactPoint, ...] = ()  # a cost-only run's exact front, when it has one

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


def _op_of(choice_key: str) -> str:
    return choice_key.split("(", 1)[0]


def link_path(path: str) -> str:
    """``path`` if it is a plain relative path inside the run dir (safe to link to from the
    page: no scheme, no ``..``), else ""."""
    plain = re.fullmatch(r"[\w.\-/]+", path) is not None
    return path if plain and not path.startswith("/") and ".." not in path.split("/") else ""


def _trial(r: TrialRecord, groups: Sequence[GroupInfo]) -> TrialPoint:
    indices: tuple[int, ...] = ()
    if r.arch_id:
        indices = tuple(
            g.choices.index(k) if (k := r.choices.get(g.name, "")) in g.choices else -1
            for g in groups
        )
    return TrialPoint(**{f.name: getattr(r, f.name) for f in fields(TrialRecord)}, indices=indices)


def _load(d: Path) -> tuple[RunInfo, RunSettings, SearchSpace]:
    if not d.is_dir():
        raise NasError(f"{d} is not a directory")
    info = RunInfo.load(d)
    settings = info.require_settings()
    try:
        space = load_space(d / "space.yaml")
    except OSError as e:
        raise NasError(f"{d} is not a complete run dir: {e}") from None
    return info, settings, space


def _groups(space: SearchSpace) -> tuple[GroupInfo, ...]:
    out = []
    for g in space.groups:
        first = space.slot(g.slots[0])
        where = where_of(first.stage, first.level)
        out.append(GroupInfo(g.name, where, tuple(g.slots), tuple(c.key for c in g.choices)))
    return tuple(out)


def _table_info(t: dict[str, Any], settings: RunSettings) -> TableInfo:
    return TableInfo(
        path=str(t.get("path", "")),
        device=str(t.get("device", settings.device)),
        description=str(t.get("description", "")),
        backend=str(t.get("backend", "")),
        sources={str(k): int(v) for k, v in dict(t.get("sources", {})).items()},
        quantile=str(t.get("quantile", settings.quantile)),
        created=str(t.get("created", "")),
        versions={str(k): str(v) for k, v in dict(t.get("versions", {})).items()},
    )


def _cost_model(
    info: RunInfo, settings: RunSettings, space: SearchSpace, notes: list[str]
) -> CostModel | None:
    try:
        folder = run_table_folder(info, settings.device, settings.table)
        return CostModel(space, Table.load(folder), quantile=settings.quantile)
    except NasError as e:
        notes.append(f"latency table unavailable, so no per-block breakdown: {e}")
        return None


def _front(
    d: Path, by_trial: dict[int, TrialPoint], groups: Sequence[GroupInfo], ocols: Sequence[str]
) -> list[FrontArch]:
    front: list[FrontArch] = []
    for row in read_csv(d / "pareto.csv"):
        r = TrialRecord.from_row(row)
        p = by_trial.get(r.number)
        if p is None or not p.arch_id:
            continue
        keys = tuple(r.choices.get(g.name, "") for g in groups)
        front.append(
            FrontArch(
                arch_id=p.arch_id,
                trial=p.number,
                values=tuple(finite_or_inf(p.value(c)) for c in ocols),
                latency_s_video=finite_or_inf(p.latency_s_video),
                latency_ms_step=finite_or_inf(p.latency_ms_step),
                peak_mem_mb=finite_or_inf(p.peak_mem_mb),
                weights_mb=finite_or_inf(p.weights_mb),
                quality=p.quality,
                yaml=link_path(row.get("arch_yaml", "")) or link_path(f"archs/{p.arch_id}.yaml"),
                choices=keys,
                ops=ops_summary(keys),
            )
        )
    return front


def _heatmap(
    space: SearchSpace,
    groups: Sequence[GroupInfo],
    front: Sequence[FrontArch],
    references: Sequence[ReferenceArch] = (),
    by_trial: dict[int, TrialPoint] | None = None,
) -> HeatmapInfo:
    op_kinds: list[str] = []
    for g in space.groups:
        for c in g.choices:
            if c.op not in op_kinds:
                op_kinds.append(c.op)
    kinds = sorted(op_kinds, key=lambda o: (o != "none", o))
    keys = {c.key for g in space.groups for c in g.choices}
    variants = tuple(k for op in kinds for k in sorted(x for x in keys if _op_of(x) == op))
    cols = [(f.arch_id, f.choices, "") for f in front]
    on_front = {f.arch_id for f in front}
    for r in references:
        t = (by_trial or {}).get(r.trial)
        if r.arch_id not in on_front and t is not None and front:
            cols.append((r.arch_id, tuple(t.choices.get(g.name, "") for g in groups), r.label))
    return HeatmapInfo(
        groups=tuple(g.name for g in groups),
        where=tuple(g.where for g in groups),
        arch_ids=tuple(a for a, _, _ in cols),
        ops=tuple(tuple(_op_of(c[i]) for _, c, _ in cols) for i in range(len(groups))),
        choices=tuple(tuple(c[i] for _, c, _ in cols) for i in range(len(groups))),
        op_kinds=tuple(kinds),
        variants=variants,
        references=tuple(r for _, _, r in cols),
    )


def _breakdowns(
    cost: CostModel,
    front: Sequence[FrontArch],
    by_trial: dict[int, TrialPoint],
    notes: list[str],
) -> list[CostBreakdown]:
    """The cost model's breakdown of each front arch; a note when the table has changed since
    the run recorded the arch's latency."""
    out = []
    for f in front:
        p = by_trial[f.trial]
        idx = list(p.indices)
        if cost.space.decode:  # the decode choice follows the slot groups
            keys = [c.key for c in cost.space.decode]
            d = p.choices.get(DECODER_CHOICE, "")
            idx.append(keys.index(d) if d in keys else -1)
        if -1 in idx:
            continue
        b = cost.breakdown(arch_from_indices(cost.space, idx))
        if not math.isclose(b.latency_ms_step, f.latency_ms_step, rel_tol=1e-4) and not notes:
            notes.append(
                f"the latency table no longer matches the run: arch {f.arch_id} sums to "
                f"{b.latency_ms_step:.4g} ms per step, the run recorded {f.latency_ms_step:.4g}"
            )
        out.append(b)
    return out


def _hypervolume(
    records: Sequence[TrialRecord], objectives: Sequence[Objective], box: HypervolumeBox | None
) -> tuple[float, ...]:
    """Hypervolume after each trial in the run's box, as the search measured it
    (:func:`nas.results.hypervolume_history`)."""
    if not records:
        return ()
    ok = np.array([r.usable for r in records], dtype=bool)
    return tuple(float(x) for x in hypervolume_history(minimised(records, objectives), ok, box))


def _references(space: SearchSpace, trials: Sequence[TrialPoint]) -> tuple[ReferenceArch, ...]:
    """The space's reference arches (:func:`nas.results.reference_arches`) with a complete
    trial in the run."""
    first: dict[str, int] = {}
    for t in trials:
        if t.complete and t.arch_id and t.arch_id not in first:
            first[t.arch_id] = t.number
    return tuple(
        ReferenceArch(label, a.arch_id, first[a.arch_id])
        for label, a in reference_arches(space)
        if a.arch_id in first
    )


def _exact(d: Path) -> tuple[ExactPoint, ...]:
    """``exact_front.csv`` of a cost-only run (none: an empty tuple)."""
    if not (d / "exact_front.csv").is_file():
        return ()
    out = []
    for row in read_csv(d / "exact_front.csv"):
        vals = {}
        for k, v in row.items():
            try:
                vals[k] = float(v)
            except (TypeError, ValueError):
                continue
        out.append(ExactPoint(row.get("arch_id", ""), vals))
    return tuple(out)


def _meta(
    info: RunInfo, settings: RunSettings, space: SearchSpace, trials: Sequence[TrialPoint]
) -> RunMeta:
    return RunMeta(
        name=info.name,
        run_dir=str(info.run_dir.resolve()),
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
        device=settings.device,
        quantile=settings.quantile,
        sampler=settings.sampler,
        sampler_options=dict(settings.sampler_options),
        proxy=settings.proxy,
        latency=settings.latency,
        seed=settings.seed,
    )


def pareto_info(run_dir: str | Path) -> ParetoInfo:
    """Read a search run dir into a :class:`ParetoInfo` (no plotting, no study access).

    Needs the files ``nas search`` writes: run.json, space.yaml, trials.csv and pareto.csv
    (``nas report RUN_DIR`` rewrites them from the study first). Raises
    :class:`nas.errors.NasError` for a folder that is not a run dir.
    """
    d = Path(run_dir)
    info, settings, space = _load(d)
    notes: list[str] = []
    groups = _groups(space)
    cost = _cost_model(info, settings, space, notes)
    records = sorted(read_trials(d / "trials.csv"), key=lambda r: r.number)
    trials = tuple(_trial(r, groups) for r in records)
    by_trial = {x.number: x for x in trials}
    front = _front(d, by_trial, groups, [o.column for o in settings.objectives])
    references = _references(space, trials)
    return ParetoInfo(
        meta=_meta(info, settings, space, trials),
        table=_table_info(info.table, settings),
        objectives=settings.objectives,
        constraints=settings.constraints,
        groups=groups,
        trials=trials,
        front=tuple(front),
        hypervolume=_hypervolume(records, settings.objectives, info.box),
        heatmap=_heatmap(space, groups, front, references, by_trial),
        breakdowns=tuple(_breakdowns(cost, front, by_trial, notes)) if cost else (),
        parts=cost.parts if cost else None,
        notes=tuple(notes),
        box=info.box,
        references=references,
        exact=_exact(d),
    )
