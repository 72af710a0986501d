"""Journal writes of a batch held in memory (issue 17 item 3): a cost-only trial is not
fsynced on its own, a proxy result is durable once told, and a kill -9 loses at most the
cost-only trials of one batch, which the next start asks again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _search_helpers import TINY, run_cli, search_cmd, subprocess_env, tiny_overrides

from nas.results import RunInfo
from nas.search import compose_config, open_run_study, run_search


def test_held_writes_reach_the_file_only_on_flush(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.search import BufferedJournal

    path = tmp_path / "s.journal"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))))
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    size = path.stat().st_size

    backend = BufferedJournal(JournalFileBackend(str(path)))
    assert backend.on_file > 0
    study = optuna.load_study(study_name=plain.study_name, storage=JournalStorage(backend))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(study.get_trials()) == 5  # its own writes are read back from memory
    assert path.stat().st_size == size  # ... and none is on disk yet
    backend.flush()
    assert path.stat().st_size > size and backend.held == []
    fresh = optuna.load_study(
        study_name=plain.study_name, storage=JournalStorage(JournalFileBackend(str(path)))
    )
    assert [t.params for t in fresh.get_trials()] == [t.params for t in study.get_trials()]
    # after a flush the held log numbers continue where the file's end
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    backend.flush()
    again = JournalStorage(JournalFileBackend(str(path)))
    assert len(optuna.load_study(study_name=plain.study_name, storage=again).get_trials()) == 6


def _frozen(trials: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs, t.intermediate_values)
        for t in trials
    ]


def test_the_mirror_works_in_memory_and_the_journal_catches_up_on_flush(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from nas.search import BufferedJournal, JournalMirror

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "s.journal"

    def fresh() -> optuna.Study:  # what another reader of the file sees
        return optuna.load_study(
            study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))
        )

    plain = optuna.create_study(
        study_name="s", directions=["minimize", "minimize"],
        storage=JournalStorage(JournalFileBackend(str(path))),
    )  # fmt: skip
    plain.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("n", 0, 3)), n_trials=2)
    backend = BufferedJournal(JournalFileBackend(str(path)))
    mirror = JournalMirror(JournalStorage(backend), backend)
    study = optuna.load_study(study_name="s", storage=mirror)
    assert _frozen(study.get_trials()) == _frozen(plain.get_trials())  # seeded, numbers kept
    study.set_user_attr("unit", "s")  # study-level: in the mirror at once, on file at flush
    mirror.set_study_system_attr(study._study_id, "parents:1", [0, 1])  # as NSGA-II caches
    assert mirror.get_study_system_attrs(study._study_id)["parents:1"] == [0, 1]
    study.enqueue_trial({"x": 0.5, "n": 1}, user_attrs={"reference": "none"})
    running = study.ask()  # the enqueued one: WAITING on flush would be RUNNING now
    running.set_user_attr("arch", "abc")
    done = study.ask()
    study.tell(done, (done.suggest_float("x", 0, 1), done.suggest_int("n", 0, 3)))
    size = path.stat().st_size
    assert len(fresh().get_trials()) == 2 and path.stat().st_size == size
    mirror.flush()
    assert _frozen(fresh().get_trials()) == _frozen(study.get_trials())
    assert fresh().get_trials()[2].state == TrialState.RUNNING
    # new trials are written as Optuna's own CREATE_TRIAL records: times and types too
    on_file, here = fresh().get_trials(), study.get_trials()
    for a, b in zip(on_file, here, strict=True):
        assert (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)
        assert a.distributions == b.distributions
    assert fresh().user_attrs == {"unit": "s"}
    on_disk = JournalStorage(JournalFileBackend(str(path)))
    assert on_disk.get_study_system_attrs(fresh()._study_id)["parents:1"] == [0, 1]
    # a trial already on file is updated field by field: its params, attrs, intermediate, state
    running.suggest_float("x", 0, 1)
    running.suggest_int("n", 0, 3)
    mirror.set_trial_intermediate_value(running._trial_id, 3, 0.25)  # report: single-objective
    running.set_user_attr("arch", "abd")
    study.tell(running, state=TrialState.PRUNED)
    mirror.flush()
    assert _frozen(fresh().get_trials()) == _frozen(study.get_trials())
    assert [t.state for t in fresh().get_trials()][2:] == [TrialState.PRUNED, TrialState.COMPLETE]
    # reopened from the file, the mirror is the same study again
    again = JournalMirror(JournalStorage(JournalFileBackend(str(path))))
    assert _frozen(optuna.load_study(study_name="s", storage=again).get_trials()) == _frozen(
        study.get_trials()
    )


def test_a_cost_only_search_fsyncs_once_per_batch_not_per_write(
    in_tmp: Path, tiny_tables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = os.fsync

    def counting(fd: int) -> None:
        calls["n"] += 1
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    over = tiny_overrides(tiny_tables, "experiment=cost_only", "sampler=random", "search.trials=64")
    cfg, raw = compose_config([*over, "search.batch=8"])
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)
    assert len(res.records) == 64
    # unbuffered, every trial is about 20 journal writes, each fsynced (over 1,000 here);
    # held, one append per batch, plus run.json and the outputs' atomic writes
    assert calls["n"] < 64


def test_kill_9_during_a_cost_only_search_loses_at_most_a_batch(
    in_tmp: Path, tiny_tables: Path
) -> None:
    cmd = search_cmd(tiny_tables, "experiment=cost_only", "sampler=random", "search.trials=4000")
    p = subprocess.Popen(
        cmd,
        cwd=in_tmp,
        env=subprocess_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            journals = list((in_tmp / "experiments" / "runs").glob("*/study.journal"))
            if journals and journals[0].stat().st_size > 200_000:  # well into the run
                break
        else:
            pytest.fail("the search did not get going")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    run_dir = journals[0].parent
    r = run_cli(cmd, in_tmp)
    assert r.returncode == 0, r.stderr
    trials = open_run_study(run_dir).get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 4000
    assert states.count("FAIL") <= 8  # at most the batch whose asks reached the file
    assert RunInfo.load(run_dir).status == "complete"
