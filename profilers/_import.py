"""Import measurements made elsewhere (a phone lab, Xcode's performance report typed into CSV).

The CSV needs the row spec columns (``op, options, channels, frames, height, width, batch,
precision``) or a ``key`` column, and ``latency_ms_p50``; optional: ``latency_ms_p10``,
``latency_ms_p90``, ``repeats``, ``peak_mem_mb``, ``weight_bytes``, ``compute_unit``,
``measured_at``, ``source`` (``measured`` or ``published``, default ``measured``), ``note``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from nas.cost import RowSpec, Table, TableRow
from nas.errors import NasError
from profilers._base import now_iso
from profilers._devices import Device

__all__ = ["import_rows"]

_KEY = re.compile(
    r"^(?P<op>[a-z_0-9]+)\[(?P<options>[^\]]*)\]@(?P<c>\d+)x(?P<t>\d+)x(?P<h>\d+)x(?P<w>\d+)"
    r"/b(?P<b>\d+)/(?P<p>fp16|fp32)$"
)


def _spec(rec: dict[str, str], where: str) -> RowSpec:
    if rec.get("key"):
        m = _KEY.match(rec["key"].strip())
        if not m:
            raise NasError(
                f"{where}: key {rec['key']!r} is not a row key like "
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
    try:
        return RowSpec(
            rec["op"],
            rec.get("options", ""),
            int(rec["channels"]),
            int(rec["frames"]),
            int(rec["height"]),
            int(rec["width"]),
            int(rec["batch"]),
            rec["precision"],
        )
    except KeyError as e:
        raise NasError(f"{where}: missing column {e.args[0]!r} (or give a 'key' column)") from None
    except ValueError as e:
        raise NasError(f"{where}: {e}") from None


def _float(rec: dict[str, str], col: str, where: str) -> float | None:
    v = (rec.get(col) or "").strip()
    if not v:
        return None
    try:
        x = float(v)
    except ValueError:
        raise NasError(f"{where}: {col}: {v!r} is not a number") from None
    if not x >= 0:  # also rejects NaN
        raise NasError(f"{where}: {col}: {v!r} must be a non-negative number")
    return x


def _int(rec: dict[str, str], col: str, where: str) -> int | None:
    x = _float(rec, col, where)
    if x is not None and x != int(x):
        raise NasError(f"{where}: {col}: {x!r} is not a whole number")
    return None if x is None else int(x)


def import_rows(table: Table, csv_path: str | Path, device: Device) -> list[str]:
    """Add the rows of ``csv_path`` to ``table`` (replacing same keys); returns their keys.

    Nothing is added unless every line is valid.
    """
    p = Path(csv_path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise NasError(f"{p}: cannot read: {e.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    rows: list[TableRow] = []
    for line, rec in enumerate(reader, start=2):
        where = f"{p}:{line}"
        spec = _spec(rec, where)
        if spec.precision != device.precision:
            raise NasError(
                f"{where}: precision {spec.precision} but device {device.name} "
                f"runs {device.precision}"
            )
        p50 = _float(rec, "latency_ms_p50", where)
        if p50 is None:
            raise NasError(f"{where}: latency_ms_p50 is required")
        source = (rec.get("source") or "measured").strip()
        if source not in ("measured", "published"):
            raise NasError(f"{where}: source {source!r} is not one of ['measured', 'published']")
        note = (rec.get("note") or "").strip()
        rows.append(
            TableRow(
                spec,
                source,
                latency_ms_p10=_float(rec, "latency_ms_p10", where) or p50,
                latency_ms_p50=p50,
                latency_ms_p90=_float(rec, "latency_ms_p90", where) or p50,
                repeats=_int(rec, "repeats", where) or 0,
                peak_mem_mb=_float(rec, "peak_mem_mb", where),
                weight_bytes=_int(rec, "weight_bytes", where),
                compute_unit=(rec.get("compute_unit") or "").strip(),
                reason=f"imported from {p.name}" + (f": {note}" if note else ""),
                measured_at=(rec.get("measured_at") or "").strip() or now_iso(),
            )
        )
    if not rows:
        raise NasError(f"{p}: no rows (expected a header line and at least one row)")
    for r in rows:
        table.put(r)
    imports = list(table.meta.get("imports", []))
    imports.append({"file": str(p), "rows": len(rows), "date": now_iso()})
    table.meta["imports"] = imports
    return [r.spec.key for r in rows]
