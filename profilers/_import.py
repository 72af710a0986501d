"""Import measurements made elsewhere: a lab's CSV, coremltools' MLModelBenchmarker, Xcode.

Three formats (docs/profiling.md "Imports"; an example of each in docs/examples/):

* **CSV** (``.csv``): the row spec columns (``op, options, channels, frames, height, width,
  batch, precision``) or a ``key`` column, and ``latency_ms_p50``; optional:
  ``latency_ms_p10``, ``latency_ms_p90``, ``repeats``, ``peak_mem_mb``, ``weight_bytes``,
  ``compute_unit``, ``measured_at``, ``source`` (``measured`` or ``published``), ``note``.
* **MLModelBenchmarker JSON** (``"format": "coremltools.MLModelBenchmarker"``): per row key
  what ``benchmark_predict`` (``samples`` in ms), ``benchmark_load`` and
  ``benchmark_operation_execution`` (per op: preferred compute device and median ms)
  returned, as written on the Mac by ``dataclasses.asdict``: p10/p50/p90 of the samples,
  ``compute_unit`` = the Neural Engine's share of the op time (``ANE 92%``).
* **Xcode performance report JSON** (``"format": "xcode.coreml-performance-report"``): per row
  key the report's median ``prediction_ms``, ``load_ms`` and its compute-unit mapping (ops per
  unit); p10 = p50 = p90 = the median.

JSON rows replace the table's row of the same key (``source="measured"``, the file, device and
OS in ``reason``) and keep that row's ``peak_mem_mb``, ``weight_bytes`` and ``flops`` (the
tools measure no peak memory).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from nas.cost import RowSpec, Table, TableRow
from nas.errors import NasError
from nas.fileio import read_utf8
from profilers._base import now_iso, percentiles
from profilers._devices import Device

__all__ = ["import_rows"]

_SPEC_COLS = ("op", "channels", "frames", "height", "width", "batch", "precision")
# the value columns an import may give; the rest of a row is made here
_VALUE_COLS = (
    "latency_ms_p10",
    "latency_ms_p50",
    "latency_ms_p90",
    "repeats",
    "peak_mem_mb",
    "weight_bytes",
    "compute_unit",
    "measured_at",
)
_KEY = re.compile(
    r"^(?P<op>[a-z_0-9]+)\[(?P<options>[^\]]*)\]@(?P<c>\d+)x(?P<t>\d+)x(?P<h>\d+)x(?P<w>\d+)"
    r"/b(?P<b>\d+)/(?P<p>fp16|fp32)$"
)


def _spec(rec: Mapping[str | None, str | None], where: str) -> RowSpec:
    key = (rec.get("key") or "").strip()
    if key:
        m = _KEY.match(key)
        if not m:
            raise NasError(
                f"{where}: key {key!r} is not a row key like "
                "'conv1d[depthwise=false,kernel=3]@320x16x36x64/b1/fp16'"
            )
        return RowSpec(
            m["op"],
            m["options"],
            int(m["c"]),
            int(m["t"]),
            int(m["h"]),
            int(m["w"]),
            int(m["b"]),
            m["p"],
        )
    absent = [c for c in _SPEC_COLS if c not in rec]
    if absent:
        raise NasError(f"{where}: missing column {absent[0]!r} (or give a 'key' column)")
    try:
        return RowSpec.from_cells({str(k): v for k, v in rec.items()})
    except ValueError as e:
        raise NasError(f"{where}: {e}") from None


def _row(rec: Mapping[str | None, str | None], spec: RowSpec, p: Path, where: str) -> TableRow:
    """The row of one line, checked by the table's own parser (``TableRow.from_cells``)."""

    def cell(col: str) -> str:
        return (rec.get(col) or "").strip()

    p50 = cell("latency_ms_p50")
    if not p50:
        raise NasError(f"{where}: latency_ms_p50 is required")
    source = cell("source") or "measured"
    if source not in ("measured", "published"):
        raise NasError(f"{where}: source {source!r} is not one of ['measured', 'published']")
    note = cell("note")
    cells = {c: cell(c) for c in _VALUE_COLS}
    cells["reason"] = f"imported from {p.name}" + (f": {note}" if note else "")
    cells["measured_at"] = cells["measured_at"] or now_iso()
    try:
        row = TableRow.from_cells(spec, source, cells)
        mid = row.latency_ms_p50  # p10 and p90 default to it
        return replace(
            row,
            latency_ms_p10=mid if row.latency_ms_p10 is None else row.latency_ms_p10,
            latency_ms_p90=mid if row.latency_ms_p90 is None else row.latency_ms_p90,
        )
    except ValueError as e:
        raise NasError(f"{where}: {e}") from None


