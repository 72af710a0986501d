"""What happens when... a journal write was torn, a process was killed, two starts collide, a
start fails, a sibling run dir is broken, the search gets SIGTERM."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from _search_helpers import TINY, running_search, search_cmd, subprocess_env, tiny_overrides

from nas.errors import NasError
from nas.results import RunInfo
from nas.search import compose_config, repair_journal, run_search


def _search(tables: Path, *overrides: str, **kw: object):  # type: ignore[no-untyped-def]
    cfg, raw = compose_config(tiny_overrides(tables, *overrides))
    return run_search(TINY, cfg, raw, progress=False, log=lambda _m: None, **kw)  # type: ignore[arg-type]


def _digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _complete(journal: Path) -> int:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    (study,) = optuna.get_all_study_summaries(storage)
    s = optuna.load_study(study_name=study.study_name, storage=storage)
    return sum(t.state.name == "COMPLETE" for t in s.get_trials(deepcopy=False))


def test_a_journal_torn_at_any_byte_of_its_last_record_is_repaired(
    in_tmp: Path, tiny_tables: Path
) -> None:
    res = _search(tiny_tables, "experiment=cost_only", "search.trials=5")
    data = (res.run_dir / "study.journal").read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # the last record's first byte
    full = _complete(res.run_dir / "study.journal")
    assert full == 5
    for cut in range(start + 1, len(data)):  # 1 byte of the record .. all of it but "\n"
        torn = in_tmp / "torn" / "study.journal"
        torn.parent.mkdir(exist_ok=True)
        for p in torn.parent.iterdir():
            p.unlink()
        torn.write_bytes(data[:cut])
        note = repair_journal(torn)
        assert note, cut
        assert torn.read_bytes().endswith(b"\n")
        kept = torn.with_name("study.journal.torn")
        if cut < len(data) - 1:  # a partial record: cut back, the bytes kept aside
            assert torn.read_bytes() == data[:start]
            assert kept.read_bytes() == data[start:cut] + b"\n"
        else:  # a complete record without its newline: kept in place
            assert torn.read_bytes() == data and not kept.exists()
        assert _complete(torn) >= full - 1  # at most the torn trial is missing
        assert repair_journal(torn) == ""  # repaired means intact


def test_a_torn_run_resumes_and_finishes(
    in_tmp: Path, tiny_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _search(tiny_tables, "experiment=cost_only", "search.trials=6")
    journal = first.run_dir / "study.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-7])  # a power cut in the middle of the last write
    # a kill -9 also leaves Optuna's journal lock behind; it must not stall the next start
    (first.run_dir / "study.journal.lock").symlink_to(journal)
    t0 = time.monotonic()
    again = _search(tiny_tables, "experiment=cost_only", "search.trials=9")
    assert time.monotonic() - t0 < 10  # Optuna alone waits 30 s for a stale lock
    assert again.run_dir == first.run_dir and len(again.records) >= 9
    assert RunInfo.load(first.run_dir).status == "complete"
    assert "cut off mid-write" in capsys.readouterr().err
    assert (first.run_dir / "study.journal.torn").is_file()


def test_a_run_in_use_is_refused_and_left_untouched(in_tmp: Path, tiny_tables: Path) -> None:
    res = _search(tiny_tables, "experiment=cost_only", "search.trials=3")
    before = _digest(res.run_dir)
    fd = os.open(res.run_dir / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another search holds the run
        os.pwrite(fd, b"otherhost:4242", 0)
        with pytest.raises(NasError, match="in use by otherhost:4242"):
            _search(tiny_tables, "experiment=cost_only", "search.trials=8", "search.workers=2")
    finally:
        os.close(fd)
    assert _digest(res.run_dir) == before  # not even config.yaml or run.json rewritten
    # the holder gone (however it died), the lock is free at once
    assert len(_search(tiny_tables, "experiment=cost_only", "search.trials=4").records) == 4


def _table_without_a_row(tables: Path, dest: Path) -> Path:
    from nas.cost import Table

    t = Table.load(tables / "cpu-ort")
    t.rows.pop(next(iter(t.rows)))
    t.save(dest / "cpu-ort")
    return dest


def test_a_failed_start_marks_the_run_failed(in_tmp: Path, tiny_tables: Path) -> None:
    bad = _table_without_a_row(tiny_tables, in_tmp / "bad_tables")
    cfg, raw = compose_config(["device=cpu-ort", f"device.table={bad}", "experiment=cost_only"])
    with pytest.raises(NasError, match="lacks 1 row"):
        run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)
    (run_dir,) = (in_tmp / "experiments" / "runs").iterdir()
    info = RunInfo.load(run_dir)
    assert info.status == "failed" and "lacks 1 row" in info.reason


def test_unreadable_sibling_runs_are_skipped_with_a_warning(
    in_tmp: Path, tiny_tables: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = in_tmp / "experiments" / "runs"
    for name, text in (("a-list", "[]"), ("b-torn", '{"identity": '), ("c-bytes", "\udcff")):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    res = _search(tiny_tables, "experiment=cost_only", "search.trials=3")
    assert len(res.records) == 3
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 3 and "unreadable run.json" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.run.dir=/tmp/x", "does not use Hydra's own settings"),
        ("hydra.job.chdir=true", "does not use Hydra's own settings"),
        ("sampler.crossover_prob=5", "sampler.crossover_prob=5 must be <= 1"),
        ("sampler.population_size=1", "sampler.population_size=1 must be >= 2"),
        ("sampler.population_size=2.5", "must be an integer"),
    ],
)
def test_more_bad_overrides_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(NasError) as e:
        compose_config(["sampler=nsga2", override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_sampler_options_are_typed(tiny_tables: Path) -> None:
    with pytest.raises(NasError, match=r"sampler\.multivariate='maybe' must be true or false"):
        compose_config(["sampler=tpe", "sampler.multivariate=maybe"])


def test_runs_dir_that_is_a_file_is_one_line(in_tmp: Path, tiny_tables: Path) -> None:
    (in_tmp / "file").write_text("x")
    with pytest.raises(NasError, match="is a file, not a folder"):
        _search(tiny_tables, "experiment=cost_only", f"search.runs_dir={in_tmp / 'file'}")


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if mark.encode() in (d / "environ").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
    return out


@pytest.mark.slow
def test_sigterm_stops_the_search_and_its_workers(in_tmp: Path, tiny_tables: Path) -> None:
    mark = f"NAS_TEST_MARK={uuid.uuid4().hex}"
    env = {**subprocess_env(), mark.split("=")[0]: mark.split("=")[1]}
    cmd = search_cmd(
        tiny_tables,
        "proxy=train",
        "proxy.options.steps=3",
        "proxy.threads=1",
        "sampler=random",
        "constraints=none",
        "search.trials=40",
        "--workers",
        "2",
    )
    p = subprocess.Popen(cmd, cwd=in_tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if len(_marked(mark)) >= 3:  # the search and its two workers
                run_dir, done = running_search(in_tmp)
                if sum(t.state.name == "COMPLETE" for t in done) >= 2:
                    break
        else:
            pytest.fail("the search did not get going")
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err.decode()
    assert run_dir is not None
    assert RunInfo.load(run_dir).status == "interrupted"
    deadline = time.monotonic() + 10
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked(mark) == []  # no worker left behind
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def test_an_interrupt_just_after_a_tell_leaves_that_trial_complete() -> None:
    """Ctrl-C or SIGTERM can land after a proxy's trial is told and before the batch counts
    it (in the flush that makes the result durable): that trial stays COMPLETE, the batch's
    untold trials are told FAIL, and the interrupt goes on. CI once caught this window: the
    handler told the finished trial again and the search died with a traceback."""
    from concurrent.futures import Future
    from types import SimpleNamespace

    from nas.search import run_batches

    class InProcess:  # the pool's part run_batches uses, one proxy at a time here
        def submit(self, objective: SimpleNamespace, arch: SimpleNamespace) -> Future[object]:
            f: Future[object] = Future()
            f.set_result(objective.run_proxy(arch))
            return f

        def result(self, f: Future[object]) -> object:
            return f.result()

        def close(self, force: bool = False) -> None:
            pass

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    objective = SimpleNamespace(
        ev=SimpleNamespace(needs_quality=True, values=lambda costs, q: [q]),
        price=lambda t: (SimpleNamespace(unet_id=t.number), None),
        lookup=lambda t, arch, costs: None,
        run_proxy=lambda arch: SimpleNamespace(value=float(arch.unet_id)),
        record=lambda t, arch, outcome: outcome.value,
    )

    def flush() -> None:
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batches(study, objective, InProcess(), 4, 4, 4, None, None, flush)  # type: ignore[arg-type]
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert trials[0].values == [0.0]
    assert [t.user_attrs.get("error") for t in trials[1:]] == ["interrupted"] * 3
