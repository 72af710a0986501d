"""Malformed search input, as a user would type it: one line, exit code 2, nothing changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _search_helpers import TINY, tiny_overrides

from nas.cli import main


def _tree(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# (id, override or flags after `nas search --space TINY <table overrides>`, expected text)
OVERRIDES = [
    ("typo-key", ["search.trails=5"], "unknown config key 'search.trails'"),
    ("unknown-sampler", ["sampler=cmaes"], "unknown sampler 'cmaes'"),
    ("unknown-device", ["device=nokia"], "unknown device 'nokia'"),
    ("zero-trials", ["search.trials=0"], "search.trials=0 must be an integer >= 1"),
    ("word-trials", ["search.trials=many"], "must be an integer >= 1"),
    ("negative-budget", ["constraints.latency_s=-1"], "constraints.latency_s=-1 must be > 0"),
    ("nan-budget", ["constraints.latency_s=nan"], "is not a number"),
    ("bad-objective", ["search.objectives=[latency,speed]"], "choose one or more of"),
    ("quality-no-proxy", ["proxy=none"], "search.objectives has quality but proxy=none"),
    ("bad-pruner", ["proxy.pruner=always"], "proxy.pruner='always'"),
    ("bad-latency", ["search.latency=frame"], "search.latency='frame'"),
    ("bad-quantile", ["device.quantile=p99"], "device.quantile='p99'"),
    ("hydra-dir", ["hydra.run.dir=elsewhere"], "does not use Hydra's own settings"),
    ("crossover", ["sampler.crossover_prob=5"], "must be <= 1"),
    ("multivariate", ["sampler=tpe", "sampler.multivariate=maybe"], "must be true or false"),
    ("not-key-value", ["trials"], "is not key=value"),
    ("bad-proxy-option", ["proxy=params", "+proxy.options.nope=1"], "has no option(s)"),
    ("missing-table", ["device.table=/nonexistent/tables"], "no table for device 'cpu-ort'"),
]


@pytest.mark.parametrize(("name", "args", "expected"), OVERRIDES, ids=[c[0] for c in OVERRIDES])
def test_bad_search_arguments(
    name: str,
    args: list[str],
    expected: str,
    in_tmp: Path,
    tiny_tables: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _tree(in_tmp)
    argv = ["search", "--space", TINY, "--no-progress", *tiny_overrides(tiny_tables), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert "Traceback" not in err
    runs = in_tmp / "experiments" / "runs"
    # a start that fails after its run dir exists says so there; nothing else is written
    for d in runs.glob("*") if runs.is_dir() else []:
        assert json.loads((d / "run.json").read_text())["status"] == "failed", name
    if not runs.is_dir():
        assert _tree(in_tmp) == before


@pytest.fixture()
def a_run(in_tmp: Path, tiny_tables: Path) -> Path:
    argv = ["search", "--space", TINY, "--no-progress", *tiny_overrides(tiny_tables)]
    assert main([*argv, "experiment=cost_only", "search.trials=3"]) == 0
    (run,) = (in_tmp / "experiments" / "runs").iterdir()
    return run


def _spoil(run: Path, name: str) -> None:
    if name == "run-json-list":
        (run / "run.json").write_text("[]")
    elif name == "run-json-torn":
        (run / "run.json").write_text((run / "run.json").read_text()[:40])
    elif name == "run-json-bytes":
        (run / "run.json").write_bytes(b"\xff\xfe{")
    elif name == "config-torn":
        (run / "config.yaml").write_text("search: [unclosed")
    elif name == "config-list":
        (run / "config.yaml").write_text("- 1\n- 2\n")
    elif name == "no-space":
        (run / "space.yaml").unlink()
    elif name == "no-run-json":
        (run / "run.json").unlink()


RUN_DIRS = [
    ("run-json-list", "unreadable run.json"),
    ("run-json-torn", "unreadable run.json"),
    ("run-json-bytes", "unreadable run.json"),
    ("config-torn", "unreadable config"),
    ("config-list", "unreadable config"),
    ("no-space", "no space.yaml"),
    ("no-run-json", "is not a search run dir"),
]


@pytest.mark.parametrize(("name", "expected"), RUN_DIRS, ids=[c[0] for c in RUN_DIRS])
def test_bad_run_dirs_for_report(
    name: str, expected: str, a_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spoil(a_run, name)
    capsys.readouterr()
    before = _tree(a_run)
    assert main(["report", str(a_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert expected in err, err
    assert _tree(a_run) == before


def test_report_of_a_file_or_nothing(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "f").write_text("x")
    for target in (in_tmp / "f", in_tmp / "missing"):
        assert main(["report", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_resume_of_something_else(
    a_run: Path, tiny_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["search", "--space", TINY, "--no-progress", *tiny_overrides(tiny_tables)]
    assert main([*argv, "--resume", str(a_run), "search.seed=9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was made with another config or space" in err and len(err.splitlines()) == 1
