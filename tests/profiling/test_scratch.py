"""A killed `nas profile` leaves nothing behind: no scratch folder for long, no probe child."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from profilers import scratch_dir


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_scratch_dirs_of_dead_processes_are_swept() -> None:
    stale = Path(tempfile.mkdtemp(prefix=f"nas-test-{_dead_pid()}-"))
    (stale / "model.onnx").write_bytes(b"x")
    mine_alive = Path(tempfile.mkdtemp(prefix=f"nas-test-{os.getppid()}-"))  # a live process
    try:
        with scratch_dir("nas-test-") as d:
            assert d.is_dir() and d.name.startswith(f"nas-test-{os.getpid()}-")
            assert not stale.exists() and mine_alive.exists()
        assert not d.exists()
    finally:
        mine_alive.rmdir()


def test_a_memory_probe_stops_when_its_parent_is_killed() -> None:
    probe = Path(__file__).resolve().parents[2] / "profilers" / "_memprobe.py"
    child = (  # the probe script's module alone, as `nas profile` runs it (no package import)
        "import importlib.util as u; "
        f"s = u.spec_from_file_location('probe', {str(probe)!r}); m = u.module_from_spec(s); "
        "s.loader.exec_module(m); m._exit_with_parent(); import time; time.sleep(60)"
    )
    parent = (
        "import subprocess, sys, os; os.environ['NAS_PROBE_PARENT'] = str(os.getpid()); "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=-3, stderr=-3); "
        "print(p.pid, flush=True); import time; time.sleep(1.5); os._exit(0)"  # dies, not waiting
    )
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])

    def state() -> str:  # "" once gone; "Z" once dead but not yet reaped by its new parent
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return ""

    deadline = time.monotonic() + 10
    while state() not in ("", "Z") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state() in ("", "Z"), f"probe {pid} still running ({state()})"
