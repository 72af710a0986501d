"""An arch written for another version of its space: one line naming both spaces and hashes;
--force proceeds (nas export, nas train). One from another space entirely says which."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.space import load_space, sample_arch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def stale_arch(tmp_path: Path) -> tuple[Path, str]:
    """An arch of the tiny space whose file carries another hash (an older version)."""
    space = load_space("tiny")
    arch = sample_arch(space, np.random.default_rng(0))
    path = tmp_path / "a.yaml"
    arch.save(path)
    path.write_text(path.read_text().replace(space.hash, "0123456789ab"))
    return path, space.hash


def _one_line(err: str, prefix: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


@pytest.mark.parametrize("command", ["export", "train"])
def test_another_version_of_the_space_needs_force(
    command: str,
    stale_arch: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, digest = stale_arch
    out = tmp_path / ("a.onnx" if command == "export" else "run")
    args = [command, "--arch", str(path), "--out", str(out)]
    args += ["--format", "onnx"] if command == "export" else ["--steps", "1", "--no-progress"]
    assert main(args) == 2
    line = _one_line(capsys.readouterr().err, "error: ")
    assert "space 'tiny' (hash 0123456789ab), not 'tiny' (hash " + digest + ")" in line
    assert "--force" in line
    assert not out.exists()  # refused before any work
    assert main([*args, "--force"]) == 0
    warning = _one_line(capsys.readouterr().err, "warning: ")
    assert "0123456789ab" in warning and digest in warning and "--force" in warning
    assert out.exists()


def test_an_arch_of_another_space_names_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = load_space("tiny")
    temporal = load_space("temporal")
    sample_arch(tiny, np.random.default_rng(0)).save(tmp_path / "a.yaml")
    args = ["export", "--arch", str(tmp_path / "a.yaml"), "--space", "temporal"]
    for extra in ([], ["--force"]):  # --force cannot make choices fit another space
        assert main([*args, "--format", "onnx", *extra]) == 2
        line = _one_line(capsys.readouterr().err, "error: ")
        assert f"space 'tiny', hash {tiny.hash}" in line
        assert f"'temporal', hash {temporal.hash}" in line
