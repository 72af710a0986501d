"""Build a device's table for a space: resumable, atomic, with a progress bar.

Rows already in the table are kept (``force`` re-measures them); a row that fails is recorded
with its reason and the run goes on; the table is rewritten atomically after every row, so an
interrupted run loses at most the row in flight and never leaves a half-written file.
"""

from __future__ import annotations

import importlib
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.cost import (
    BlockCost,
    RowSpec,
    Table,
    TableRow,
    backbone_block_cost,
    backbone_row,
    rows_for_space,
    temporal_op_cost,
    temporal_row,
    unet_row,
)
from nas.errors import NasError
from nas.space import PipelinePart, SearchSpace, UNetConfig
from profilers._base import Profiler, TimingProtocol, now_iso
from profilers._blocks import backbone_configs, build_row_module, pipeline_parts
from profilers._devices import Device

__all__ = [
    "MEASURES_NETWORKS",
    "PROFILERS",
    "ProfileReport",
    "analytic_costs",
    "get_profiler",
    "profile_space",
    "rows_to_profile",
]

# backend -> "module:Class", imported on first use (heavy: onnxruntime, coremltools)
PROFILERS = {
    "onnxruntime": "profilers._ort:OrtProfiler",
    "torch": "profilers._torch:TorchProfiler",
    "coreml": "profilers._coreml:CoreMLProfiler",
}

# backends that measure here and get the ``unet`` reference row (Core ML rows are estimated)
MEASURES_NETWORKS = ("onnxruntime", "torch")


def get_profiler(backend: str) -> Profiler:
    try:
        target = PROFILERS[backend]
    except KeyError:
        known = list(PROFILERS)
        raise NasError(f"no profiler for backend {backend!r}; backends: {known}") from None
    module, cls = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise NasError(f"the {backend} profiler needs a package that is missing: {e}") from None
    profiler: Profiler = getattr(mod, cls)()
    return profiler


def analytic_costs(space: SearchSpace, precision: str) -> dict[str, BlockCost]:
    """Analytic cost of every row of the space, by row key, at ``precision``."""
    geo = replace(space.geometry, precision=precision)
    out: dict[str, BlockCost] = {}
    for b in space.blocks:
        if b.kind != "temporal":
            out[backbone_row(b, space, precision).key] = backbone_block_cost(
                b, space.backbone.config, geo
            )
    for s in space.slots:
        g = space.group_of(s.name)
        for c in g.choices if g else ():
            if c.op != "none":
                out[temporal_row(c, s, space, precision).key] = temporal_op_cost(c, s, geo)
    return out


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class ProfileReport:
    table: Table
    folder: Path
    done: list[str]  # keys measured or estimated in this run
    failed: list[str]  # keys that failed in this run
    kept: int  # rows already present and kept
    interrupted: bool = False


def _device_meta(device: Device) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": device.name,
        "description": device.description,
        "backend": device.backend,
        "precision": device.precision,
        "compute_units": device.compute_units,
        "memory_budget_mb": device.memory_budget_mb,
        "threads": device.threads,
        "target": device.target,
    }
    est = device.estimator
    if est is not None:  # the execution model estimated rows were made with
        meta["estimator"] = {
            "attention": est.attention.label,
            "fusion": est.fusion,
            "peak_tflops": est.peak_tflops,
            "bandwidth_gbs": est.bandwidth_gbs,
            "bandwidth_efficiency": est.bandwidth_efficiency,
            "per_op_overhead_us": est.per_op_overhead_us,
            "efficiency": dict(est.efficiency),
            "uncertainty": {"p10": est.p10_ratio, "p90": est.p90_ratio},
            "calibration": est.calibration,
        }
    return meta


def rows_to_profile(space: SearchSpace, device: Device) -> list[RowSpec]:
    """The rows ``nas profile`` makes for ``space`` on ``device``: every row the cost model
    reads (:func:`nas.cost.rows_for_space`), and on a backend that measures here the ``unet``
    reference network (an estimate of it would add nothing the rows do not say)."""
    rows = rows_for_space(space, device.precision)
    if device.backend in MEASURES_NETWORKS:
        rows.append(unet_row(space, device.precision))
    return rows


