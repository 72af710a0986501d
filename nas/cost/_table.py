"""Latency/memory tables: ``<dir>/table.csv`` + ``meta.json``, self-describing, written atomically.

Every row carries its provenance: ``source`` is ``measured``, ``estimated``, ``published`` or
``failed`` (with a ``reason``). Units are in the column names.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.cost._rows import RowSpec
from nas.errors import NasError
from nas.fileio import atomic_write_text, read_utf8

__all__ = [
    "DEFAULT_USER_TABLES",
    "SOURCES",
    "TABLES_ENV",
    "Table",
    "TableMeta",
    "TableRow",
    "find_table",
    "shipped_alternative",
    "shipped_tables",
    "table_search_path",
    "user_tables",
]

SOURCES = ("measured", "estimated", "published", "failed")
TABLES_ENV = "NAS_TABLES"  # the user's table folder, if set
DEFAULT_USER_TABLES = Path("latency_tables")  # else this one, relative to the current directory


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
        _check_values(self)

    @property
    def ok(self) -> bool:
        return self.source != "failed" and self.latency_ms_p50 is not None

    @classmethod
    def from_cells(cls, spec: RowSpec, source: str, cells: Mapping[str, str | None]) -> TableRow:
        """A row from the text of its value cells, as ``table.csv`` (or an import) has them;
        an empty or absent cell is unset. The one parser and validator of row values: a
        malformed or out-of-range value is a ``ValueError`` naming the column."""
        if source not in SOURCES:
            raise ValueError(f"source: {source!r} is not one of {list(SOURCES)}")
        values: dict[str, Any] = {}
        for col in _VALUE_COLS:
            text = cells.get(col) or ""
            if col == "source":
                continue
            if col in _INT_COLS:
                values[col] = _int_cell(col, text)
            elif col in _FLOAT_COLS:
                values[col] = _float_cell(col, text)
            else:
                values[col] = text
        values["repeats"] = values["repeats"] or 0
        return cls(spec, source, **values)


_SPEC_COLS = ["key", "op", "options", "channels", "frames", "height", "width", "batch", "precision"]
_VALUE_COLS = [f.name for f in fields(TableRow) if f.name != "spec"]
COLUMNS = _SPEC_COLS + _VALUE_COLS
_INT_COLS = {"repeats", "weight_bytes", "flops"}  # counts: whole numbers >= 0
_LATENCY_COLS = ("latency_ms_p10", "latency_ms_p50", "latency_ms_p90")
_FLOAT_COLS = {*_LATENCY_COLS, "peak_mem_mb"}


def _float_cell(col: str, text: str) -> float | None:
    t = text.strip()
    if not t:
        return None
    try:
        x = float(t)
    except ValueError:
        raise ValueError(f"{col}: {t!r} is not a number") from None
    if not math.isfinite(x):  # also 1e400, which reads as inf
        raise ValueError(f"{col}: {t!r} is not a finite number")
    return x


def _int_cell(col: str, text: str) -> int | None:
    t = text.strip()
    if not t:
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        x = float(t)  # 1e6 and 5.0 are whole numbers too
    except ValueError:
        raise ValueError(f"{col}: {t!r} is not a number") from None
    if not math.isfinite(x) or x != int(x):
        raise ValueError(f"{col}: {t!r} is not a whole number")
    return int(x)


def _check_values(row: TableRow) -> None:
    """Every number finite and in its unit's range; the percentiles in order. A usable row
    (not ``failed``) takes time: its latencies are > 0."""
    for col in sorted(_FLOAT_COLS):
        v = getattr(row, col)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(f"{col}: {v!r} is not a number")
        if not math.isfinite(v):
            raise ValueError(f"{col}: {v!r} is not a finite number")
        if col in _LATENCY_COLS and row.source != "failed" and v <= 0:
            raise ValueError(f"{col}: {v:g} must be > 0 in a {row.source} row")
        if v < 0:
            raise ValueError(f"{col}: {v:g} must be >= 0")
    for col in sorted(_INT_COLS):
        v = getattr(row, col)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{col}: {v!r} is not a whole number")
        if v < 0:
            raise ValueError(f"{col}: {v} must be >= 0")
    given = [(c, getattr(row, c)) for c in _LATENCY_COLS if getattr(row, c) is not None]
    for (a, x), (b, y) in itertools.pairwise(given):
        if x > y:
            raise ValueError(f"{a} {x:g} > {b} {y:g}: the percentiles must be in order")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class TableMeta:
    """What a table's ``meta.json`` says, typed: :attr:`Table.info`. Missing fields take the
    defaults below; fields nas does not read (protocol, platform, ...) stay in ``raw``."""

    device_name: str = "unknown"  # device.name
    description: str = ""  # device.description
    backend: str = ""  # device.backend, else the top-level backend
    precision: str | None = None  # device.precision; None: the space's
    memory_budget_mb: float = math.inf  # device.memory_budget_mb
    overhead_ms: float = 0.0  # fixed latency per UNet call (fitted by nas validate latency)
    overhead_mb: float = 0.0  # fixed runtime memory (likewise)
    versions: Mapping[str, str] = field(default_factory=dict)  # tool -> version
    created: str = ""  # ISO date-time of the first profiling run
    updated: str = ""  # and of the latest
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "meta.json") -> TableMeta:
        """Parse ``meta.json`` content; a wrong type is a ``NasError`` naming ``source`` and
        the field."""
        if not isinstance(raw, Mapping):
            raise NasError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        device = raw.get("device", {})
        if not isinstance(device, Mapping):
            raise NasError(f"{source}: device: expected an object, got {device!r}")
        versions = raw.get("versions", {})
        if not isinstance(versions, Mapping):
            raise NasError(f"{source}: versions: expected an object, got {versions!r}")
        for k, v in versions.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise NasError(f"{source}: versions.{k}: {v!r} is not a version string")
        dev = {k: _meta_text(source, device, "device.", k) for k in _DEVICE_TEXT}
        return cls(
            device_name=dev["name"] or "unknown",
            description=dev["description"] or "",
            backend=dev["backend"] or _meta_text(source, raw, "", "backend") or "",
            precision=dev["precision"],
            memory_budget_mb=_budget(source, device),
            overhead_ms=_overhead(source, raw, "overhead_ms"),
            overhead_mb=_overhead(source, raw, "overhead_mb"),
            versions={str(k): str(v) for k, v in versions.items()},
            created=_meta_text(source, raw, "", "created") or "",
            updated=_meta_text(source, raw, "", "updated") or "",
            raw=raw,
        )


_DEVICE_TEXT = ("name", "description", "backend", "precision")


def _meta_text(source: str, m: Mapping[str, Any], prefix: str, key: str) -> str | None:
    v = m.get(key)
    if v is not None and not isinstance(v, str):
        raise NasError(f"{source}: {prefix}{key}: {v!r} is not a string")
    return v


def _number(source: str, m: Mapping[str, Any], prefix: str, key: str) -> float | None:
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise NasError(f"{source}: {prefix}{key}: {v!r} is not a number")
    return float(v)


def _budget(source: str, device: Mapping[str, Any]) -> float:
    v = _number(source, device, "device.", "memory_budget_mb")
    if v is None:
        return math.inf  # no budget
    if v <= 0:
        raise NasError(
            f"{source}: device.memory_budget_mb: {v:g} must be > 0 (leave it out for no budget)"
        )
    return v


def _overhead(source: str, raw: Mapping[str, Any], key: str) -> float:
    v = _number(source, raw, "", key)
    if v is None:
        return 0.0
    if not math.isfinite(v) or v < 0:
        raise NasError(f"{source}: {key}: {v:g} must be a finite number >= 0")
    return v


@dataclass
class Table:
    """A device's rows by key, plus its ``meta`` (device, versions, protocol, date).

    ``meta`` is the raw ``meta.json`` mapping (profilers add to it); :attr:`info` is the same
    typed. ``folder`` is where :meth:`load` read the table from (None for a table built here).
    """

    meta: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, TableRow] = field(default_factory=dict)
    folder: Path | None = field(default=None, compare=False)

    @property
    def info(self) -> TableMeta:
        """:attr:`meta`, typed (read from it on each access, so it follows changes to it)."""
        where = str(self.folder / "meta.json") if self.folder is not None else "table meta"
        return TableMeta.from_dict(self.meta, where)

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
        """Write ``meta.json`` then ``table.csv``, each atomically: a folder with a
        ``table.csv`` (what :func:`find_table` looks for) always has its ``meta.json``."""
        d = Path(folder)
        atomic_write_text(d / "meta.json", json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        atomic_write_text(d / "table.csv", self.to_csv())
        return d

    @staticmethod
    def load(folder: str | Path) -> Table:
        """Read ``folder/table.csv`` and its ``meta.json``, both checked: a malformed or
        out-of-range value, a duplicate key or a missing meta is a one-line ``NasError``
        naming the file (and the line and column of ``table.csv``)."""
        d = Path(folder)
        csv_path = d / "table.csv"
        if not csv_path.is_file():
            raise NasError(f"no latency table at {csv_path} (build one with `nas profile`)")
        table = Table(_read_meta(d / "meta.json"), folder=d)
        for row in _read_rows(csv_path):
            table.put(row)
        return table

    def with_meta(self, **updates: Any) -> Table:
        return Table({**self.meta, **updates}, dict(self.rows), self.folder)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _read_meta(path: Path) -> dict[str, Any]:
    """``meta.json``: required, a JSON object whose fields have their types and ranges
    (:meth:`TableMeta.from_dict`), with ``device.name``."""
    if not path.is_file():
        raise NasError(
            f"{path}: missing: a table needs its meta.json beside table.csv (the device, its "
            "precision and memory budget); copy it along or rebuild the table with `nas profile`"
        )
    text = read_utf8(path)
    try:
        meta = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise NasError(
            f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except ValueError as e:  # a duplicate key
        raise NasError(f"{path}: {e}") from None
    except RecursionError:
        raise NasError(f"{path}: invalid JSON: nested too deeply") from None
    TableMeta.from_dict(meta, str(path))  # wrong types and values fail here, named
    if not meta.get("device", {}).get("name"):
        raise NasError(f"{path}: device.name is required (the device the table describes)")
    return dict(meta)


def _read_rows(csv_path: Path) -> list[TableRow]:
    reader = csv.DictReader(io.StringIO(read_utf8(csv_path), newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise NasError(f"{csv_path}:1: malformed CSV: {e}") from None
    if not header:
        raise NasError(f"{csv_path}: is empty (expected a header line: {','.join(COLUMNS)})")
    missing_cols = set(COLUMNS) - set(header)
    if missing_cols:
        raise NasError(f"{csv_path}: missing columns {sorted(missing_cols)}")
    rows: list[TableRow] = []
    first: dict[str, int] = {}  # key -> the line it is on
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:  # e.g. a quoted cell cut short
            raise NasError(f"{csv_path}:{reader.line_num}: malformed CSV: {e}") from None
        line = reader.line_num
        try:
            row = _parse_row(rec, len(header))
        except (ValueError, KeyError) as e:
            raise NasError(f"{csv_path}:{line}: {e}") from None
        if row.spec.key in first:
            raise NasError(
                f"{csv_path}:{line}: duplicate key {row.spec.key!r} (also on line "
                f"{first[row.spec.key]}); keep one of them"
            )
        first[row.spec.key] = line
        rows.append(row)


def _parse_row(rec: Mapping[str | None, Any], columns: int) -> TableRow:
    if None in rec:
        raise ValueError(f"more cells than the {columns} columns of the header")
    short = [c for c in COLUMNS if rec.get(c) is None]
    if short:
        have = sum(v is not None for v in rec.values())
        raise ValueError(f"{have} of {columns} cells, no {short[0]} (a truncated file?)")
    cells: Mapping[str, str] = {str(k): v for k, v in rec.items()}
    spec = RowSpec.from_cells(cells)
    if spec.key != cells["key"]:
        raise ValueError(f"key: {cells['key']!r} does not match its columns ({spec.key})")
    return TableRow.from_cells(spec, cells["source"], cells)


def shipped_tables() -> Path:
    """The folder of tables shipped with nas (``latency_tables/`` in a checkout)."""
    from importlib import resources

    return Path(str(resources.files("nas") / "_data" / "latency_tables"))


def user_tables() -> Path:
    """The user's table folder: ``$NAS_TABLES`` if set, else ``./latency_tables`` (relative to
    the current directory, the documented default)."""
    env = os.environ.get(TABLES_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_USER_TABLES


def table_search_path(tables: str | Path | None = None) -> list[Path]:
    """The folders :func:`find_table` looks in for ``<device>/table.csv``, first to last.

    ``tables`` alone when given (``device.table`` in a search config); else the user's folder
    (:func:`user_tables`: ``$NAS_TABLES``, or ``./latency_tables``), then the tables shipped
    with nas (:func:`shipped_tables`).
    """
    if tables is not None:
        return [Path(tables)]
    return [user_tables(), shipped_tables()]


def find_table(device: str, tables: str | Path | None = None) -> Path:
    """The table folder for ``device``: the first folder of :func:`table_search_path` that
    has one. None found is a ``NasError`` naming the folders and the command that builds one."""
    path = table_search_path(tables)
    for folder in path:
        if (folder / device / "table.csv").is_file():
            return folder / device
    if tables is not None:
        raise NasError(f"no table for device {device!r} in {tables} (run `nas profile`)")
    have = sorted(p.name for p in shipped_tables().glob("*") if (p / "table.csv").is_file())
    raise NasError(
        f"no latency table for device {device!r} in {path[0]} nor shipped with nas "
        f"(shipped: {', '.join(have) or 'none'}); "
        f"build one with: nas profile --device {device} --space SPACE.yaml"
    )


def shipped_alternative(device: str, folder: str | Path | None, missing: Iterable[RowSpec]) -> str:
    """For an error about the table in ``folder`` lacking ``missing`` rows: a sentence saying
    the table shipped for ``device`` has all of them and how to use it; "" when it does not
    (or ``folder`` is None or the shipped table itself)."""
    shipped = shipped_tables() / device
    if folder is None or not (shipped / "table.csv").is_file():
        return ""
    if Path(folder).resolve() == shipped.resolve():
        return ""
    specs = list(missing)
    try:
        if not specs or Table.load(shipped).missing(specs):
            return ""
    except NasError:
        return ""
    return (
        f"the shipped {device} table has all {len(specs)} of them: remove {folder} or pass "
        f"device.table={shipped_tables()}"
    )
