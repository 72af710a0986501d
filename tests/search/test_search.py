from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from _search_helpers import (
    TINY,
    run_cli,
    running_search,
    search_cmd,
    subprocess_env,
    tiny_overrides,
)

from nas.results import RunInfo, TrialRecord, non_dominated
from nas.search import compose_config, open_run_study, run_search
from nas.space import load_arch, load_space


def _search(tables: Path, *overrides: str, **kw: object):  # type: ignore[no-untyped-def]
    cfg, raw = compose_config(tiny_overrides(tables, *overrides))
    return run_search(TINY, cfg, raw, progress=False, log=lambda _m: None, **kw)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cost_only_search_writes_complete_consistent_outputs(
    in_tmp: Path, tiny_tables: Path
) -> None:
    res = _search(
        tiny_tables, "experiment=cost_only", "search.trials=40", "constraints.latency_s=0.42"
    )
    d = res.run_dir
    assert d.resolve().parent == in_tmp / "experiments" / "runs"
    for name in (
        "config.yaml",
        "space.yaml",
        "run.json",
        "study.journal",
        "trials.csv",
        "pareto.csv",
    ):
        assert (d / name).is_file(), name
    assert not (d / "dashboard.html").exists()  # drawing it is the caller's (nas.report's) job
    trials = _rows(d / "trials.csv")
    assert len(trials) == 40 and all(t["state"] == "COMPLETE" for t in trials)
    assert {t["feasible"] for t in trials} == {"true", "false"}  # the budget bites
    for t in trials:  # recorded values agree with the constraint
        assert (float(t["latency_s_video"]) <= 0.42) == (t["feasible"] == "true")
    # pareto.csv is exactly the non-dominated feasible arches of trials.csv
    feas = {t["arch_id"]: t for t in trials if t["feasible"] == "true"}
    v = np.array([[float(t["latency_s_video"]), float(t["peak_mem_mb"])] for t in feas.values()])
    expected = {a for a, m in zip(feas, non_dominated(v), strict=True) if m}
    front = _rows(d / "pareto.csv")
    assert {r["arch_id"] for r in front} == expected
    space = load_space(d / "space.yaml")
    for r in front:  # every front arch has its YAML, loadable against the space
        arch = load_arch(space, d / r["arch_yaml"])
        assert arch.arch_id == r["arch_id"]
    assert json.loads((d / "run.json").read_text())["status"] == "complete"
    assert "search:\n  trials: 40" in (d / "config.yaml").read_text()


def test_infeasible_arches_skip_the_proxy_and_duplicates_reuse_it(
    in_tmp: Path, tiny_tables: Path
) -> None:
    # tiny has 216 arches: 150 random trials must propose some twice
    res = _search(
        tiny_tables,
        "proxy=params",
        "sampler=random",
        "search.trials=150",
        "constraints.latency_s=0.42",
    )
    trials = _rows(res.run_dir / "trials.csv")
    infeasible = [t for t in trials if t["feasible"] == "false"]
    assert infeasible and all(
        t["quality_status"] == "skipped: infeasible" and t["proxy_s"] == "" for t in infeasible
    )
    feasible = [t for t in trials if t["feasible"] == "true"]
    assert all(t["quality"] != "" for t in feasible)
    evaluated = Counter(t["arch_id"] for t in feasible if t["quality_status"] == "evaluated")
    assert max(evaluated.values()) == 1  # each arch's proxy ran once
    cached = [t for t in feasible if t["quality_status"] == "cached"]
    assert cached
    by_id = {t["arch_id"]: t["quality"] for t in feasible if t["quality_status"] == "evaluated"}
    assert all(t["quality"] == by_id[t["arch_id"]] for t in cached)
    assert {r["arch_id"] for r in _rows(res.run_dir / "pareto.csv")} <= {
        t["arch_id"] for t in feasible
    }


