"""CostModel against a hand-computed table for the tiny space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _tiny_table import tiny_table

from nas.cost import (
    MIB,
    CostModel,
    MissingRowsError,
    Table,
    TableRow,
    arch_rows,
)
from nas.space import arch_from_dict, arch_indices, load_space, reference_arch, sample_arch


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space("search_spaces/tiny.yaml")  # fp32, frames 4, 8x8 latent, batch 1


def _table(space, work_mb: dict[str, float] | None = None) -> Table:  # type: ignore[no-untyped-def]
    """The tiny space's hand-made table (tests/_tiny_table.py), named "hand"."""
    table: Table = tiny_table(space, device="hand", work_mb=work_mb)
    return table


def test_latency_is_the_sum_of_the_arch_rows(space) -> None:  # type: ignore[no-untyped-def]
    table = _table(space)
    model = CostModel(space, table, overhead_ms=3.0)
    rng = np.random.default_rng(0)
    for _ in range(25):
        arch = sample_arch(space, rng)
        rows = arch_rows(space, arch, "fp32")
        expected = sum(table.rows[r.key].latency_ms_p50 or 0 for r in rows) + 3.0
        est = model.evaluate(arch)
        assert est.latency_ms_step == pytest.approx(expected)
        assert est.latency_s_video == pytest.approx(expected * space.geometry.steps / 1e3)
        assert est.weights_mb == pytest.approx(len(rows))  # 1 MiB per row run
        assert sum(est.per_slot_ms.values()) == pytest.approx(
            sum(table.rows[r.key].latency_ms_p50 or 0 for r in rows if r.is_temporal)
        )
    p90 = CostModel(space, table, quantile="p90").evaluate(arch)
    assert p90.latency_ms_step == pytest.approx(
        sum(table.rows[r.key].latency_ms_p90 or 0 for r in arch_rows(space, arch, "fp32"))
    )


def test_peak_memory_follows_the_skip_connections(space) -> None:  # type: ignore[no-untyped-def]
    """Hand-computed for tiny (batch 1 x 4 frames, fp32): skips held along the down path."""
    table = _table(
        space,
        work_mb={
            "resnet": 0.0,
            "attn": 0.0,
            "conv_in": 0.0,
            "downsample": 0.0,
            "upsample": 0.0,
            "conv_out": 0.0,
            "time_embed": 0.0,
            "conv1d": 0.0,
            "attn1d": 0.0,
            "attn3d": 0.0,
            "conv3d": 0.0,
        },
    )
    # with no measured working set, blocks fall back to analytic input + largest tensor; make
    # one temporal op's working set dominate instead: attn1d at down.1.0 (C=32, 4x4)
    big = next(k for k in table.rows if k.startswith("attn1d") and "@32x4x4x4" in k)
    spec = table.rows[big].spec
    table.put(TableRow(spec, "measured", 1, 1, 1, 5, peak_mem_mb=1.0 + 50.0, weight_bytes=2**20))
    model = CostModel(space, table)
    n, f4 = 1 * 4, 4  # frames folded into the batch; fp32
    skip_conv_in = n * 16 * 8 * 8 * f4 / MIB  # conv_in output
    skip_d00 = n * 16 * 8 * 8 * f4 / MIB  # down.0 pair
    skip_ds0 = n * 16 * 4 * 4 * f4 / MIB  # down.0 downsample
    held_at_down10 = skip_conv_in + skip_d00 + skip_ds0
    arch = arch_from_dict(
        space,
        {
            "choices": {
                "down.0.0": "none",
                "down.1.0": {"op": "attn1d", "heads": 2, "ffn_ratio": 2},
                "mid.1.0": "none",
                "up.1.0": "none",
                "up.1.1": "none",
                "up.0.0": "none",
                "up.0.1": "none",
            }
        },
    )
    est = model.evaluate(arch)
    rows_run = len(arch_rows(space, arch, "fp32"))
    assert est.peak_mem_mb == pytest.approx(rows_run * 1.0 + held_at_down10 + 50.0)


def test_vectorised_equals_per_arch(space) -> None:  # type: ignore[no-untyped-def]
    model = CostModel(space, _table(space))
    rng = np.random.default_rng(1)
    archs = [sample_arch(space, rng) for _ in range(40)]
    out = model.evaluate_indices(np.asarray([arch_indices(space, a) for a in archs]))
    for i, a in enumerate(archs):
        e = model.evaluate(a)
        assert out["latency_ms_step"][i] == pytest.approx(e.latency_ms_step)
        assert out["peak_mem_mb"][i] == pytest.approx(e.peak_mem_mb)


def test_missing_and_failed_rows_name_the_fix(space) -> None:  # type: ignore[no-untyped-def]
    table = _table(space)
    keys = sorted(table.rows)
    del table.rows[keys[0]]
    failed = table.rows[keys[1]]
    table.put(TableRow(failed.spec, "failed", reason="boom"))
    with pytest.raises(MissingRowsError) as e:
        CostModel(space, table)
    msg = str(e.value)
    assert "lacks 2 row(s)" in msg and keys[0] in msg and keys[1] in msg
    assert "nas profile --device hand --space" in msg
    assert {r.key for r in e.value.missing} == {keys[0], keys[1]}


def test_provenance_is_reported(space) -> None:  # type: ignore[no-untyped-def]
    table = _table(space)
    k = next(iter(table.rows))
    r = table.rows[k]
    table.put(TableRow(r.spec, "estimated", 1, 1, 1, 0, weight_bytes=2**20))
    model = CostModel(space, table)
    assert model.evaluate(reference_arch(space, "none")[0]).sources == ("estimated", "measured")


def test_find_table_prefers_local_then_shipped(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nas.cost import find_table, shipped_tables
    from nas.errors import NasError

    user = Path(tmp_path, "latency_tables")
    monkeypatch.setenv("NAS_TABLES", str(user))  # the user's folder, not ./latency_tables
    assert find_table("iphone16pm") == shipped_tables() / "iphone16pm"
    Table({"device": {"name": "iphone16pm"}}).save(user / "iphone16pm")
    assert find_table("iphone16pm") == user / "iphone16pm"
    with pytest.raises(NasError, match="nas profile --device nope"):
        find_table("nope")
    with pytest.raises(NasError, match="no table for device 'x'"):
        find_table("x", tmp_path)


def test_shipped_tables_cover_the_default_space() -> None:
    from nas.cost import find_table

    space = load_space("search_spaces/temporal.yaml")
    iphone = CostModel(space, Table.load(find_table("iphone16pm")))
    assert iphone.sources == ("estimated",)
    cpu = CostModel(space, Table.load(find_table("cpu-ort")))
    assert cpu.sources == ("measured",)
    a = reference_arch(space, "attn1d")[0]
    assert (
        iphone.evaluate(a).latency_ms_step
        > iphone.evaluate(reference_arch(space, "none")[0]).latency_ms_step
    )
