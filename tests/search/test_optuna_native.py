"""A run's study read with plain Optuna, as optuna-dashboard reads it: metric names and
directions on the study, constraint values in the ``constraints`` system attribute (the list
Optuna's samplers write and optuna-dashboard shows), and the budgets' names and units."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
from _search_helpers import TINY, tiny_overrides
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas.results import METRICS, RunInfo
from nas.search import compose_config, run_search


def _search(tables: Path, *overrides: str):  # type: ignore[no-untyped-def]
    cfg, raw = compose_config(tiny_overrides(tables, *overrides))
    return run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)


def test_plain_optuna_reads_names_directions_and_constraints(
    in_tmp: Path, tiny_tables: Path
) -> None:
    res = _search(
        tiny_tables,
        "experiment=cost_only",
        "search.trials=24",
        "constraints.latency_s=0.42",
        "constraints.memory_mb=60",
    )
    info = RunInfo.load(res.run_dir)
    storage = JournalStorage(JournalFileBackend(str(res.run_dir / "study.journal")))
    study = optuna.load_study(study_name=info.study, storage=storage)

    assert study.metric_names == ["latency (s)", "memory (MB)"]
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert [o["unit"] for o in study.user_attrs["objectives"]] == ["s", "MB"]
    budgets = study.user_attrs["constraints"]
    assert [(c["name"], c["column"], c["budget"], c["unit"]) for c in budgets] == [
        ("latency_s", "latency_s_video", 0.42, "s"),
        ("memory_mb", "peak_mem_mb", 60.0, "MB"),
    ]
    assert study.user_attrs["units"] == METRICS

    with (res.run_dir / "trials.csv").open(encoding="utf-8") as f:
        rows = {int(r["trial"]): r for r in csv.DictReader(f)}
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 24
    seen_infeasible = False
    for t in trials:
        # the list optuna-dashboard shows, in the budgets' order; Optuna reads it as "0", "1"
        values = t.system_attrs["constraints"]
        assert isinstance(values, list) and len(values) == 2
        assert t.constraints == {"0": values[0], "1": values[1]}
        lat = float(rows[t.number]["latency_s_video"])
        mem = float(rows[t.number]["peak_mem_mb"])
        assert values[0] == pytest.approx((lat - 0.42) / 0.42)
        assert values[1] == pytest.approx((mem - 60.0) / 60.0)
        assert (max(values) <= 0) == (rows[t.number]["feasible"] == "true")
        assert not any(k.startswith("constraints:") for k in t.system_attrs)  # no second copy
        seen_infeasible |= max(values) > 0
    assert seen_infeasible  # the budgets bite, so the check above means something
    # Optuna's own Pareto front leaves infeasible trials out: it read the constraints
    best = study.best_trials
    assert best and all(max(t.system_attrs["constraints"]) <= 0 for t in best)


def test_a_run_without_budgets_stores_no_constraints(in_tmp: Path, tiny_tables: Path) -> None:
    res = _search(tiny_tables, "experiment=cost_only", "search.trials=4", "constraints=none")
    info = RunInfo.load(res.run_dir)
    storage = JournalStorage(JournalFileBackend(str(res.run_dir / "study.journal")))
    study = optuna.load_study(study_name=info.study, storage=storage)
    assert study.user_attrs["constraints"] == []
    assert all(t.constraints == {} for t in study.get_trials(deepcopy=False))
