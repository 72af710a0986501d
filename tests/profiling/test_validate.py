"""nas validate latency end to end on the tiny space (real ONNX Runtime measurements)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.slow
def test_validate_latency_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "nas",
            "validate",
            "latency",
            "--device",
            "cpu-ort",
            "--space",
            "search_spaces/tiny.yaml",
            "--samples",
            "4",
            "--out",
            str(tmp_path),
            "--geometry",
            "frames=2",
            "--geometry",
            "latent_height=8",
            "--geometry",
            "latent_width=8",
            "--quick",
            "--no-memory",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "latency (rows + network rows)" in out.stdout and "Kendall tau" in out.stdout
    assert "ceiling: pass 2 vs pass 1" in out.stdout and "temporal ops' share" in out.stdout
    assert "--seed 0 --select stratified" in out.stdout
    rows = list(csv.DictReader((tmp_path / "validate_latency.csv").open()))
    assert len(rows) == 4 and len({r["arch_id"] for r in rows}) == 4
    for r in rows:
        assert float(r["measured_ms"]) > 0 and float(r["predicted_ms"]) > 0
    assert (tmp_path / "table" / "table.csv").is_file()


def test_validate_refuses_devices_that_cannot_measure(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "nas",
            "validate",
            "latency",
            "--device",
            "iphone16pm",
            "--space",
            "search_spaces/tiny.yaml",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot validate iphone16pm here")


# ---------------------------------------------------------------------------------------------
# the driver with a fake backend: selection, resume, more seeds, combine (no ONNX, fast)
# ---------------------------------------------------------------------------------------------

TINY = str(Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml")
SMALL = {"frames": 2, "latent_height": 8, "latent_width": 8}


class FakeBackend:
    """Rows: 1 ms + 0.1 ms per weight KiB; a network: the same for the whole module, so a
    heavier arch measures slower. Counts the whole networks it measured."""

    name = "fake"

    def __init__(self) -> None:
        self.networks: list[tuple[str, bool]] = []

    def versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def measure(self, row: Any, built: Any, device: Any, protocol: Any) -> Any:
        from nas.cost import TableRow

        kib = sum(p.numel() for p in built.module.parameters()) * 4 / 1024
        ms = 1.0 + 0.1 * kib
        if row.op == "network":
            self.networks.append((row.options, protocol.memory))
        return TableRow(row, "measured", ms, ms, ms, 3, peak_mem_mb=1.0 + kib / 1024)


def _run(folder: Path, backend: FakeBackend, **kw: Any) -> Any:
    from nas.space import load_space
    from profilers import TimingProtocol, get_device, validate_latency

    fast = TimingProtocol(warmup=0, min_repeats=1, max_repeats=1, memory=True)
    args: dict[str, Any] = {"samples": 6, "seed": 0, "geometry": SMALL, **kw}
    return validate_latency(
        load_space(TINY), get_device("cpu-ort"), folder, protocol=fast, progress=False,
        profiler=backend, **args,
    )  # fmt: skip


def test_stratified_selection_spans_the_predicted_range(tmp_path: Path) -> None:
    import numpy as np
    from _tiny_table import tiny_table  # type: ignore[import-not-found]

    from nas.cost import CostModel
    from nas.space import arch_from_indices, load_space, with_geometry
    from profilers import select_arches

    space = load_space(TINY)
    model = CostModel(space, tiny_table(space))
    picks = select_arches(space, model, 12, seed=0)
    labels = [label for label, _ in picks]
    assert labels[:2] == ["all-none", "heaviest"]
    assert {"attn1d everywhere", "conv3d everywhere"} <= set(labels)
    ids = [arch_from_indices(space, i).arch_id for _, i in picks]
    assert len(set(ids)) == 12
    pred = model.evaluate_indices(np.asarray([i for _, i in picks]))["latency_ms_step"]
    from nas.space import arch_indices, enumerate_arches

    every = np.asarray([arch_indices(space, a) for a in enumerate_arches(space)])
    span = model.evaluate_indices(every)["latency_ms_step"]
    assert pred[0] == span.min() and pred[1] == span.max()  # the all-none, the heaviest
    assert pred[1] == pred.max()
    # seeded: the same seed picks the same arches, another seed others
    assert select_arches(space, model, 12, seed=0) == picks
    assert select_arches(space, model, 12, seed=1)[5:] != picks[5:]
    rnd = select_arches(space, model, 5, seed=0, select="random")
    assert all(label == "random" for label, _ in rnd) and len(rnd) == 5
    assert with_geometry(space, frames=2).geometry.frames == 2


def test_resumes_adds_seeds_and_times_each_network_twice(tmp_path: Path) -> None:
    backend = FakeBackend()
    res = _run(tmp_path, backend)
    assert len(res.records) == 6 and len(backend.networks) == 12
    # pass 1 measures memory, pass 2 (reverse order) only time
    first, second = backend.networks[:6], backend.networks[6:]
    assert all(mem for _, mem in first) and not any(mem for _, mem in second)
    assert [a for a, _ in second] == [a for a, _ in reversed(first)]
    ceiling = res.stats["ceiling: pass 2 vs pass 1"]
    assert ceiling["within_10pct"] == 1.0 and ceiling["kendall_tau"] == pytest.approx(1.0)
    assert (
        "latency (rows + network rows)" in res.stats and "peak memory (rows + network)" in res.stats
    )
    assert 0.0 <= res.temporal_share["min"] <= res.temporal_share["max"] < 1.0
    # the same command again: nothing to measure
    again = FakeBackend()
    assert len(_run(tmp_path, again).records) == 6 and again.networks == []
    # a crash mid-line: that measurement is redone, the others kept
    cache = tmp_path / "measurements.csv"
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
    redo = FakeBackend()
    _run(tmp_path, redo)
    assert len(redo.networks) == 1
    # another seed in the same folder adds its arches (the reference ones are already there)
    more = FakeBackend()
    res2 = _run(tmp_path, more, seed=1, samples=9)
    assert 6 < len(res2.records) <= 9 + 6 and len(more.networks) == 2 * (len(res2.records) - 6)
    import json

    sel = json.loads((tmp_path / "selection.json").read_text())
    runs = sel["runs"]
    assert [r["seed"] for r in runs] == [0, 0, 0, 1]
    # the second piece timed its own table right before its networks and is predicted from it
    assert [r["table"] for r in runs] == ["table"] * 3 + ["table-stratified-seed1"]
    assert (tmp_path / "table-stratified-seed1" / "table.csv").is_file()
    by_seed = {(a["seed"], a["table"]) for a in sel["arches"]}
    assert by_seed == {(0, "table"), (1, "table-stratified-seed1")}
    assert {r["table"] for r in res2.records} == {"table", "table-stratified-seed1"}


def res_arches(folder: Path) -> list[dict[str, Any]]:
    import json

    return list(json.loads((folder / "selection.json").read_text())["arches"])


def test_each_piece_is_predicted_from_its_own_table(tmp_path: Path) -> None:
    """A machine 10 % slower on the second piece's day: the piece's own table moves with its
    networks, so its predictions stay exact and the pooled ranking is not reordered."""

    class Slower(FakeBackend):
        def measure(self, row: Any, built: Any, device: Any, protocol: Any) -> Any:
            out = super().measure(row, built, device, protocol)
            return replace(out, latency_ms_p10=out.latency_ms_p10 * 1.1,
                           latency_ms_p50=out.latency_ms_p50 * 1.1,
                           latency_ms_p90=out.latency_ms_p90 * 1.1)  # fmt: skip

    from nas.cost import CostModel, Table
    from nas.space import arch_from_indices, load_space, with_geometry
    from profilers import DEFAULT_VALIDATION_GEOMETRY

    first = _run(tmp_path, FakeBackend(), samples=5, passes=1)
    p1 = {r["arch_id"]: r["predicted_ms"] for r in first.records}
    res = _run(tmp_path, Slower(), seed=1, samples=10, passes=1)
    geo = DEFAULT_VALIDATION_GEOMETRY.merged(DEFAULT_VALIDATION_GEOMETRY.coerce(SMALL))
    vspace = with_geometry(replace(load_space(TINY), pipeline=None), **geo.to_dict())
    old = CostModel(vspace, Table.load(tmp_path / "table"))  # the first piece's table
    new = [r for r in res.records if r["seed"] == 1]
    assert new and all(r["table"] == "table-stratified-seed1" for r in new)
    for r in res.records:
        if r["seed"] == 0:  # the first piece keeps its own table
            assert r["predicted_ms"] == pytest.approx(p1[r["arch_id"]])
            continue
        idx = next(a["indices"] for a in res_arches(tmp_path) if a["arch_id"] == r["arch_id"])
        was = old.evaluate(arch_from_indices(vspace, idx)).latency_ms_step
        assert r["predicted_ms"] == pytest.approx(was * 1.1, rel=1e-4)  # the CSV rounds
    # a resumed piece keeps its table: nothing is timed again
    again = FakeBackend()
    _run(tmp_path, again, seed=1, samples=10, passes=1)
    assert again.networks == []


def test_a_folder_holds_one_geometry(tmp_path: Path) -> None:
    from nas.errors import NasError

    _run(tmp_path, FakeBackend(), samples=3, passes=1)
    with pytest.raises(NasError, match="another geometry"):
        _run(tmp_path, FakeBackend(), samples=3, geometry={**SMALL, "frames": 4})


def test_combine_reports_each_geometry(tmp_path: Path) -> None:
    from profilers import combine_runs

    _run(tmp_path / "a", FakeBackend(), samples=4, passes=1)
    _run(tmp_path / "b", FakeBackend(), samples=5, passes=1, geometry={**SMALL, "frames": 4})
    out = combine_runs([tmp_path / "a", tmp_path / "b"])
    assert len(out) == 3 and "all geometries" in out
    geos = [g for g in out if g != "all geometries"]
    assert {int(out[g]["latency (rows + network rows)"]["n"]) for g in geos} == {4, 5}
    every = out["all geometries"]["latency (rows + network rows)"]
    assert every["n"] == 9 and math.isnan(every["kendall_tau"])


def test_statistics_and_the_bootstrap_interval() -> None:
    import numpy as np

    from profilers import bootstrap_tau, summarize

    meas = np.arange(1.0, 21.0)
    lo, hi = bootstrap_tau(meas * 1.05, meas)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = meas + rng.normal(0, 4, 20)
    lo, hi = bootstrap_tau(noisy, meas)
    assert -1 <= lo < hi <= 1 and hi - lo > 0.1
    records = [
        {"predicted_ms": 1.05 * m, "predicted_rows_ms": 1.3 * m, "measured_ms": m,
         "predicted_mem_mb": 10.0, "measured_mem_mb": "", "measured_ms_pass1": m,
         "measured_ms_pass2": m * 1.01}
        for m in meas
    ]  # fmt: skip
    stats = summarize(records)
    assert stats["latency (rows + network rows)"]["within_10pct"] == 1.0
    assert stats["latency (rows only)"]["within_10pct"] == 0.0
    assert stats["latency (rows only)"]["bias_pct"] == pytest.approx(30.0)
    assert "peak memory (rows + network)" not in stats  # no measured memory
    assert stats["ceiling: pass 2 vs pass 1"]["kendall_tau"] == pytest.approx(1.0)


def test_the_residual_by_op_finds_an_op_the_rows_underestimate() -> None:
    import numpy as np

    from profilers import residual_by_op

    rng = np.random.default_rng(1)
    records = []
    for _ in range(12):
        a, c = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        pred = 100.0 + 10 * a + 5 * c
        meas = pred + 3.0 + 2.0 * a  # attn1d costs 2 ms more per slot in the network
        records.append({"ops": f"attn1d:{a};conv1d:{c};none:{12 - a - c}",
                        "predicted_ms": pred, "measured_ms": meas})  # fmt: skip
    r = residual_by_op(records)
    assert r is not None and set(r) == {"attn1d", "conv1d", "fixed"}
    assert r["attn1d"] == pytest.approx(2.0) and r["conv1d"] == pytest.approx(0.0, abs=1e-9)
    assert r["fixed"] == pytest.approx(3.0)
    assert residual_by_op(records[:3]) is None  # too few arches for three unknowns


def test_kendall_by_piece_keeps_the_drift_between_pieces_out() -> None:
    from profilers import kendall_by_piece

    # two pieces ranked perfectly within themselves; the second timed 30 % slower (drift),
    # which reorders pairs across the pieces when pooled
    first = [{"seed": 0, "predicted_ms": p, "measured_ms": p} for p in (100.0, 110.0, 120.0)]
    second = [{"seed": 1, "predicted_ms": p, "measured_ms": p * 1.3} for p in (95, 105, 115)]
    pieces = kendall_by_piece(first + second)
    assert pieces == {"0": (3, pytest.approx(1.0)), "1": (3, pytest.approx(1.0))}
    assert kendall_by_piece(first + second[:2]) == {"0": (3, pytest.approx(1.0))}  # too few
