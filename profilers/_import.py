"""Import measurements made elsewhere (a phone lab, Xcode's performance report typed into CSV).

The CSV needs the row spec columns (``op, options, channels, frames, height, width, batch,
precision``) or a ``key`` column, and ``latency_ms_p50``; optional: ``latency_ms_p10``,
``latency_ms_p90``, ``repeats``, ``peak_mem_mb``, ``weight_bytes``, ``compute_unit``,
``measured_at``, ``source`` (``measured`` or ``published``, default ``measured``), ``note``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from nas.cost import RowSpec, Table, TableRow
from nas.errors import NasError
from nas.fileio import read_utf8
from profilers._base import now_iso
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
    """Add the rows of ``csv_path`` to ``table`` (replacing same keys); returns their keys.

    Every value is checked as ``Table.load`` checks it (finite, in range, percentiles in
    order); nothing is added unless every line is valid.
    """
    p = Path(csv_path)
    rows = _read_rows(p, device)
    if not rows:
        raise NasError(f"{p}: no rows (expected a header line and at least one row)")
    for r in rows:
        table.put(r)
    imports = list(table.meta.get("imports", []))
    imports.append({"file": str(p), "rows": len(rows), "date": now_iso()})
    table.meta["imports"] = imports
    return [r.spec.key for r in rows]
