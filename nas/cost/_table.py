"""Latency/memory tables: ``<dir>/table.csv`` + ``meta.json``, self-describing, written atomically.

Every row carries its provenance: ``source`` is ``measured``, ``estimated``, ``published`` or
``failed`` (with a ``reason``). Units are in the column names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nas.cost._rows import RowSpec
from nas.errors import NasError

__all__ = ["SOURCES", "Table", "TableRow", "atomic_write_text", "find_table", "shipped_tables"]

SOURCES = ("measured", "estimated", "published", "failed")


@dataclass(frozen=True)
class TableRow:
    """One row of a table: what was measured (the spec) and what came out."""

    spec: RowSpec
    source: str  # measured | estimated | published | failed
    latency_ms_p10: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    repeats: int = 0
    peak_mem_mb: float | None = None  # peak memory of running the block alone
    weight_bytes: int | None = None
    flops: int | None = None
    compute_unit: str = ""  # e.g. CPU, CPU_AND_NE, ANE share, cuda:0
    reason: str = ""  # why it failed, or a note on how it was estimated
    measured_at: str = ""  # ISO date-time

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {SOURCES}")

    @property
    def ok(self) -> bool:
        return self.source != "failed" and self.latency_ms_p50 is not None


_SPEC_COLS = ["key", "op", "options", "channels", "frames", "height", "width", "batch", "precision"]
_VALUE_COLS = [f.name for f in fields(TableRow) if f.name != "spec"]
COLUMNS = _SPEC_COLS + _VALUE_COLS
_INT_COLS = {"channels", "frames", "height", "width", "batch", "repeats", "weight_bytes", "flops"}
_FLOAT_COLS = {"latency_ms_p10", "latency_ms_p50", "latency_ms_p90", "peak_mem_mb"}


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass
class Table:
    """A device's rows by key, plus its ``meta`` (device, versions, protocol, date)."""

    meta: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, TableRow] = field(default_factory=dict)

    def get(self, spec: RowSpec) -> TableRow | None:
        return self.rows.get(spec.key)

    def put(self, row: TableRow) -> None:
        self.rows[row.spec.key] = row

    def missing(self, specs: Iterable[RowSpec]) -> list[RowSpec]:
        """Specs with no usable row (absent or failed)."""
        out = []
        for s in specs:
            r = self.rows.get(s.key)
            if r is None or not r.ok:
                out.append(s)
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows.values():
            spec = [r.spec.key, *(getattr(r.spec, c) for c in _SPEC_COLS[1:])]
            w.writerow([_cell(v) for v in spec + [getattr(r, c) for c in _VALUE_COLS]])
        return buf.getvalue()

    def save(self, folder: str | Path) -> Path:
        """Write ``table.csv`` then ``meta.json``, each atomically."""
        d = Path(folder)
        atomic_write_text(d / "table.csv", self.to_csv())
        atomic_write_text(d / "meta.json", json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        return d

    @staticmethod
    def load(folder: str | Path) -> Table:
        d = Path(folder)
        csv_path = d / "table.csv"
        if not csv_path.is_file():
            raise NasError(f"no latency table at {csv_path} (build one with `nas profile`)")
        meta: dict[str, Any] = {}
        if (d / "meta.json").is_file():
            try:
                meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise NasError(f"{d / 'meta.json'}: invalid JSON: {e}") from None
        table = Table(meta)
        with csv_path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing_cols = set(COLUMNS) - set(reader.fieldnames or [])
            if missing_cols:
                raise NasError(f"{csv_path}: missing columns {sorted(missing_cols)}")
            for line, rec in enumerate(reader, start=2):
                try:
                    table.put(_parse_row(rec))
                except (ValueError, KeyError) as e:
                    raise NasError(f"{csv_path}:{line}: {e}") from None
        return table

    def with_meta(self, **updates: Any) -> Table:
        return Table({**self.meta, **updates}, dict(self.rows))


def _parse_row(rec: Mapping[str, str]) -> TableRow:
    def conv(col: str) -> Any:
        v = rec[col]
        if v == "":
            return None
        if col in _INT_COLS:
            return int(v)
        if col in _FLOAT_COLS:
            return float(v)
        return v

    spec = RowSpec(
        op=rec["op"],
        options=rec["options"],
        channels=int(rec["channels"]),
        frames=int(rec["frames"]),
        height=int(rec["height"]),
        width=int(rec["width"]),
        batch=int(rec["batch"]),
        precision=rec["precision"],
    )
    if spec.key != rec["key"]:
        raise ValueError(f"key {rec['key']!r} does not match its columns ({spec.key})")
    values = {c: conv(c) for c in _VALUE_COLS}
    for c in ("compute_unit", "reason", "measured_at"):
        values[c] = values[c] or ""
    values["repeats"] = values["repeats"] or 0
    return replace(TableRow(spec, "failed"), **values)


def shipped_tables() -> Path:
    """The folder of tables shipped with nas (``latency_tables/`` in a checkout)."""
    from importlib import resources

    return Path(str(resources.files("nas") / "_data" / "latency_tables"))


def find_table(device: str, tables: str | Path | None = None) -> Path:
    """The table folder for ``device``: under ``tables`` if given, else ``./latency_tables``
    if it has one, else the table shipped with nas."""
    if tables is not None:
        d = Path(tables) / device
        if not (d / "table.csv").is_file():
            raise NasError(f"no table for device {device!r} in {tables} (run `nas profile`)")
        return d
    local = Path("latency_tables") / device
    if (local / "table.csv").is_file():
        return local
    shipped = shipped_tables() / device
    if (shipped / "table.csv").is_file():
        return shipped
    have = sorted(p.name for p in shipped_tables().glob("*") if (p / "table.csv").is_file())
    raise NasError(
        f"no latency table for device {device!r} (shipped: {', '.join(have) or 'none'}); "
        f"build one with: nas profile --device {device} --space SPACE.yaml"
    )
