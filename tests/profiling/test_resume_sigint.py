"""A real `nas profile` interrupted with Ctrl-C (SIGINT) mid-run, then resumed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cost import Table
from nas.space import load_space
from profilers import get_device, rows_to_profile


@pytest.mark.slow
def test_ctrl_c_keeps_finished_rows_and_rerun_resumes(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "nas",
        "profile",
        "--device",
        "cpu-ort",
        "--space",
        "search_spaces/tiny.yaml",
        "--out",
        str(tmp_path),
        "--quick",
        "--no-memory",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    csv_path = tmp_path / "table.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if csv_path.is_file() and len(csv_path.read_text().splitlines()) >= 4:  # 3 rows done
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    first = Table.load(tmp_path)  # never half-written: it parses
    total = len(rows_to_profile(load_space("search_spaces/tiny.yaml"), get_device("cpu-ort")))
    assert 3 <= len(first.rows) < total
    stamps = {k: r.measured_at for k, r in first.rows.items()}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{len(first.rows)} kept" in out.stdout
    second = Table.load(tmp_path)
    assert len(second.rows) == total
    for k, stamp in stamps.items():  # finished rows were not measured again
        assert second.rows[k].measured_at == stamp
