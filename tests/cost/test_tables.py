"""Latency tables: where they are found (an explicit search path), their typed and checked meta,
validated rows, typed row options, and the error that points at a shipped table when a local
one shadows it."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from nas.cost import (
    MissingRowsError,
    RowSpec,
    Table,
    TableMeta,
    TableRow,
    find_table,
    rows_for_space,
    shipped_alternative,
    shipped_tables,
    table_search_path,
    user_tables,
)
from nas.errors import NasError
from nas.space import OpChoice, load_space

SHIPPED_IPHONE = shipped_tables() / "iphone16pm"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAS_TABLES", raising=False)


# ---------------------------------------------------------------------------------------------
# the search path
# ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_env")
def test_search_path_is_the_user_folder_then_the_shipped_tables() -> None:
    assert user_tables() == Path("latency_tables")  # the documented default, relative to cwd
    assert table_search_path() == [Path("latency_tables"), shipped_tables()]


def test_nas_tables_names_the_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_TABLES", str(tmp_path))
    assert table_search_path() == [tmp_path, shipped_tables()]
    assert find_table("iphone16pm") == SHIPPED_IPHONE  # nothing of the user's yet
    Table({"device": {"name": "iphone16pm"}}).save(tmp_path / "iphone16pm")
    assert find_table("iphone16pm") == tmp_path / "iphone16pm"  # the user's shadows it
    with pytest.raises(NasError, match=rf"no latency table for device 'nope' in {tmp_path} "):
        find_table("nope")


def test_a_given_folder_is_the_whole_search_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAS_TABLES", str(tmp_path / "env"))
    assert table_search_path(tmp_path) == [tmp_path]
    with pytest.raises(NasError, match="no table for device 'iphone16pm' in"):
        find_table("iphone16pm", tmp_path)  # no fall back to the shipped one


# ---------------------------------------------------------------------------------------------
# the typed meta
# ---------------------------------------------------------------------------------------------


def test_shipped_meta_is_typed_and_meta_stays_raw() -> None:
    table = Table.load(SHIPPED_IPHONE)
    info = table.info
    assert table.folder == SHIPPED_IPHONE
    assert (info.device_name, info.backend, info.precision) == ("iphone16pm", "coreml", "fp16")
    assert info.memory_budget_mb == 4096.0 and info.overhead_ms == 0.0 == info.overhead_mb
    assert info.versions["coremltools"] == "9.0" and info.created.startswith("20")
    assert info.raw is table.meta and table.meta["protocol"]["warmup"] == 2  # unknown fields
    table.meta["device"] = {**table.meta["device"], "memory_budget_mb": 1000}
    assert table.info.memory_budget_mb == 1000.0  # follows the raw mapping


def test_meta_defaults() -> None:
    info = TableMeta.from_dict({})
    assert info.device_name == "unknown" and info.precision is None
    assert math.isinf(info.memory_budget_mb) and info.versions == {} and info.backend == ""
    assert TableMeta.from_dict({"backend": "onnxruntime"}).backend == "onnxruntime"


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"device": {"memory_budget_mb": "big"}}, "device.memory_budget_mb: 'big' is not a number"),
        ({"device": {"name": 16}}, "device.name: 16 is not a string"),
        ({"device": "iphone"}, "device: expected an object"),
        ({"overhead_ms": True}, "overhead_ms: True is not a number"),
        ({"versions": {"torch": [2]}}, "versions.torch: [2] is not a version string"),
        ([1, 2], "expected a JSON object"),
        ({"device": {"name": "d", "memory_budget_mb": 0}}, "memory_budget_mb: 0 must be > 0"),
        ({"device": {"name": "d", "memory_budget_mb": math.nan}}, "nan is not a number"),
        ({"device": {"name": "d"}, "overhead_ms": -0.5}, "overhead_ms: -0.5 must be a finite"),
        ({"device": {"name": "d"}, "overhead_mb": math.inf}, "overhead_mb: inf must be a finite"),
        ({"device": {"precision": "fp32"}}, "device.name is required"),
        ({}, "device.name is required"),
    ],
)
def test_wrong_meta_types_name_the_file_and_field(
    tmp_path: Path, meta: object, needle: str
) -> None:
    Table().save(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(NasError) as e:
        Table.load(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'meta.json'}: ") and needle in str(e.value)


def test_meta_is_required_and_infinity_means_no_budget(tmp_path: Path) -> None:
    table = Table({"device": {"name": "d", "memory_budget_mb": math.inf}})
    table.save(tmp_path)
    assert "Infinity" in (tmp_path / "meta.json").read_text()  # JSON's inf: no budget
    assert math.isinf(Table.load(tmp_path).info.memory_budget_mb)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(NasError, match=r"meta\.json: missing: a table needs its meta\.json"):
        Table.load(tmp_path)


def test_save_writes_the_meta_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: Table) -> str:
        raise KeyboardInterrupt  # killed while the csv is made

    monkeypatch.setattr(Table, "to_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        Table({"device": {"name": "d"}}).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]  # never a bare csv


# ---------------------------------------------------------------------------------------------
# validated rows
# ---------------------------------------------------------------------------------------------

SPEC = RowSpec("conv_in", "cin=4,k=3", 16, 4, 8, 8, 1, "fp32")


@pytest.mark.parametrize(
    ("source", "values", "needle"),
    [
        ("measured", {"latency_ms_p50": math.nan}, "latency_ms_p50: nan is not a finite number"),
        ("estimated", {"latency_ms_p50": math.inf}, "latency_ms_p50: inf is not a finite"),
        ("published", {"latency_ms_p50": 0.0}, "latency_ms_p50: 0 must be > 0 in a published"),
        ("failed", {"latency_ms_p90": -1.0}, "latency_ms_p90: -1 must be >= 0"),
        ("measured", {"latency_ms_p50": 2.0, "latency_ms_p90": 1.0}, "p50 2 > latency_ms_p90 1"),
        ("measured", {"peak_mem_mb": -0.1}, "peak_mem_mb: -0.1 must be >= 0"),
        ("measured", {"weight_bytes": 1.5}, "weight_bytes: 1.5 is not a whole number"),
        ("measured", {"flops": -1}, "flops: -1 must be >= 0"),
        ("measured", {"repeats": True}, "repeats: True is not a whole number"),
    ],
)
def test_rows_refuse_impossible_values(source: str, values: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError) as e:
        TableRow(SPEC, source, **values)  # type: ignore[arg-type]
    assert needle in str(e.value)


def test_rows_keep_what_is_possible() -> None:
    failed = TableRow(SPEC, "failed", latency_ms_p50=0.0, reason="timed out")  # no time: fine
    assert not failed.ok
    row = TableRow.from_cells(SPEC, "measured", {"latency_ms_p50": " 2 ", "weight_bytes": "1e6"})
    assert row.latency_ms_p50 == 2.0 and row.weight_bytes == 1_000_000 and row.repeats == 0
    assert row.latency_ms_p10 is None and row.reason == ""
    with pytest.raises(ValueError, match=r"latency_ms_p50: '1e400' is not a finite number"):
        TableRow.from_cells(SPEC, "measured", {"latency_ms_p50": "1e400"})
    with pytest.raises(ValueError, match=r"channels: '-3' is not a whole number >= 1"):
        RowSpec.from_cells({**SPEC.to_dict(), "channels": "-3"})  # type: ignore[dict-item]


def test_a_loaded_table_names_the_line_of_a_bad_row(tmp_path: Path) -> None:
    good = TableRow(SPEC, "measured", 1.0, 2.0, 3.0, 5)
    other = TableRow(replace(SPEC, channels=32), "measured", 1.0, 2.0, 3.0, 5)
    Table({"device": {"name": "d"}}, {r.spec.key: r for r in (good, other)}).save(tmp_path)
    assert set(Table.load(tmp_path).rows) == {SPEC.key, other.spec.key}  # round trip
    lines = (tmp_path / "table.csv").read_text().splitlines()
    (tmp_path / "table.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(NasError, match=r"table\.csv:4: duplicate key .* \(also on line 2\)"):
        Table.load(tmp_path)
    (tmp_path / "table.csv").write_text("\n".join([lines[0], lines[1].replace(",2,", ",-2,")]))
    with pytest.raises(NasError, match=r"table\.csv:2: latency_ms_p50: -2 must be > 0"):
        Table.load(tmp_path)


def test_missing_rows_error_names_the_table_folder(tmp_path: Path) -> None:
    space = load_space("temporal")
    missing = rows_for_space(space)[:1]
    assert f"the d table in {tmp_path} lacks 1 row(s)" in str(
        MissingRowsError(missing, "d", space, folder=tmp_path)
    )
    assert "the d table lacks 1 row(s)" in str(MissingRowsError(missing, "d", space))


# ---------------------------------------------------------------------------------------------
# typed row options
# ---------------------------------------------------------------------------------------------


def test_row_options_are_typed_and_keys_unchanged() -> None:
    space = load_space("temporal")
    rows = {r.key: r for r in rows_for_space(space)}
    key = "xattn1d[ffn_ratio=4,heads=8,pos=sinusoidal,groups=32,text=77x768]@640x16x18x32/b1/fp16"
    row = rows[key]
    assert row.params == {
        "ffn_ratio": 4, "heads": 8, "pos": "sinusoidal", "groups": 32, "text": (77, 768)
    }  # fmt: skip
    assert row.choice() == OpChoice.make("xattn1d", heads=8)
    conv = rows["conv1d[depthwise=true,kernel=3,groups=32]@320x16x36x64/b1/fp16"]
    assert conv.params["depthwise"] is True and conv.choice().get("kernel") == 3
    shipped = Table.load(SHIPPED_IPHONE)
    # the shipped table's keys, byte for byte (the network rows, call and glue, are optional:
    # a table made before them still loads, and `nas profile` adds them)
    assert {k for k, r in rows.items() if not r.is_network} <= set(shipped.rows)
    for r in shipped.rows.values():  # every shipped row parses, and its text round-trips
        again = RowSpec(r.spec.op, r.spec.options, 1, 1, 1, 1, 1, "fp16")
        assert again.params == r.spec.params
    resnet = next(r for r in rows.values() if r.op == "resnet")
    assert isinstance(resnet.params["cin"], int) and resnet.spatial_batch == 16


@pytest.mark.parametrize(
    ("op", "options", "needle"),
    [
        ("conv1d", "depthwise=false,kernel=4", "kernel=4 is not one of [3, 5, 7]"),
        ("resnet", "cin=x,temb=1280,groups=32", "cin=x is not an integer"),
        ("attn", "heads=8,text=77", "text=77 is not a shape LxD"),
        ("conv_in", "cin=4,kk=3", "unknown option 'kk'"),
    ],
)
def test_malformed_row_options_are_named(op: str, options: str, needle: str) -> None:
    spec = RowSpec(op, options, 320, 16, 8, 8, 1, "fp16")
    with pytest.raises(ValueError) as e:
        _ = spec.params
    assert str(e.value).startswith(spec.key) and needle in str(e.value)


# ---------------------------------------------------------------------------------------------
# a local table that shadows a better shipped one
# ---------------------------------------------------------------------------------------------


def test_error_points_at_the_shipped_table(tmp_path: Path) -> None:
    space = load_space("temporal")
    local = tmp_path / "latency_tables" / "iphone16pm"
    full = Table.load(SHIPPED_IPHONE)
    dropped = list(full.rows)[:3]
    stale = Table(dict(full.meta), {k: r for k, r in full.rows.items() if k not in dropped})
    stale.save(local)
    needed = [r for r in rows_for_space(space) if not r.is_network]  # those are optional
    missing = Table.load(local).missing(needed)
    assert [r.key for r in missing] == dropped
    hint = shipped_alternative("iphone16pm", local, missing)
    assert hint == (
        f"the shipped iphone16pm table has all 3 of them: remove {local} or pass "
        f"device.table={shipped_tables()}"
    )
    err = MissingRowsError(missing, "iphone16pm", space, folder=local)
    assert "lacks 3 row(s)" in str(err) and str(err).endswith(hint) and err.folder == local
    assert hint not in str(MissingRowsError(missing, "iphone16pm", space))  # folder unknown


def test_no_shipped_alternative_when_it_does_not_help(tmp_path: Path) -> None:
    space = load_space("temporal")
    rows = rows_for_space(space)
    assert shipped_alternative("iphone16pm", None, rows) == ""  # folder unknown
    assert shipped_alternative("iphone16pm", SHIPPED_IPHONE, rows) == ""  # it is the shipped one
    assert shipped_alternative("nope", tmp_path, rows) == ""  # nothing shipped for the device
    other = RowSpec("conv1d", "depthwise=false,kernel=3,groups=32", 7, 1, 1, 1, 1, "fp16")
    assert shipped_alternative("iphone16pm", tmp_path, [rows[0], other]) == ""  # lacks one too
