"""`nas profile import` of each device format: CSV, MLModelBenchmarker JSON, Xcode's report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nas.cost import RowSpec, Table, TableRow
from nas.errors import NasError
from profilers import get_device, import_rows

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _iphone():  # type: ignore[no-untyped-def]
    return get_device(str(ROOT / "profilers" / "devices" / "iphone16pm.yaml"))


def _estimated(key: str) -> TableRow:
    spec = RowSpec("attn1d", "ffn_ratio=0,heads=8,pos=sinusoidal,groups=32", 1024, 16, 9, 16, 1,
                   "fp16")  # fmt: skip
    assert spec.key == key
    return TableRow(spec, "estimated", 5.0, 6.0, 7.0, peak_mem_mb=55.0, weight_bytes=1234,
                    flops=999, reason="roofline estimate")  # fmt: skip


def test_benchmarker_json_replaces_the_estimate_with_a_measured_row() -> None:
    data = json.loads((EXAMPLES / "mlmodel_benchmarker.json").read_text())
    key = data["rows"][0]["key"]
    table = Table({"device": {"name": "iphone16pm"}})
    table.put(_estimated(key))
    assert import_rows(table, EXAMPLES / "mlmodel_benchmarker.json", _iphone()) == [key]
    r = table.rows[key]
    assert r.source == "measured" and r.repeats == 10
    assert r.latency_ms_p50 == pytest.approx(8.005)  # median of the 10 samples
    assert r.latency_ms_p10 is not None and r.latency_ms_p90 is not None
    assert 7.88 <= r.latency_ms_p10 < r.latency_ms_p50 < r.latency_ms_p90 <= 8.40
    assert r.compute_unit == "ANE 91%"  # (3.1 + 4.2) / 8.0 of the op time
    assert "MLModelBenchmarker (iPhone 16 Pro Max, iOS 18.2); load 212.0 ms" in r.reason
    # the tool measures no peak memory: the estimate's peak, weights and FLOPs stay
    assert (r.peak_mem_mb, r.weight_bytes, r.flops) == (55.0, 1234, 999)
    assert table.meta["imports"][-1]["rows"] == 1


def test_xcode_report_json_gives_the_median_and_the_op_mapping() -> None:
    table = Table({"device": {"name": "iphone16pm"}})
    keys = import_rows(table, EXAMPLES / "xcode_performance_report.json", _iphone())
    r = table.rows[keys[0]]
    assert r.source == "measured"
    assert r.latency_ms_p10 == r.latency_ms_p50 == r.latency_ms_p90 == pytest.approx(3.62)
    assert r.compute_unit == "ANE 93% of ops"  # 14 of 15
    assert "Xcode performance report" in r.reason and "load 48.0 ms" in r.reason
    assert r.peak_mem_mb is None  # no estimate to keep


def test_lab_csv_example_imports() -> None:
    table = Table({"device": {"name": "iphone16pm"}})
    keys = import_rows(table, EXAMPLES / "lab.csv", _iphone())
    assert table.rows[keys[0]].latency_ms_p50 == 2.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="instruments"), "format: 'instruments' is not one of"),
        (lambda d: d["rows"][0]["predict"].update(samples=[]), "predict.samples: expected"),
        (lambda d: d["rows"][0]["predict"].update(samples=[1.0, -2.0]), "is not a positive"),
        (lambda d: d["rows"][0].update(key="conv[]@1x1"), "is not a row key"),
        (lambda d: d["rows"].append(dict(d["rows"][0])), "duplicate row"),
        (
            lambda d: d["rows"][0].update(key=d["rows"][0]["key"].replace("fp16", "fp32")),
            "precision fp32 but iphone16pm runs fp16",
        ),
    ],
)
def test_malformed_benchmarker_json_is_one_error_and_changes_nothing(
    tmp_path: Path,
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    data = json.loads((EXAMPLES / "mlmodel_benchmarker.json").read_text())
    edit(data)
    f = tmp_path / "bench.json"
    f.write_text(json.dumps(data))
    table = Table({"device": {"name": "iphone16pm"}})
    with pytest.raises(NasError, match=message):
        import_rows(table, f, _iphone())
    assert not table.rows


def test_cli_imports_json_into_a_table_folder(tmp_path: Path) -> None:
    from nas.cli import main

    shutil.copy(EXAMPLES / "xcode_performance_report.json", tmp_path / "x.json")
    out = tmp_path / "t"
    assert main(["profile", "import", "--device", "iphone16pm", "--out", str(out),
                 str(tmp_path / "x.json")]) == 0  # fmt: skip
    assert Table.load(out).rows
