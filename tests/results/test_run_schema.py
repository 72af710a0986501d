"""The run-dir schema on its own: records, run.json, the front of records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.errors import NasError
from nas.results import (
    Constraint,
    Objective,
    RunInfo,
    RunSettings,
    TrialRecord,
    front_of,
    read_trials,
    write_trials,
)

LAT = Objective("latency", "latency_s_video", "s")
MEM = Objective("memory", "peak_mem_mb", "MB")


def _rec(n: int, arch: str, lat: float | None, mem: float, **kw: object) -> TrialRecord:
    base: dict[str, object] = dict(
        number=n,
        state="COMPLETE",
        arch_id=arch,
        choices={"g0": "none", "g1": "conv1d(depthwise=true,kernel=3)"},
        latency_s_video=lat,
        latency_ms_step=None if lat is None else lat * 250.0,
        peak_mem_mb=mem,
        weights_mb=mem / 2,
        quality=None,
        quality_status="",
        feasible=True,
        slacks={"latency_s": -0.5},
        proxy_s=None,
        cached_from=None,
        duration_s=0.125,
        error="",
    )
    base.update(kw)
    return TrialRecord(**base)  # type: ignore[arg-type]


def test_trials_csv_round_trips(tmp_path: Path) -> None:
    records = [
        _rec(0, "a", 0.5, 10.0),
        _rec(1, "b", None, 12.0, state="FAIL", feasible=None, slacks={}, error="boom, x"),
        _rec(2, "a", 0.5, 10.0, quality=0.75, quality_status="cached", cached_from=0),
    ]
    header = write_trials(tmp_path / "trials.csv", records)
    assert header[:3] == ["trial", "state", "arch_id"] and "slack_frac:latency_s" in header
    assert read_trials(tmp_path / "trials.csv") == records


def test_slack_columns_say_fraction_and_old_names_are_still_read(tmp_path: Path) -> None:
    write_trials(tmp_path / "trials.csv", [_rec(0, "a", 0.5, 10.0)])
    text = (tmp_path / "trials.csv").read_text()
    assert "slack_frac:latency_s" in text and ",slack:" not in text
    # a trials.csv written before the rename: its slack:<name> columns are the same slacks
    (tmp_path / "trials.csv").write_text(text.replace("slack_frac:", "slack:"))
    (old,) = read_trials(tmp_path / "trials.csv")
    assert old.slacks == {"latency_s": -0.5}


def test_value_names_only_metric_columns() -> None:
    r = _rec(0, "a", 0.5, 10.0)
    assert r.value("peak_mem_mb") == 10.0
    with pytest.raises(KeyError, match="not a metric column"):
        r.value("arch_id")


def test_front_of_keeps_one_trial_per_arch_and_respects_direction() -> None:
    records = [
        _rec(0, "a", 1.0, 30.0),
        _rec(1, "b", 2.0, 20.0),
        _rec(2, "c", 3.0, 10.0),
        _rec(3, "d", 3.0, 40.0),  # dominated
        _rec(4, "a", 1.0, 30.0),  # the same arch again
        _rec(5, "e", 0.1, 1.0, feasible=False),  # infeasible: never on the front
        _rec(6, "f", 0.1, 1.0, state="PRUNED"),
    ]
    assert [r.number for r in front_of(records, [LAT, MEM])] == [0, 1, 2]
    # maximising memory instead: d (most memory at the worst latency) joins, b and c leave
    more = Objective("memory", "peak_mem_mb", "MB", direction="maximize")
    assert [r.arch_id for r in front_of(records, [LAT, more])] == ["a", "d"]


def _settings() -> RunSettings:
    return RunSettings(
        device="cpu-ort",
        table=None,
        quantile="p50",
        sampler="nsga2",
        sampler_options={"population_size": 16, "mutation_prob": None},
        proxy="none",
        latency="video",
        seed=0,
        objectives=(LAT, MEM),
        constraints=(Constraint("latency_s", "latency_s_video", 4.0, "s"),),
    )


def test_run_json_round_trips_with_settings(tmp_path: Path) -> None:
    info = RunInfo(tmp_path, "id", "n", "s", "journal:study.journal", 5, "t", "running", "x")
    info.save(settings=_settings())
    back = RunInfo.load(tmp_path)
    assert back.settings == _settings()
    assert back.settings.constraint("latency_s_video") is not None
    assert back.settings.constraint("peak_mem_mb") is None
    assert back.require_settings().constraints[0].slack_column == "slack_frac:latency_s"
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_old_or_broken_run_json_says_what_to_do(tmp_path: Path) -> None:
    info = RunInfo(tmp_path, "id", "n", "s", "journal:study.journal", 5, "t", "running", "x")
    info.save()
    with pytest.raises(NasError, match=r"no settings .* nas report"):
        RunInfo.load(tmp_path).require_settings()
    raw = json.loads((tmp_path / "run.json").read_text())
    del raw["identity"]
    (tmp_path / "run.json").write_text(json.dumps(raw))
    with pytest.raises(NasError, match=r"unreadable run\.json"):
        RunInfo.load(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(NasError, match=r"unreadable run\.json"):
        RunInfo.load(tmp_path)


def test_ops_summary_names_the_decode_choice_apart() -> None:
    from nas.results import ops_summary

    assert ops_summary(["none", "conv1d(kernel=3)", "conv1d(kernel=5)", "tiny/chunk4"]) == (
        "conv1dx2; decoder tiny/chunk4"
    )
    assert ops_summary(["none", "sd_vae/chunk1"]) == "all none; decoder sd_vae/chunk1"
    assert ops_summary(["none"]) == "all none"