def test_rerunning_the_same_command_resumes_or_extends(in_tmp: Path, tiny_tables: Path) -> None:
    first = _search(tiny_tables, "experiment=cost_only", "search.trials=10")
    again = _search(tiny_tables, "experiment=cost_only", "search.trials=10")
    assert again.run_dir == first.run_dir and again.resumed and len(again.records) == 10
    more = _search(tiny_tables, "experiment=cost_only", "search.trials=16")
    assert more.run_dir == first.run_dir and len(more.records) == 16

    def costs(records: list[TrialRecord]) -> list[tuple[object, ...]]:
        return [(r.arch_id, r.latency_s_video, r.peak_mem_mb) for r in records]

    assert costs(more.records[:10]) == costs(first.records)
    other = _search(tiny_tables, "experiment=cost_only", "search.trials=10", "search.seed=3")
    assert other.run_dir != first.run_dir
    new = _search(tiny_tables, "experiment=cost_only", "search.trials=10", new=True)
    assert new.run_dir not in (first.run_dir, other.run_dir)


def test_each_sampler_name_builds_its_own_optuna_sampler() -> None:
    import optuna

    from nas.search import SAMPLERS, FixedSpaceNSGAII, make_sampler

    expected = {
        "nsga2": FixedSpaceNSGAII,  # Optuna's NSGA-II, keeping its search space once complete
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "gp": optuna.samplers.GPSampler,
        "brute": optuna.samplers.BruteForceSampler,
    }
    assert set(SAMPLERS) == set(expected)
    for name, cls in expected.items():
        assert type(make_sampler(name, {}, 0)) is cls, name
    assert issubclass(FixedSpaceNSGAII, optuna.samplers.NSGAIISampler)
    # options reach the sampler
    nsga = make_sampler("nsga2", {"population_size": 7}, 0)
    assert nsga._population_size == 7


def test_samplers_run_and_are_seeded(in_tmp: Path, tiny_tables: Path) -> None:
    sequences = {}
    # nsga2 and tpe start with random trials: small start phases, so 12 trials leave them
    extra = {"nsga2": ["sampler.population_size=4"], "tpe": ["sampler.n_startup_trials=4"]}
    for sampler in ("nsga2", "tpe", "random", "brute"):
        # the sampler's own proposals: no reference arches first
        args = ["experiment=cost_only", f"sampler={sampler}", "search.trials=12"]
        args.append("search.references=false")
        a = _search(tiny_tables, *args, *extra.get(sampler, []), new=True)
        b = _search(tiny_tables, *args, *extra.get(sampler, []), new=True)
        assert [r.arch_id for r in a.records] == [r.arch_id for r in b.records], sampler
        assert len(a.records) == 12
        sequences[sampler] = [r.arch_id for r in a.records]
    # every sampler proposes its own sequence (a name mapped to the wrong sampler would not)
    assert len({tuple(s) for s in sequences.values()}) == len(sequences)


def test_brute_force_covers_the_space(in_tmp: Path, tiny_tables: Path) -> None:
    res = _search(tiny_tables, "experiment=cost_only", "sampler=brute", "search.trials=500")
    assert len({r.arch_id for r in res.records}) == 216  # the tiny space, each arch once


def test_front_arch_works_with_train_and_export(in_tmp: Path, tiny_tables: Path) -> None:
    from nas.cli import main

    res = _search(tiny_tables, "experiment=cost_only", "search.trials=8")
    arch_yaml = res.run_dir / "archs" / f"{res.front[0].arch_id}.yaml"
    assert main(["export", "--arch", str(arch_yaml), "--format", "onnx", "--out", "a.onnx"]) == 0
    assert Path("a.onnx").stat().st_size > 0
    assert (
        main(["train", "--arch", str(arch_yaml), "--steps", "2", "--out", "t", "--no-progress"])
        == 0
    )
    assert any(Path("t").glob("*.safetensors")) or any(Path("t").rglob("*.safetensors"))


