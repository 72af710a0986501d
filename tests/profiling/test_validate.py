"""nas validate latency end to end on the tiny space (real ONNX Runtime measurements)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

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
    assert "latency (sum of rows)" in out.stdout and "Kendall tau" in out.stdout
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


def test_summarize_fits_overheads_on_the_first_half_only() -> None:
    from profilers import summarize

    # measured = predicted + 10 ms and + 500 MB (a runtime's fixed cost); noise-free
    records = [
        {
            "predicted_ms": 100.0 + i,
            "measured_ms": 110.0 + i,
            "predicted_mem_mb": 1000.0 + 7 * i,
            "measured_mem_mb": 1500.0 + 7 * i,
        }
        for i in range(10)
    ]
    stats, overhead_ms, overhead_mb = summarize(records)
    assert overhead_ms == pytest.approx(10.0) and overhead_mb == pytest.approx(500.0)
    assert stats["latency (sum of rows)"]["within_10pct"] == 1.0  # 10 ms on ~105: < 10 %
    assert stats["peak memory"]["within_10pct"] == 0.0  # 500 MB on ~1000: 50 % off
    held = stats["peak memory + overhead (held out)"]
    assert held["within_10pct"] == 1.0 and held["rmspe_pct"] == pytest.approx(0.0)
    assert held["kendall_tau"] == pytest.approx(1.0)
    # without memory figures there is no memory overhead
    for r in records:
        r["measured_mem_mb"] = None
    assert summarize(records)[2] is None
