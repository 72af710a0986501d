"""Bundled spaces and backbones must work from an installed wheel, not only a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.mark.slow
def test_wheel_ships_data_and_runs_from_elsewhere(root: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(root),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "nas/_data/search_spaces/temporal.yaml",
        "nas/_data/search_spaces/tiny.yaml",
        "nas/_data/backbones/sd15.json",
        "nas/_data/backbones/pruned.json",
        "nas/_data/backbones/tiny.json",
        "nas/py.typed",
        "profilers/__init__.py",
        "profilers/devices/iphone16pm.yaml",
        "nas/_data/latency_tables/iphone16pm/table.csv",
        "nas/_data/latency_tables/iphone16pm/meta.json",
        "nas/_data/latency_tables/cpu-ort/table.csv",
    ):
        assert needed in names, needed
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import nas, sys; print(nas.__file__); from nas.cli import main; "
            "sys.exit(main(['space', '--space', 'search_spaces/temporal.yaml', '--json']))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(site))  # the installed copy, not the checkout
    assert '"size": 15045919506432' in out.stdout
    # the shipped tables and devices are found from the installed copy too
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from nas.cost import CostModel, Table, find_table; from nas.space import load_space;"
            "from profilers import get_device; get_device('iphone16pm');"
            "m = CostModel(load_space('temporal'), Table.load(find_table('iphone16pm')));"
            "print(find_table('iphone16pm'), m.sources)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(site)) and "('estimated',)" in out.stdout