def test_cli_prints_the_front_and_run_dir(
    in_tmp: Path, tiny_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    argv = [
        "search",
        "--space",
        TINY,
        "--no-progress",
        *tiny_overrides(tiny_tables),
        "experiment=cost_only",
        "search.trials=6",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 trials" in out and "Pareto front" in out and "run dir: experiments/runs/" in out
    assert "arch_id" in out
    run_dir = next((in_tmp / "experiments" / "runs").iterdir())
    assert (run_dir / "dashboard.html").is_file()  # the CLI asks nas.report for the page


def _counts(run_dir: Path) -> Counter[str]:
    return Counter(t.state.name for t in open_run_study(run_dir).get_trials(deepcopy=False))


# the training proxy at 3 steps: about a second per trial, long enough to stop one mid-trial
SLOW_TRIALS = (
    "proxy=train",
    "proxy.options.steps=3",
    "proxy.threads=1",
    "sampler=random",
    "constraints=none",
)


@pytest.mark.slow
def test_resume_after_kill_9_loses_nothing_and_repeats_nothing(
    in_tmp: Path, tiny_tables: Path
) -> None:
    cmd = search_cmd(tiny_tables, *SLOW_TRIALS, "search.trials=14")
    p = subprocess.Popen(
        cmd,
        cwd=in_tmp,
        env=subprocess_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            time.sleep(0.3)
            found, trials = running_search(in_tmp)
            if found is not None:
                run_dir = found
                done = sum(t.state.name == "COMPLETE" for t in trials)
                # kill during the proxy, once the running trial's arch is fixed (its arch_id is
                # recorded right after its choices), not while it is still choosing
                running = [t for t in trials if t.state.name == "RUNNING"]
                if done >= 4 and running and all("arch_id" in t.user_attrs for t in running):
                    break
        else:
            pytest.fail("the search did not get going")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert run_dir is not None
    before = {
        t.number: (t.user_attrs["arch_id"], t.values)
        for t in open_run_study(run_dir).get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    }
    stale = _counts(run_dir)["RUNNING"]
    assert stale >= 1  # killed mid-batch: its untold trials
    r = run_cli(cmd, in_tmp)
    assert r.returncode == 0, r.stderr
    assert f"resuming {run_dir.relative_to(in_tmp)}" in r.stdout
    trials = open_run_study(run_dir).get_trials(deepcopy=False)
    after = {
        t.number: (t.user_attrs["arch_id"], t.values) for t in trials if t.state.name == "COMPLETE"
    }
    assert all(after[n] == v for n, v in before.items())  # nothing lost or changed
    assert len(after) == 14
    fails = [t for t in trials if t.state.name == "FAIL"]
    assert len(fails) == stale and all("worker died" in f.user_attrs["error"] for f in fails)
    for f in fails:  # each queued again once, the same arch
        retried = [t for t in trials if t.user_attrs.get("retry_of") == f.number]
        assert len(retried) == 1 and retried[0].params == f.params
    evaluated = Counter(
        t.user_attrs["arch_id"] for t in trials if t.user_attrs.get("quality_status") == "evaluated"
    )
    assert max(evaluated.values()) == 1  # no arch's proxy ran twice
    assert RunInfo.load(run_dir).status == "complete"


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_two_local_workers_share_one_study(in_tmp: Path, tiny_tables: Path, storage: str) -> None:
    extra = ["proxy=params", "sampler=random", "search.trials=30", "--workers", "2"]
    if storage == "sqlite":
        extra += ["--storage", f"sqlite:///{in_tmp / 'shared.db'}", "--study", "s"]
    r = run_cli(search_cmd(tiny_tables, *extra), in_tmp)
    assert r.returncode == 0, r.stderr
    run_dir = next((in_tmp / "experiments" / "runs").iterdir())
    trials = open_run_study(run_dir).get_trials(deepcopy=False)
    assert Counter(t.state.name for t in trials) == {"COMPLETE": 30}
    assert sorted(t.number for t in trials) == list(range(30))
    # one process asks and tells; the proxies ran in both pool processes
    assert len({t.user_attrs["worker"] for t in trials}) == 1
    assert (
        len({t.user_attrs["proxy_worker"] for t in trials if "proxy_worker" in t.user_attrs}) == 2
    )
    assert len(_rows(run_dir / "trials.csv")) == 30


def test_sqlite_studies_use_a_write_ahead_log(tmp_path: Path) -> None:
    """An SQLite study file is opened in WAL mode with synchronous=NORMAL (no fsync per
    commit); what one connection commits another (a new storage, as another process) reads."""
    import optuna
    from sqlalchemy import text

    from nas.search import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url, tmp_path)
    with storage.engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    other = optuna.load_study(study_name="s", storage=open_storage(url, tmp_path))
    assert [t.params for t in other.trials] == [t.params for t in study.trials]
    assert (tmp_path / "s.db-wal").exists()


@pytest.mark.slow
def test_pruner_stops_weak_proxy_runs_early(in_tmp: Path, tiny_tables: Path) -> None:
    res = _search(
        tiny_tables,
        "proxy=train",
        "proxy.options.steps=4",
        "proxy.threads=1",
        "proxy.pruner=sha",
        "sampler=random",
        "constraints=none",
        "search.trials=12",
    )
    states = Counter(r.state for r in res.records)
    assert states["PRUNED"] >= 1 and states["COMPLETE"] >= 1
    assert states["PRUNED"] + states["COMPLETE"] == 12
    pruned = [r for r in res.records if r.state == "PRUNED"]
    assert all(r.quality_status.startswith("pruned at step") for r in pruned)
    assert all(r.latency_s_video is not None for r in pruned)  # costs are still recorded
    aux = open_run_study(res.run_dir)._storage.get_all_studies()
    assert any(s.study_name.endswith(".proxy") for s in aux)  # the pruner's own study


@pytest.mark.slow
def test_ctrl_c_saves_the_run_and_the_same_command_finishes_it(
    in_tmp: Path, tiny_tables: Path
) -> None:
    # enough trials that the run is still going when the signal lands, on a loaded machine too
    cmd = search_cmd(tiny_tables, *SLOW_TRIALS, "search.trials=30")
    p = subprocess.Popen(
        cmd,
        cwd=in_tmp,
        env=subprocess_env(),
        start_new_session=True,
        # as from a terminal: a test run started in the background (`cmd &`) ignores SIGINT,
        # the search would inherit that and never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline:
        time.sleep(0.3)
        found, trials = running_search(in_tmp)
        if sum(t.state.name == "COMPLETE" for t in trials) >= 3:
            run_dir = found
            break
    assert run_dir is not None, "the search did not get going"
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "re-run the same command to resume" in err
    assert RunInfo.load(run_dir).status == "interrupted"
    done_before = {
        t.number: t.values
        for t in open_run_study(run_dir).get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    }
    assert len(_rows(run_dir / "trials.csv")) >= len(done_before)  # outputs were written
    r = run_cli(cmd, in_tmp)
    assert r.returncode == 0, r.stderr
    trials = open_run_study(run_dir).get_trials(deepcopy=False)
    after = {t.number: t.values for t in trials if t.state.name == "COMPLETE"}
    assert all(after[n] == v for n, v in done_before.items())
    assert len(after) == 30 and RunInfo.load(run_dir).status == "complete"


def test_gp_sampler_runs_when_scipy_is_present(in_tmp: Path, tiny_tables: Path) -> None:
    pytest.importorskip("scipy")
    res = _search(
        tiny_tables,
        "experiment=cost_only",
        "sampler=gp",
        "sampler.n_startup_trials=3",
        "search.trials=6",
    )
    assert len(res.records) == 6 and all(r.state == "COMPLETE" for r in res.records)


def test_a_proxy_starts_as_soon_as_its_trial_is_asked(
    in_tmp: Path, tiny_tables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool trains while the sampler asks for the batch's next trial (a GP ask takes
    seconds): each proxy starts right after its own trial is asked and priced, not once the
    whole batch is (one worker: the proxy runs in the search's process when it starts)."""
    from nas.search import TrialEvaluation

    events: list[tuple[str, int]] = []
    real_price, real_proxy = TrialEvaluation.price, TrialEvaluation.run_proxy

    def price(self, trial):  # type: ignore[no-untyped-def]
        events.append(("ask", trial.number))
        return real_price(self, trial)

    def run_proxy(self, arch):  # type: ignore[no-untyped-def]
        trials = self.study.get_trials(deepcopy=False)  # not the queued reference arches
        events.append(("proxy", sum(t.state.name != "WAITING" for t in trials)))
        return real_proxy(self, arch)

    monkeypatch.setattr(TrialEvaluation, "price", price)
    monkeypatch.setattr(TrialEvaluation, "run_proxy", run_proxy)
    res = _search(
        tiny_tables,
        "proxy=params",
        "sampler=random",
        "search.trials=12",
        "search.batch=6",
        "search.workers=1",
    )
    assert len(res.records) == 12
    starts = [i for i, (kind, _) in enumerate(events) if kind == "proxy"]
    assert len(starts) >= 4
    for i in starts:  # the trial just asked is the study's newest when its proxy starts
        kind, number = events[i - 1]
        assert kind == "ask" and events[i][1] == number + 1
    assert any(events[i + 1][0] == "ask" for i in starts if i + 1 < len(events))


def test_time_limit_stops_early_and_the_same_command_continues(
    in_tmp: Path, tiny_tables: Path
) -> None:
    over = ("proxy=params", "search.trials=400", "search.timeout_s=1", "constraints=none")
    first = _search(tiny_tables, *over)
    assert first.stopped_early == "timeout"
    assert 0 < len(first.records) < 400
    assert RunInfo.load(first.run_dir).status == "incomplete"
    again = _search(tiny_tables, *over)
    assert again.run_dir == first.run_dir and again.resumed
    assert len(again.records) > len(first.records)

    def done(records: list[TrialRecord]) -> list[tuple[object, ...]]:
        return [(r.arch_id, r.latency_s_video, r.quality) for r in records]

    assert done(again.records[: len(first.records)]) == done(first.records)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sampler",
    [
        ("sampler=nsga2", "sampler.population_size=4"),  # a generation per batch
        ("sampler=default", "sampler.n_startup_trials=4", "search.batch=4"),  # GP: proxies
        # start while it asks for the batch's next trial
    ],
    ids=["nsga2", "gp"],
)
def test_the_same_seed_gives_the_same_front_with_one_or_two_workers(
    in_tmp: Path, tiny_tables: Path, sampler: tuple[str, ...]
) -> None:
    over = (
        "proxy=train",
        "proxy.options.steps=2",
        *sampler,
        "search.trials=12",
        "constraints.latency_s=0.42",
    )
    one = _search(tiny_tables, *over, "search.workers=1", new=True)
    two = _search(tiny_tables, *over, "search.workers=2", new=True)

    def trials(res: object) -> list[tuple[object, ...]]:
        return [(r.arch_id, r.latency_s_video, r.quality, r.state) for r in res.records]  # type: ignore[attr-defined]

    assert trials(one) == trials(two)
    assert [r.arch_id for r in one.front] == [r.arch_id for r in two.front] != []


def test_reference_arches_come_first_and_anchor_the_front(in_tmp: Path, tiny_tables: Path) -> None:
    from nas.search import reference_arches
    from nas.space import load_space

    refs = reference_arches(load_space(TINY))
    assert refs[0][0] == "none" and len(refs) >= 3
    assert all(a.op_counts().get(op, 0) > 0 for op, a in refs[1:])
    res = _search(tiny_tables, "experiment=cost_only", "search.trials=20", "constraints=none")
    first = [r.arch_id for r in res.records[: len(refs)]]
    assert first == [a.arch_id for _, a in refs]
    # the all-none arch is the cheapest: a cost-only front always has it
    assert refs[0][1].arch_id in {r.arch_id for r in res.front}
    off = _search(
        tiny_tables, "experiment=cost_only", "search.trials=20", "search.references=false"
    )
    assert [r.arch_id for r in off.records[: len(refs)]] != first


def test_the_search_ends_with_the_cost_models_notes(in_tmp, tiny_tables) -> None:  # type: ignore[no-untyped-def]
    from nas.search import build_cost_model

    cfg, raw = compose_config(
        tiny_overrides(tiny_tables, "experiment=cost_only", "search.trials=4", "sampler=random")
    )
    notes = build_cost_model(cfg, load_space(TINY)).notes
    assert notes  # the hand-made table has no network rows: the notes say so
    lines: list[str] = []
    run_search(TINY, cfg, raw, progress=False, log=lines.append)
    assert [ln for ln in lines if ln.startswith("note: ")] == [f"note: {n}" for n in notes]