def _read_rows(p: Path, device: Device) -> list[TableRow]:
    reader = csv.DictReader(io.StringIO(read_utf8(p), newline=""))
    rows: list[TableRow] = []
    first: dict[str, int] = {}  # key -> its line
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:  # e.g. a quoted cell cut short
            raise NasError(f"{p}:{reader.line_num}: malformed CSV: {e}") from None
        where = f"{p}:{reader.line_num}"
        if None in rec:
            raise NasError(f"{where}: more cells than the header has columns")
        spec = _spec(rec, where)
        if spec.precision != device.precision:
            raise NasError(
                f"{where}: precision {spec.precision} but device {device.name} "
                f"runs {device.precision}"
            )
        if spec.key in first:
            raise NasError(
                f"{where}: duplicate row {spec.key!r} (also on line {first[spec.key]}); "
                "keep one of them"
            )
        first[spec.key] = reader.line_num
        rows.append(_row(rec, spec, p, where))


def import_rows(table: Table, csv_path: str | Path, device: Device) -> list[str]:
    """Add the rows of ``csv_path`` (CSV, or one of the JSON formats above) to ``table``
    (replacing same keys); returns their keys.

    Every value is checked as ``Table.load`` checks it (finite, in range, percentiles in
    order); nothing is added unless every row is valid.
    """
    p = Path(csv_path)
    rows = _read_json(p, device, table) if p.suffix.lower() == ".json" else _read_rows(p, device)
    if not rows:
        raise NasError(f"{p}: no rows (expected a header line and at least one row)")
    for r in rows:
        table.put(r)
    imports = list(table.meta.get("imports", []))
    imports.append({"file": str(p), "rows": len(rows), "date": now_iso()})
    table.meta["imports"] = imports
    return [r.spec.key for r in rows]


# --------------------------------------------------------------------------- JSON formats

BENCHMARKER = "coremltools.MLModelBenchmarker"
XCODE = "xcode.coreml-performance-report"


