"""The run dir's schema: run.json, trial records, objective and constraint values, columns.

``nas search`` writes these files and ``nas report`` (or any reader: a notebook, a CI check)
reads them. Nothing here imports Optuna, torch or plotly. Every column has one name and one
unit; an objective or a budget is a typed value, and slacks are kept by the budget's name.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.results._box import HypervolumeBox

__all__ = [
    "DECODER_CHOICE",
    "METRICS",
    "Constraint",
    "Objective",
    "RunInfo",
    "RunSettings",
    "TrialRecord",
    "finite_or_inf",
    "ops_summary",
    "read_csv",
    "read_trials",
    "run_table_folder",
    "write_csv",
    "write_trials",
]

# trials.csv numeric columns -> unit. An objective or a budget names one of these.
METRICS: dict[str, str] = {
    "latency_s_video": "s",
    "latency_ms_step": "ms",
    "peak_mem_mb": "MB",
    "weights_mb": "MB",
    "quality": "proxy value",  # an objective's unit names the proxy's (nas.quality.PROXY_UNITS)
    # per video by pipeline stage (latency_s_video is their sum); empty in older runs
    "latency_s_text": "s",
    "latency_s_unet": "s",
    "latency_s_decode": "s",
}
DIRECTIONS = ("minimize", "maximize")
# trials.csv's slack columns, ``slack_frac:<budget name>``: (value - budget) / budget, a fraction
# of the budget. Run dirs written before the rename have ``slack:<name>``: still read
SLACK_PREFIX = "slack_frac:"
SLACK_PREFIXES = (SLACK_PREFIX, "slack:")
# the choices key (trials.csv column ``choice:decoder``, the trial param) of the decode choice
DECODER_CHOICE = "decoder"


@dataclass(frozen=True)
class Objective:
    """One objective of a search: what it is called, the column that holds it, its unit, the
    direction, and whether it is cheap (read from tables) or expensive (a proxy run)."""

    name: str  # "latency" | "memory" | "quality"
    column: str  # a key of METRICS, e.g. "latency_s_video"
    unit: str
    direction: str = "minimize"
    cheap: bool = True

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.name}: direction {self.direction!r}")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})"

    @property
    def sign(self) -> float:
        """+1 to minimise as is, -1 for a maximised objective (Pareto math minimises)."""
        return 1.0 if self.direction == "minimize" else -1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Objective:
        return Objective(
            str(raw["name"]),
            str(raw["column"]),
            str(raw["unit"]),
            str(raw.get("direction", "minimize")),
            bool(raw.get("cheap", True)),
        )


@dataclass(frozen=True)
class Constraint:
    """A budget: feasible when ``column <= budget``. Its slack is ``(value - budget) / budget``
    (a fraction of the budget, <= 0 satisfied), stored under ``slack_column``
    (``slack_frac:<name>``: the name says it is a fraction, not seconds or megabytes)."""

    name: str  # the config key: "latency_s" | "latency_ms_step" | "memory_mb"
    column: str  # the metric it bounds, a key of METRICS
    budget: float
    unit: str

    @property
    def slack_column(self) -> str:
        return f"{SLACK_PREFIX}{self.name}"

    def slack(self, value: float) -> float:
        return (value - self.budget) / self.budget

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Constraint:
        return Constraint(
            str(raw["name"]), str(raw["column"]), float(raw["budget"]), str(raw["unit"])
        )


@dataclass(frozen=True)
class RunSettings:
    """What a reader of a run needs from its config, resolved when the run was written (the
    device's memory budget included), so a reader never re-derives it."""

    device: str
    table: str | None  # the config's device.table folder, if one was given
    quantile: str
    sampler: str
    sampler_options: dict[str, Any]
    proxy: str
    latency: str  # "video" | "step": the unit of the latency objective
    seed: int
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objectives"] = [o.to_dict() for o in self.objectives]
        d["constraints"] = [c.to_dict() for c in self.constraints]
        return d

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> RunSettings:
        return RunSettings(
            device=str(raw["device"]),
            table=None if raw.get("table") is None else str(raw["table"]),
            quantile=str(raw["quantile"]),
            sampler=str(raw["sampler"]),
            sampler_options=dict(raw.get("sampler_options", {})),
            proxy=str(raw["proxy"]),
            latency=str(raw["latency"]),
            seed=int(raw["seed"]),
            objectives=tuple(Objective.from_dict(o) for o in raw["objectives"]),
            constraints=tuple(Constraint.from_dict(c) for c in raw["constraints"]),
        )

    def constraint(self, column: str) -> Constraint | None:
        """The budget on a metric column, if the run has one."""
        return next((c for c in self.constraints if c.column == column), None)


@dataclass(frozen=True)
class RunInfo:
    """``run.json``: what a run is, where its study lives, its settings and its table."""

    run_dir: Path
    identity: str
    name: str
    study: str
    storage: str  # "journal:study.journal" (relative to the run dir) or a URL / absolute path
    trials: int
    created: str
    status: str  # "running" | "complete" | "interrupted" | "incomplete" | "failed"
    space_source: str
    table: dict[str, Any] = field(default_factory=dict)  # the table's path and provenance
    finished: str = ""  # when the last invocation ended (UTC, ISO 8601)
    settings: RunSettings | None = None  # None in run dirs written before settings were saved
    reason: str = ""  # why the last invocation failed to start (status "failed")
    box: HypervolumeBox | None = None  # the hypervolume's fixed box; None in older run dirs

    @staticmethod
    def load(run_dir: str | Path) -> RunInfo:
        d = Path(run_dir)
        p = d / "run.json"
        if not p.is_file():
            raise NasError(f"{d} is not a search run dir (no run.json)")
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            settings = raw.get("settings")
            box = raw.get("box")
            return RunInfo(
                d,
                str(raw["identity"]),
                str(raw["name"]),
                str(raw["study"]),
                str(raw["storage"]),
                int(raw["trials"]),
                str(raw["created"]),
                str(raw["status"]),
                str(raw.get("space_source", "")),
                dict(raw.get("table", {})),
                str(raw.get("finished", "")),
                None if settings is None else RunSettings.from_dict(settings),
                str(raw.get("reason", "")),
                None if box is None else HypervolumeBox.from_dict(box),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NasError(f"{p}: unreadable run.json ({type(e).__name__}: {e})") from None

    def save(self, **changes: Any) -> RunInfo:
        """Write run.json (atomically) with ``changes`` applied; returns the new info."""
        info = replace(self, **changes)
        skip = ("run_dir", "settings", "box")
        raw = {k: v for k, v in asdict(info).items() if k not in skip}
        if info.settings is not None:
            raw["settings"] = info.settings.to_dict()
        if info.box is not None:
            raw["box"] = info.box.to_dict()
        atomic_write_text(self.run_dir / "run.json", json.dumps(raw, indent=2) + "\n")
        return info

    def require_settings(self) -> RunSettings:
        if self.settings is None:
            raise NasError(
                f"{self.run_dir}/run.json has no settings (written by an older nas); "
                f"update it with: nas report {self.run_dir}"
            )
        return self.settings


def run_table_folder(info: RunInfo, device: str, tables: str | None) -> Path:
    """The latency table a run used: the folder run.json recorded, else where a search for
    ``device`` (with ``device.table=tables``) looks now."""
    from nas.cost import find_table

    path = info.table.get("path")
    if path and (Path(path) / "table.csv").is_file():
        return Path(path)
    return find_table(device, tables)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def _float(s: str | None) -> float | None:
    if s is None or s == "":
        return None
    try:
        return float(s)
    except ValueError:
        return None


@dataclass(frozen=True)
class TrialRecord:
    """One trial as trials.csv holds it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    arch_id: str | None
    choices: dict[str, str]  # slot group -> choice key
    latency_s_video: float | None
    latency_ms_step: float | None
    peak_mem_mb: float | None
    weights_mb: float | None
    quality: float | None
    quality_status: str
    feasible: bool | None
    slacks: dict[str, float]  # constraint name -> slack
    proxy_s: float | None
    cached_from: int | None
    duration_s: float | None
    error: str
    latency_s_text: float | None = None  # the text encoder, once per video
    latency_s_unet: float | None = None  # steps x UNet step
    latency_s_decode: float | None = None  # the decoder, every chunk of frames
    # the proxy's seed-to-seed std (error bars on quality) and where that figure comes from;
    # set for trials with a quality when the run's proxy has a measured noise
    quality_noise: float | None = None
    quality_noise_source: str = ""

    def value(self, column: str) -> float | None:
        """A metric column (a key of METRICS)."""
        if column not in METRICS:
            raise KeyError(f"{column!r} is not a metric column; metrics: {', '.join(METRICS)}")
        v: float | None = getattr(self, column)
        return v

    @property
    def usable(self) -> bool:
        """Complete and feasible: a candidate for the front."""
        return self.state == "COMPLETE" and bool(self.feasible)

    def row(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "trial": self.number,
            "state": self.state,
            "arch_id": self.arch_id or "",
        }
        for k, v in self.choices.items():
            d[f"choice:{k}"] = v
        for col in METRICS:
            d[col] = _fmt(self.value(col))
        d["quality_status"] = self.quality_status
        d["feasible"] = "" if self.feasible is None else str(self.feasible).lower()
        for k, slack in self.slacks.items():
            d[f"{SLACK_PREFIX}{k}"] = _fmt(slack)
        d["proxy_s"] = _fmt(self.proxy_s)
        if self.quality_noise is not None:
            d["quality_noise"] = _fmt(self.quality_noise)
            d["quality_noise_source"] = self.quality_noise_source
        d["cached_from"] = "" if self.cached_from is None else self.cached_from
        d["duration_s"] = _fmt(self.duration_s)
        d["error"] = self.error
        return d

    @staticmethod
    def from_row(row: Mapping[str, str]) -> TrialRecord:
        number = row.get("trial", "") or ""
        cached = row.get("cached_from", "") or ""
        feasible = row.get("feasible", "") or ""
        vals = {c: _float(row.get(c)) for c in METRICS}
        slacks = {}
        for k, v in row.items():
            f = _float(v)
            prefix = next((p for p in SLACK_PREFIXES if k and k.startswith(p)), None)
            if prefix is not None and f is not None:
                slacks[k[len(prefix) :]] = f
        return TrialRecord(
            number=int(number) if number.isdigit() else -1,
            state=row.get("state", "") or "",
            arch_id=row.get("arch_id") or None,
            choices={
                k[len("choice:") :]: v for k, v in row.items() if k and k.startswith("choice:")
            },
            latency_s_video=vals["latency_s_video"],
            latency_ms_step=vals["latency_ms_step"],
            peak_mem_mb=vals["peak_mem_mb"],
            weights_mb=vals["weights_mb"],
            quality=vals["quality"],
            quality_status=row.get("quality_status", "") or "",
            feasible=None if feasible == "" else feasible == "true",
            slacks=slacks,
            proxy_s=_float(row.get("proxy_s")),
            cached_from=int(cached) if cached.isdigit() else None,
            duration_s=_float(row.get("duration_s")),
            error=row.get("error", "") or "",
            latency_s_text=vals["latency_s_text"],
            latency_s_unet=vals["latency_s_unet"],
            latency_s_decode=vals["latency_s_decode"],
            quality_noise=_float(row.get("quality_noise")),
            quality_noise_source=row.get("quality_noise_source", "") or "",
        )


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> None:
    """Write rows as CSV (atomically); columns a row lacks are left empty."""
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise NasError(
            f"{path.parent} has no {path.name}; regenerate the outputs with: nas report "
            f"{path.parent}"
        )
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_trials(path: Path, records: Sequence[TrialRecord]) -> list[str]:
    """trials.csv: one row per trial; returns the header (the widest row's columns: a trial
    that failed before its choices or costs has fewer)."""
    rows = [r.row() for r in records]
    header = max((list(r) for r in rows), key=len) if rows else ["trial"]
    write_csv(path, rows, header)
    return header


def read_trials(path: Path) -> list[TrialRecord]:
    """The records of a trials.csv (or pareto.csv), in file order."""
    return [TrialRecord.from_row(r) for r in read_csv(path)]


def ops_summary(choices: Iterable[str]) -> str:
    """``attn1dx3, conv1dx6`` for choice keys such as ``attn1d(heads=8,...)``; none not counted.
    A decode choice (``tiny/chunk4``: a key with a ``/`` and no options) follows after ``;``."""
    choices = list(choices)
    decode = [v for v in choices if "/" in v and "(" not in v]
    c = Counter(v.split("(", 1)[0] for v in choices if v not in decode)
    ops = ", ".join(f"{k}x{n}" for k, n in sorted(c.items()) if k != "none") or "all none"
    return "; ".join([ops, *(f"decoder {d}" for d in decode)])


def finite_or_inf(v: float | None) -> float:
    """A value for Pareto math: missing or NaN counts as the worst."""
    return math.inf if v is None or math.isnan(v) else v
