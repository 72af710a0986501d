"""The profiling runner with a fake backend: resume, force, failed rows, budget, interrupt."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from nas.cost import CostModel, RowSpec, Table, TableRow, rows_for_space
from nas.errors import NasError
from nas.space import load_space
from profilers import (
    Device,
    RowModule,
    TimingProtocol,
    get_device,
    import_rows,
    profile_space,
    rows_to_profile,
)

FAST = TimingProtocol(warmup=0, min_repeats=1, max_repeats=1, memory=False)


class FakeProfiler:
    name = "fake"

    def __init__(self, fail_ops: tuple[str, ...] = (), interrupt_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_ops = fail_ops
        self.interrupt_at = interrupt_at
        self.version = "1"

    def versions(self) -> dict[str, str]:
        return {"fake": self.version}

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(row.key)
        if row.op in self.fail_ops:
            raise RuntimeError(f"cannot convert {row.op}")
        n = float(len(self.calls))
        return TableRow(row, "measured", n, n, n, 1, peak_mem_mb=1.0, weight_bytes=0)


@pytest.fixture()
def space():  # type: ignore[no-untyped-def]
    return load_space("search_spaces/tiny.yaml")


@pytest.fixture()
def device() -> Device:
    return get_device("cpu-ort")


def test_builds_a_complete_table_and_resumes(space, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prof = FakeProfiler()
    rep = profile_space(space, device, tmp_path, protocol=FAST, profiler=prof, progress=False)
    needed = rows_to_profile(space, device)  # rows_for_space's and the unet reference network
    assert [r.key for r in needed[:-1]] == [r.key for r in rows_for_space(space, "fp32")]
    assert len(rep.done) == len(needed) == len(prof.calls) and not rep.failed
    table = Table.load(tmp_path)
    assert set(table.rows) == {r.key for r in needed}
    assert table.meta["device"]["name"] == "cpu-ort"
    assert table.meta["versions"] == {"fake": "1"} and "git_revision" in table.meta
    assert any(s.startswith("tiny@") for s in table.meta["spaces"])
    CostModel(space, table)  # complete: no missing rows
    # resume: nothing to do
    prof2 = FakeProfiler()
    rep2 = profile_space(space, device, tmp_path, protocol=FAST, profiler=prof2, progress=False)
    assert prof2.calls == [] and rep2.kept == len(needed)
    # --force re-measures everything
    prof3 = FakeProfiler()
    profile_space(
        space, device, tmp_path, protocol=FAST, profiler=prof3, progress=False, force=True
    )
    assert len(prof3.calls) == len(needed)
    # a tool version change makes every row stale
    prof4 = FakeProfiler()
    prof4.version = "2"
    profile_space(space, device, tmp_path, protocol=FAST, profiler=prof4, progress=False)
    assert len(prof4.calls) == len(needed)


def test_interrupt_keeps_finished_rows_and_resume_does_the_rest(
    space, device, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    prof = FakeProfiler(interrupt_at=5)
    rep = profile_space(space, device, tmp_path, protocol=FAST, profiler=prof, progress=False)
    assert rep.interrupted and len(rep.done) == 5
    saved = Table.load(tmp_path)  # a complete, parseable file with the 5 rows
    assert set(saved.rows) == set(prof.calls)
    prof2 = FakeProfiler()
    profile_space(space, device, tmp_path, protocol=FAST, profiler=prof2, progress=False)
    assert not set(prof2.calls) & set(prof.calls)  # finished rows not re-measured
    assert len(prof.calls) + len(prof2.calls) == len(rows_to_profile(space, device))
    assert not list(tmp_path.glob(".table.csv.*"))  # no temporary files left behind


def test_failed_rows_are_recorded_and_retried(space, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prof = FakeProfiler(fail_ops=("attn3d",))
    rep = profile_space(space, device, tmp_path, protocol=FAST, profiler=prof, progress=False)
    assert rep.failed and all(k.startswith("attn3d") for k in rep.failed)
    table = Table.load(tmp_path)
    row = table.rows[rep.failed[0]]
    assert row.source == "failed" and "RuntimeError: cannot convert attn3d" in row.reason
    with pytest.raises(NasError, match="lacks 1 row"):
        CostModel(space, table)
    prof2 = FakeProfiler()
    profile_space(space, device, tmp_path, protocol=FAST, profiler=prof2, progress=False)
    assert prof2.calls == rep.failed  # only the failed rows again


def test_rows_over_the_memory_budget_are_not_run(space, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small = replace(device, memory_budget_mb=0.05)  # 50 KiB: only the smallest rows fit
    prof = FakeProfiler()
    rep = profile_space(space, small, tmp_path, protocol=FAST, profiler=prof, progress=False)
    assert rep.failed and len(prof.calls) < len(rows_for_space(space, "fp32"))
    reason = Table.load(tmp_path).rows[rep.failed[0]].reason
    assert (
        "exceeds the device budget 0 MB; not run" in reason or "exceeds the device budget" in reason
    )


def test_core_ml_rows_over_the_budget_are_priced(space, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    coreml = replace(device, backend="coreml", memory_budget_mb=0.05)
    prof = FakeProfiler()
    rep = profile_space(space, coreml, tmp_path, protocol=FAST, profiler=prof, progress=False)
    assert not rep.failed and len(prof.calls) == len(rows_for_space(space, "fp32"))


def test_a_table_of_another_device_is_refused(space, device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profile_space(
        space, device, tmp_path, protocol=FAST, profiler=FakeProfiler(), progress=False, limit=1
    )
    with pytest.raises(NasError, match="holds a table for device 'cpu-ort'"):
        profile_space(
            space,
            get_device("torch-cpu"),
            tmp_path,
            protocol=FAST,
            profiler=FakeProfiler(),
            progress=False,
        )


def test_import_with_provenance(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dev = get_device("iphone16pm")
    spec = rows_for_space(space, "fp16")[0]
    lab = tmp_path / "lab.csv"
    with lab.open("w", newline="") as f:  # keys hold commas: real CSV quoting
        w = csv.writer(f)
        w.writerow(["key", "latency_ms_p50", "latency_ms_p90", "source", "note"])
        w.writerow([spec.key, "1.5", "2.0", "published", "Xcode performance report"])
    table = Table()
    keys = import_rows(table, lab, dev)
    assert keys == [spec.key]
    row = table.rows[spec.key]
    assert row.source == "published" and row.latency_ms_p10 == 1.5 and row.latency_ms_p90 == 2.0
    assert row.reason == "imported from lab.csv: Xcode performance report"
    bad = tmp_path / "bad.csv"
    bad.write_text(f'key,latency_ms_p50\n"{spec.key}",fast\n')
    with pytest.raises(NasError, match=r"bad.csv:2: latency_ms_p50: 'fast' is not a number"):
        import_rows(Table(), bad, dev)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f'key,latency_ms_p50\n"{spec.key.replace("fp16", "fp32")}",1\n')
    with pytest.raises(NasError, match="precision fp32 but device iphone16pm runs fp16"):
        import_rows(Table(), wrong, dev)