def _read_json(p: Path, device: Device, table: Table) -> list[TableRow]:
    try:
        data = json.loads(read_utf8(p))
    except json.JSONDecodeError as e:
        raise NasError(f"{p}: invalid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise NasError(f"{p}: expected a JSON object with 'format' and 'rows'")
    fmt = data.get("format")
    if fmt not in (BENCHMARKER, XCODE):
        raise NasError(f"{p}: format: {fmt!r} is not one of {[BENCHMARKER, XCODE]}")
    recs = data.get("rows")
    if not isinstance(recs, list):
        raise NasError(f"{p}: rows: expected a list of measured rows")
    where_from = ", ".join(str(data[k]) for k in ("device", "os") if data.get(k))
    rows: list[TableRow] = []
    seen: set[str] = set()
    for i, rec in enumerate(recs):
        where = f"{p}: rows[{i}]"
        if not isinstance(rec, dict):
            raise NasError(f"{where}: expected an object")
        spec = _spec({"key": str(rec.get("key", ""))}, where)
        if spec.precision != device.precision:
            raise NasError(f"{where}: precision {spec.precision} but {device.name} runs "
                           f"{device.precision}")  # fmt: skip
        if spec.key in seen:
            raise NasError(f"{where}: duplicate row {spec.key!r}; keep one of them")
        seen.add(spec.key)
        parse = _benchmarker_values if fmt == BENCHMARKER else _xcode_values
        lat, repeats, unit, how = parse(rec, where)
        tool = "MLModelBenchmarker" if fmt == BENCHMARKER else "Xcode performance report"
        rows.append(_json_row(spec, table, lat, repeats, unit,
                              f"{tool} ({where_from or 'device not named'}){how}; imported "
                              f"from {p.name}", where))  # fmt: skip
    return rows


def _number(v: object, what: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise NasError(f"{where}: {what}: {v!r} is not a positive finite number of ms")
    return float(v)


def _benchmarker_values(
    rec: dict[str, object], where: str
) -> tuple[tuple[float, float, float], int, str, str]:
    pred = rec.get("predict")
    samples = pred.get("samples") if isinstance(pred, dict) else None
    if not isinstance(samples, list) or not samples:
        raise NasError(f"{where}: predict.samples: expected a non-empty list of ms")
    ms = sorted(_number(x, "predict.samples", where) for x in samples)
    p10, p50, p90 = percentiles(ms)
    share: dict[str, float] = {}
    ops = rec.get("operations") or []
    if not isinstance(ops, list):
        raise NasError(f"{where}: operations: expected a list")
    for op in ops:
        if isinstance(op, dict) and op.get("compute_device"):
            unit = _unit(str(op["compute_device"]))
            share[unit] = share.get(unit, 0.0) + float(op.get("median_ms") or 0.0)
    total = sum(share.values())
    cu = f"ANE {100 * share.get('ANE', 0.0) / total:.0f}%" if total > 0 else ""
    load = rec.get("load")
    load_s = load.get("samples") if isinstance(load, dict) else None
    how = f"; load {sorted(load_s)[len(load_s) // 2]:.1f} ms" if load_s else ""
    return (p10, p50, p90), len(ms), cu, how


def _unit(name: str) -> str:
    n = name.replace(" ", "").lower()
    return "ANE" if "neural" in n or n == "ane" else ("GPU" if "gpu" in n else "CPU")


def _xcode_values(
    rec: dict[str, object], where: str
) -> tuple[tuple[float, float, float], int, str, str]:
    mid = _number(rec.get("prediction_ms"), "prediction_ms", where)
    mapping = rec.get("compute_units") or {}
    if not isinstance(mapping, dict):
        raise NasError(f"{where}: compute_units: expected {{unit: op count}}")
    counts: dict[str, float] = {}
    for k, v in mapping.items():
        counts[_unit(str(k))] = counts.get(_unit(str(k)), 0.0) + float(v)
    total = sum(counts.values())
    cu = f"ANE {100 * counts.get('ANE', 0.0) / total:.0f}% of ops" if total > 0 else ""
    load = rec.get("load_ms")
    how = f"; load {float(load):.1f} ms" if isinstance(load, (int, float)) else ""
    return (mid, mid, mid), 0, cu, "; median prediction" + how


def _json_row(
    spec: RowSpec, table: Table, lat: tuple[float, float, float], repeats: int, unit: str,
    note: str, where: str,
) -> TableRow:  # fmt: skip
    """The measured row, keeping the table's peak memory, weights and FLOPs for the key."""
    old = table.rows.get(spec.key)
    try:
        return TableRow(
            spec, "measured", *lat, repeats=repeats,
            peak_mem_mb=old.peak_mem_mb if old else None,
            weight_bytes=old.weight_bytes if old else None,
            flops=old.flops if old else None, compute_unit=unit, reason=note,
            measured_at=now_iso(),
        )  # fmt: skip
    except ValueError as e:
        raise NasError(f"{where}: {e}") from None
