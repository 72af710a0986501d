"""`nas train` as a user runs it (a subprocess), and distributed under torchrun (2 CPU ranks)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.quality import find_checkpoint
from nas.space import sample_arch

TINY = ("--space", "search_spaces/tiny.yaml")


def _nas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def arch_file(tiny_space, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    return sample_arch(tiny_space, np.random.default_rng(0)).save(tmp_path / "arch.yaml")


def test_train_help_teaches_usage(root: Path) -> None:
    out = _nas("train", "--help", cwd=root)
    assert out.returncode == 0
    for needle in ("examples:", "--resume", "--width-mult", "--geometry", "torchrun", "--data"):
        assert needle in out.stdout


@pytest.mark.slow
def test_train_resume_and_refusals(root: Path, arch_file: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    args = ("train", "--arch", str(arch_file), *TINY, "--batch-size", "2", "--log-every", "1",
            "--out", str(out_dir), "--no-progress")  # fmt: skip
    first = _nas(*args, "--steps", "3", cwd=root)
    assert first.returncode == 0, first.stderr
    assert "checkpoints/step_0000003" in first.stdout and "metrics.csv" in first.stdout
    again = _nas(*args, "--steps", "5", cwd=root)
    assert again.returncode == 2 and "--resume" in again.stderr
    assert again.stderr.count("\n") == 1  # one line, no traceback
    more = _nas(*args, "--steps", "5", "--resume", cwd=root)
    assert more.returncode == 0, more.stderr
    assert "steps 3 -> 5" in more.stdout
    assert find_checkpoint(out_dir) == out_dir / "checkpoints" / "step_0000005"
    changed = _nas(*args, "--steps", "6", "--resume", "--lr", "0.5", cwd=root)
    assert changed.returncode == 2 and "lr" in changed.stderr
    fresh = _nas(*args[:-3], "--out", str(tmp_path / "x"), "--resume", cwd=root)
    assert fresh.returncode == 2 and "no checkpoint" in fresh.stderr
    guided = tmp_path / "guided"
    flags = ("--text-dropout", "0.1", "--background", "0", "--steps", "1")
    run = _nas(*args[:-3], "--out", str(guided), "--no-progress", *flags, cwd=root)
    assert run.returncode == 0, run.stderr
    saved = json.loads((guided / "config.json").read_text())["config"]
    assert saved["text_dropout"] == 0.1 and saved["background"] == 0.0
    bad = _nas(*args[:-3], "--out", str(tmp_path / "bad"), "--text-dropout", "1", cwd=root)
    assert bad.returncode == 2 and "text_dropout" in bad.stderr


def _torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(root: Path, arch_file: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "nas", "train",
         "--arch", str(arch_file), *TINY, "--steps", "4", "--batch-size", "2", "--log-every",
         "1", "--checkpoint-every", "2", "--out", str(out_dir), "--no-progress"],
        capture_output=True, text=True, cwd=root, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("trained ") == 1  # rank 0 alone reports
    assert find_checkpoint(out_dir) == out_dir / "checkpoints" / "step_0000004"
    with (out_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    import json

    state = json.loads((out_dir / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["world_size"] == 2