def profile_space(
    space: SearchSpace,
    device: Device,
    folder: str | Path,
    *,
    protocol: TimingProtocol | None = None,
    force: bool = False,
    limit: int | None = None,
    profiler: Profiler | None = None,
    progress: bool = True,
    on_row: Callable[[TableRow], None] | None = None,
) -> ProfileReport:
    """Measure (or estimate) every row ``space`` needs on ``device`` into ``folder``."""
    protocol = protocol or TimingProtocol()
    folder = Path(folder)
    prof = profiler or get_profiler(device.backend)
    versions = prof.versions()
    table = _open_table(folder, device)
    old = table.meta
    stale_all = bool(old) and old.get("versions") != versions
    rows = rows_to_profile(space, device)
    analytic = analytic_costs(space, device.precision)
    todo, kept = _rows_to_measure(table, rows, redo_all=force or stale_all, limit=limit)
    parts = pipeline_parts(space)
    backbones = backbone_configs(space)
    table.meta = _table_meta(old, space, device, prof.name, versions, protocol)
    if stale_all:
        table.meta["note"] = "re-measured: tool versions changed since the previous run"
    table.save(folder)
    done: list[str] = []
    failed: list[str] = []
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"profile {device.name}", unit="row", dynamic_ncols=True)
    interrupted = False
    stop = _SigintStop()
    try:
        with stop:
            for spec in todo:
                if stop.requested:
                    interrupted = True
                    break
                if bar is not None:
                    bar.set_postfix_str(spec.key[:60])
                row = _measure_row(
                    spec, analytic.get(spec.key), device, prof, protocol, parts, backbones, space
                )
                table.put(row)
                table.save(folder)
                (failed if row.source == "failed" else done).append(spec.key)
                if on_row is not None:
                    on_row(row)
                if bar is not None:
                    bar.update(1)
            interrupted = interrupted or stop.requested
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return ProfileReport(table, folder, done, failed, kept, interrupted)


def _open_table(folder: Path, device: Device) -> Table:
    """The table already in ``folder`` (to resume), or a new one; never another device's."""
    table = Table.load(folder) if (folder / "table.csv").is_file() else Table()
    old = table.meta
    if old.get("device", {}).get("name", device.name) != device.name:
        raise NasError(
            f"{folder} holds a table for device {old['device']['name']!r}, not {device.name!r}; "
            "use another --out folder"
        )
    return table


def _rows_to_measure(
    table: Table, rows: list[RowSpec], *, redo_all: bool, limit: int | None
) -> tuple[list[RowSpec], int]:
    """The rows to (re-)measure, in order, at most ``limit``; and how many present rows are kept."""
    todo: list[RowSpec] = []
    kept = 0
    for r in rows:
        have = table.get(r)
        if redo_all or have is None or have.source == "failed":
            todo.append(r)
        else:
            kept += 1
    if limit is not None:
        todo = todo[:limit]
    return todo, kept


def _table_meta(
    old: dict[str, Any],
    space: SearchSpace,
    device: Device,
    backend: str,
    versions: dict[str, str],
    protocol: TimingProtocol,
) -> dict[str, Any]:
    """``meta.json`` of this run: the old one updated with the device, tools and protocol."""
    spaces = sorted(set(old.get("spaces", [])) | {f"{space.name}@{space.hash}"})
    meta = {
        **old,
        "device": _device_meta(device),
        "backend": backend,
        "versions": versions,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "git_revision": _git_revision(),
        "protocol": protocol.to_dict(),
        "spaces": spaces,
        "updated": now_iso(),
    }
    meta.setdefault("created", meta["updated"])
    return meta


def _measure_row(
    spec: RowSpec,
    cost: BlockCost | None,
    device: Device,
    prof: Profiler,
    protocol: TimingProtocol,
    parts: Mapping[str, PipelinePart] | None = None,
    backbones: Mapping[str, UNetConfig] | None = None,
    space: SearchSpace | None = None,
) -> TableRow:
    """One row: measured, or ``failed`` with the reason (over the memory budget, an error)."""
    need = None
    # a Core ML row is converted here and estimated (or run on a device that reports its own
    # failure): its estimate marks it infeasible instead, keeping its latency (docs/profiling.md)
    if cost is not None and device.backend != "coreml":
        bpe = 2 if device.precision == "fp16" else 4
        need = cost.params * bpe + cost.peak_bytes + cost.out_bytes
    if need is not None and need > device.memory_budget_mb * 2**20:
        return TableRow(
            spec,
            "failed",
            flops=2 * cost.macs if cost else None,
            reason=f"estimated memory {need / 2**20:.0f} MB exceeds the device budget "
            f"{device.memory_budget_mb:.0f} MB; not run",
            measured_at=now_iso(),
        )
    try:
        built = build_row_module(spec, parts=parts, backbones=backbones, space=space)
        row = prof.measure(spec, built, device, protocol)
        if row.flops is None and cost is not None:
            row = replace(row, flops=2 * cost.macs)
        return row
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        return TableRow(spec, "failed", reason="out of memory", measured_at=now_iso())
    except Exception as e:  # a backend failure is data: record it, go on
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        return TableRow(spec, "failed", reason=msg, measured_at=now_iso())


class _SigintStop:
    """While entered, Ctrl-C asks to stop after the row in flight is saved (libraries such as
    exporters may swallow a KeyboardInterrupt raised inside them); a second Ctrl-C stops at once.

    The handler is installed only in the main thread, the only one that may set one.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old_handler: Any = None

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupt: saving the current row, then stopping (Ctrl-C again to stop now)",
            file=sys.stderr,
        )

    def __enter__(self) -> _SigintStop:
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
