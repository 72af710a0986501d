"""Issue 15: generated-video quality as the ground truth of `nas validate proxy`, the
generation-based early proxy, the latency row, scale transfer, resumable full trainings and the
caption-informative default data, on the tiny space at tiny settings."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nas.errors import NasError
from nas.fileio import claim
from nas.quality import (
    DEFAULT_DATA,
    LEGACY_DATA,
    GenerationProxy,
    ProxyValidationConfig,
    TrainConfig,
    TrainingProxy,
    generated_score,
    resolved_data,
    validate_proxies,
    validation_status,
    validation_worker,
)
from nas.space import reference_arch

SMALL = {"frames": 4, "latent_height": 8, "latent_width": 8, "text_length": 6, "text_dim": 16}
REAL = {  # what real clips score against themselves: following at the ceiling, FD at its floor
    "motion_accuracy": 1.0,
    "tracked_motion_accuracy": 1.0,
    "speed_accuracy": 1.0,
    "tracked_speed_accuracy": 1.0,
    "fd": 20.0,
    "fd_real": 20.0,
    "flicker": 0.3,
    "flicker_real": 0.3,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generated_score_rewards_following_then_realism_then_steady_frames() -> None:
    assert generated_score(REAL) == pytest.approx(0.0)
    chance = {**REAL, "motion_accuracy": 0.125, "tracked_motion_accuracy": 0.125,
              "speed_accuracy": 0.5, "tracked_speed_accuracy": 0.5}  # fmt: skip
    assert generated_score(chance) == pytest.approx(1.0)
    below_chance = {**chance, "motion_accuracy": 0.0}
    assert generated_score(below_chance) == pytest.approx(1.0)  # clipped at chance
    half = {**REAL, "motion_accuracy": 0.5625}  # half way from chance (1/8) to 1
    assert generated_score(half) == pytest.approx(0.125)
    # each doubling of the domain FD over its floor adds 0.1; flicker adds at most 0.1
    assert generated_score({**REAL, "fd": 80.0}) == pytest.approx(0.2)
    assert generated_score({**REAL, "fd": 10.0}) == pytest.approx(0.0)  # below the floor: 0
    assert generated_score({**REAL, "flicker": 0.45}) == pytest.approx(0.05)
    assert generated_score({**REAL, "flicker": 3.0}) == pytest.approx(0.1)
    noise = {**chance, "fd": 20.0 * 2**10, "flicker": 1.4}
    assert generated_score(noise) == pytest.approx(2.1)
    with pytest.raises(NasError, match="fd_real"):
        generated_score({k: v for k, v in REAL.items() if k != "fd_real"})


def test_default_data_is_caption_informative_and_old_data_stays_reachable(tiny_space) -> None:  # type: ignore[no-untyped-def]
    assert dict(DEFAULT_DATA) == {"difficulty": "easy", "background": 0.15, "colours": "positive"}
    cfg = TrainConfig()
    assert (cfg.difficulty, cfg.background, cfg.colours) == ("easy", 0.15, "positive")
    old = TrainConfig(**LEGACY_DATA)
    assert (old.difficulty, old.colours) == ("medium", "random")
    assert resolved_data({"steps": 16}) == dict(DEFAULT_DATA)
    assert resolved_data({"colours": "random"})["colours"] == "random"
    proxy = TrainingProxy(tiny_space, steps=1, geometry=SMALL)
    assert proxy.config.colours == "positive" and proxy.config.difficulty == "easy"
    legacy = TrainingProxy(tiny_space, steps=1, geometry=SMALL, **LEGACY_DATA)
    assert legacy.config.difficulty == "medium" and legacy.config.colours == "random"
    c = ProxyValidationConfig()
    assert (c.difficulty, c.colours, c.quality, c.n, c.seeds, c.seed) == (
        "easy", "positive", "generated", 12, 2, 2
    )  # fmt: skip


def test_search_identity_changes_when_the_proxy_data_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A search resumed after the default data changed must not reuse proxy values measured on
    the old data: the run's identity (what finds the run to resume) changes with it."""
    from nas.search import compose_config

    cfg = compose_config(["proxy=train"])[0]
    before = cfg.identity("s")
    monkeypatch.setitem(DEFAULT_DATA, "colours", "random")  # as if the defaults had changed
    assert cfg.identity("s") != before
    monkeypatch.undo()
    assert cfg.identity("s") == before
    # a cost-only search does not depend on the proxy's data
    free = compose_config(["proxy=none", "search.objectives=[latency,memory]"])[0]
    ident = free.identity("s")
    monkeypatch.setitem(DEFAULT_DATA, "colours", "random")
    assert free.identity("s") == ident


def test_generation_proxy_is_deterministic_cached_and_keeps_its_parts(
    tiny_space, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    arch, _ = reference_arch(tiny_space, "attn1d")
    opts = {"steps": 2, "batch_size": 2, "geometry": SMALL, "n_samples": 4, "sample_steps": 2,
            "evaluator_steps": 3, "evaluator_cache": tmp_path, "device": "cpu"}  # fmt: skip
    p = GenerationProxy(tiny_space, **opts)
    v = p.evaluate(arch)
    assert math.isfinite(v) and v >= 0.0
    assert set(p.parts[arch.arch_id]) >= {"motion_accuracy", "fd", "flicker", "score"}
    assert p.parts[arch.arch_id]["score"] == v
    assert p.evaluate(arch) == v  # cached
    assert GenerationProxy(tiny_space, **opts).evaluate(arch) == v  # seeded
    assert len(list(tmp_path.glob("evaluator-*.safetensors"))) == 1  # trained once, cached
    assert p.config.freeze_spatial is False  # trains the backbone, like the full trainings
    with pytest.raises(NasError, match="n_samples"):
        GenerationProxy(tiny_space, **{**opts, "n_samples": 1})


TINY = {
    "n": 3, "seeds": 2, "steps": 4, "batch_size": 2, "proxy_steps": 2, "geometry": SMALL,
    "proxy_geometry": {}, "gen_n": 4, "sample_steps": 2, "evaluator_steps": 3,
    "early_steps": 2, "early_n": 2, "bootstrap": 20, "n_val": 2, "pool": 20,
    "checkpoint_every": 2, "device": "cpu", "proxies": ("params", "latency", "generate"),
}  # fmt: skip


@pytest.mark.slow
def test_validate_proxy_with_generated_ground_truth_resumes_and_transfers(
    tiny_space, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _tiny_table import tiny_table

    tiny_table(tiny_space).save(tmp_path / "tables" / "cpu-ort")
    cfg = ProxyValidationConfig(
        **TINY,
        transfer_n=3,
        transfer_geometry={"latent_height": 16, "latent_width": 16},
        latency_device="cpu-ort",
        latency_tables=str(tmp_path / "tables"),
    )
    info = validate_proxies(tiny_space, tmp_path, cfg, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["arch_seed"] == 2 and summary["quality_definition"] == "generated"
    assert any("Euler, 2 steps, no guidance" in n for n in summary["notes"])
    header = (tmp_path / "proxy_validation.csv").read_text().splitlines()[0].split(",")
    for col in ("quality_mean", "gen_motion_accuracy_mean", "gen_fd_mean", "t800_ema_mean",
                "generate", "latency", "params"):  # fmt: skip
        assert col in header, col
    assert math.isfinite(info.ceilings["generated"]["noise_std"])
    assert "noise_std" in info.stats["generate"] and "cost_ratio" in info.stats["generate"]
    # the latency row: minus the step latency (a slower arch "predicts" better quality)
    none_i = [i for i, a in enumerate(info.arches) if a["arch"] == "all none"]
    assert none_i and info.scores["latency"][none_i[0]] == max(info.scores["latency"])
    t = info.transfer
    assert len(t["arches"]) == 3 and t["geometry"]["latent_height"] == 16
    assert set(t["agreement"]) >= {"kendall", "kendall_lo", "spearman"}
    assert "scale transfer" in info.table_text()
    assert "targets: noise ceiling" in info.table_text()
    lines = (tmp_path / "trained.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2 + 3  # base (3 arches x 2 seeds) + transfer (3 x 1)
    assert all(json.loads(x)["resumed_from"] == 0 for x in lines)
    # interrupted trainings resume: lose the records and one run's newest checkpoint
    (tmp_path / "trained.jsonl").unlink()
    run = sorted((tmp_path / "runs").glob("*/*-s0"))[0]
    shutil.rmtree(run / "checkpoints" / "step_0000004")
    # --status reads where each training stands, and changes nothing
    held = claim(sorted((tmp_path / "runs").glob("*/*-s1.lock"))[0])  # "a process trains it"
    try:
        status = validation_status(tiny_space, tmp_path, cfg)
    finally:
        assert held is not None
        held.close()
    states = {(r["scale"], r["arch_id"], r["seed"]): (r["state"], r["step"]) for r in status.rows}
    assert len(states) == 3 * 2 + 3
    assert states[("base", run.name.split("-")[0], 0)] == ("stopped", 2)
    assert list(states.values()).count(("stopped", 4)) == 3 * 2 + 3 - 2
    running = [r for r in status.rows if r["state"] == "running"]
    assert len(running) == 1 and running[0]["pid"] == os.getpid()
    text = status.text()
    assert "base: 0 of 6 done, 1 running, 5 stopped, 0 not started" in text
    assert "transfer: 0 of 3 done" in text and "h at " in text
    assert not (tmp_path / "trained.jsonl").exists()
    other = validation_status(tiny_space, tmp_path, replace(cfg, steps=5)).text()
    assert "none with these settings" in other
    again = validate_proxies(tiny_space, tmp_path, cfg, progress=False)
    done = validation_status(tiny_space, tmp_path, cfg)
    assert all(r["state"] == "done" and r["record"] is not None for r in done.rows)
    assert "base: 6 of 6 done" in done.text()
    ceiling = done.ceiling_so_far()  # every arch done: the run's own noise ceiling
    assert ceiling is not None and ceiling["arches"] == 3
    assert ceiling["kendall"] == pytest.approx(again.ceilings["generated"]["kendall"], nan_ok=True)
    assert "noise ceiling so far (3 arches with every seed done)" in done.text()
    as_json = json.loads(json.dumps(done.to_dict()))  # --status --json
    assert as_json["scales"]["base"]["done"] == 6 and as_json["scales"]["base"]["steps_left"] == 0
    assert [t["quality"] for t in as_json["trainings"] if t["scale"] == "base"] == [
        pytest.approx(r["record"]["generated"]["score"]) for r in done.rows[:6]
    ]
    assert all("record" not in t and t["arch"] for t in as_json["trainings"])
    assert status.ceiling_so_far() is None  # nothing was done then
    recs = [json.loads(x) for x in (tmp_path / "trained.jsonl").read_text().splitlines()]
    started = {r["resumed_from"] for r in recs}
    assert started == {2, 4}  # one resumed mid-way, the rest loaded finished
    assert again.target == pytest.approx(info.target)  # bit for bit on CPU
    # a training's cost: its steps at its metrics' median rate, whatever pieces it ran in
    for r in recs:
        assert r["compile"] is False and r["videos_per_s"] > 0
        assert r["train_s"] == pytest.approx(4 * 2 / r["videos_per_s"])  # steps x batch
    # compiling is how a training runs, not what it trains: the finished ones are reused
    before = (tmp_path / "trained.jsonl").read_text()
    counts = validation_worker(tiny_space, tmp_path, replace(cfg, compile=True), progress=False)
    assert counts == {"done": 3 * 2 + 3, "left": 0}
    assert (tmp_path / "trained.jsonl").read_text() == before
    # the transfer is not part of what keys the rest: without it, the same results, all cached
    proxies = (tmp_path / "proxies.jsonl").read_text()
    alone = validate_proxies(tiny_space, tmp_path, replace(cfg, transfer_n=0), progress=False)
    assert alone.transfer == {} and alone.target == pytest.approx(info.target)
    assert alone.scores == again.scores and "scale transfer" not in alone.table_text()
    assert (tmp_path / "trained.jsonl").read_text() == before
    assert (tmp_path / "proxies.jsonl").read_text() == proxies


def test_validate_proxy_config_refuses_what_cannot_be_measured() -> None:
    with pytest.raises(NasError, match="transfer-width-mult or --transfer-geometry"):
        ProxyValidationConfig(transfer_n=3)
    with pytest.raises(NasError, match="at least 3"):
        ProxyValidationConfig(transfer_n=2, transfer_width_mult=0.25)
    with pytest.raises(NasError, match="gen_n"):
        ProxyValidationConfig(gen_n=1)
    with pytest.raises(NasError, match=r"proxies: .*latency"):
        ProxyValidationConfig(proxies=("nope",))
    with pytest.raises(NasError, match="colours"):
        ProxyValidationConfig(colours="green")
    with pytest.raises(NasError, match="precision 'half' is not one of"):
        ProxyValidationConfig(precision="half")


def test_the_trainings_precision_reaches_them_and_keys_their_cache(tiny_space) -> None:  # type: ignore[no-untyped-def]
    """--train-precision bf16 trains the full trainings and the generate proxy's short one
    under bf16 autocast, and a bf16 training is never mistaken for a cached fp32 one."""
    from nas.quality import Scale, train_config

    auto, bf16 = ProxyValidationConfig(), ProxyValidationConfig(precision="bf16")
    base = Scale(auto.width_mult, auto.geometry)
    assert train_config(auto, tiny_space, 0, base).precision == "auto"
    full = train_config(bf16, tiny_space, 0, base)
    # what keys the cached trainings: the whole config but the seed, device and checkpointing
    assert full.to_dict() != train_config(auto, tiny_space, 0, base).to_dict()
    assert full.precision == "bf16"
    assert GenerationProxy(tiny_space, precision="bf16").config.precision == "bf16"


def test_the_transfer_has_its_own_budget_and_the_default_keeps_the_cached_keys(
    tiny_space, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """--transfer-steps N trains the transfer subset N steps (a larger scale at the full budget
    can outlast a machine): its trainings are keyed by it, the base ones are untouched, and
    without it the transfer keeps the full budget and the keys its finished records have."""
    from nas.quality import train_config, transfer_scale

    geo = {"latent_height": 16, "latent_width": 16}
    full = ProxyValidationConfig(**TINY, transfer_n=3, transfer_geometry=geo)
    short = replace(full, transfer_steps=3)
    assert transfer_scale(full).budget(full) == 4 and transfer_scale(short).budget(short) == 3
    cfg = train_config(short, tiny_space, 0, transfer_scale(short))
    assert cfg.steps == 3 and cfg.checkpoint_every == 2 and cfg.log_every == 3
    assert train_config(full, tiny_space, 0, transfer_scale(full)).steps == 4
    # what keys the cached trainings (the training's settings): the default is the same as
    # before the option existed (steps = the base budget), a budget of its own is not
    same = replace(full, transfer_steps=4)
    assert (
        train_config(full, tiny_space, 0, transfer_scale(full)).to_dict()
        == train_config(same, tiny_space, 0, transfer_scale(same)).to_dict()
    )
    assert cfg.to_dict() != train_config(full, tiny_space, 0, transfer_scale(full)).to_dict()
    status = validation_status(tiny_space, tmp_path, short)
    budgets = {(r["scale"], r["steps"]) for r in status.rows}
    assert budgets == {("base", 4), ("transfer", 3)}
    text = status.text()
    assert "transfer: 0 of 3 done, 0 running, 0 stopped, 3 not started; 9 steps left" in text
    with pytest.raises(NasError, match="transfer_steps must be >= 1, got 0"):
        replace(full, transfer_steps=0)


@pytest.mark.slow
def test_ground_truth_can_sample_a_few_step_student_at_the_space_steps(
    tiny_space, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tiny = {**TINY, "proxies": ("params",), "steps": 2, "checkpoint_every": 2}
    cfg = ProxyValidationConfig(**tiny, student_steps=2)
    info = validate_proxies(tiny_space, tmp_path, cfg, progress=False)
    assert any("few-step student (2 adversarial steps), 2 steps" in n for n in info.notes)
    students = sorted((tmp_path / "runs").glob("*/*-student"))
    assert len(students) == 3 * 2  # one per (arch, seed), each a resumable run folder
    state = json.loads(next(students[0].glob("checkpoints/step_*/state.json")).read_text())
    assert state["config"]["stage"] == "adversarial" and state["config"]["few_steps"] == 2
    # a longer student budget re-evaluates without retraining the flow models: they load
    more = ProxyValidationConfig(**tiny, student_steps=3)
    validate_proxies(tiny_space, tmp_path, more, progress=False)
    recs = [json.loads(x) for x in (tmp_path / "trained.jsonl").read_text().splitlines()]
    assert [r["resumed_from"] for r in recs[6:]] == [2] * 6  # the flow runs were finished
    assert len(list(tmp_path.glob("runs/*/*-s0"))) == 3  # the same folders


def test_diverse_picks_are_distinct_unets_not_decoder_variants(root: Path) -> None:
    import numpy as np

    from nas.quality import pick_diverse_arches
    from nas.space import load_space

    space = load_space(root / "search_spaces" / "tiny-pipeline.yaml")  # 4 decode choices
    # 120 of its 216 UNets: picking by arch id alone trained 4 of them twice
    picks = pick_diverse_arches(space, 120, np.random.default_rng(0), pool=300)
    assert len({a.unet_id for a in picks}) == 120  # no UNet trained twice under two decoders


def test_workers_share_a_validation_each_training_once(tiny_space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`nas validate proxy --worker`: processes sharing --out claim (arch, seed) trainings and
    proxy values with lock files; a held claim is skipped by a worker, waited for (then taken
    over) by the main run, and every training and value is recorded once."""
    import threading

    cfg = ProxyValidationConfig(**{**TINY, "proxies": ("params",)})
    records = tmp_path / "trained.jsonl"
    assert validation_worker(tiny_space, tmp_path, cfg, progress=False) == {"done": 6, "left": 0}
    locks = sorted((tmp_path / "runs").glob("*/*.lock"))
    assert len(locks) == 6
    # after its trainings the worker computed the proxies: params, two seeds, 3 arches
    values = tmp_path / "proxies.jsonl"
    assert len(values.read_text().splitlines()) == 2 * 3
    value_locks = sorted((tmp_path / "proxy_locks").glob("*.lock"))
    assert len(value_locks) == 2 * 3
    # another process computes one value: a worker leaves it, the main run waits for it
    key, arch_id = value_locks[0].stem.split("-")
    kept_values = [
        x for x in values.read_text().splitlines() if json.loads(x)["key"] != key
        or json.loads(x)["arch_id"] != arch_id
    ]  # fmt: skip
    values.write_text("".join(x + "\n" for x in kept_values))
    held_value = claim(value_locks[0])
    assert held_value is not None
    validation_worker(tiny_space, tmp_path, cfg, progress=False)
    assert len(values.read_text().splitlines()) == 2 * 3 - 1
    proxies = validation_status(tiny_space, tmp_path, cfg).proxies  # --status sees both
    assert proxies == {"values": 2 * 3 - 1, "computing": 1, "pids": [os.getpid()]}
    assert f"proxies: 5 values computed (proxies.jsonl), 1 being computed (pid {os.getpid()})" in (
        validation_status(tiny_space, tmp_path, cfg).text()
    )
    # another process holds one training (its record not written yet): the worker skips it
    held_id = locks[0].stem
    kept = [x for x in records.read_text().splitlines() if held_id not in
            f"{json.loads(x)['arch_id']}-s{json.loads(x)['seed']}"]  # fmt: skip
    records.write_text("".join(x + "\n" for x in kept))
    held = claim(locks[0])
    assert held is not None and claim(locks[0]) is None  # one holder at a time
    assert validation_worker(tiny_space, tmp_path, cfg, progress=False) == {"done": 5, "left": 1}
    assert len(records.read_text().splitlines()) == 5
    # the main run waits for the held value, scores the rest, then waits for the training;
    # each holder goes away, so it takes over
    said: list[str] = []

    def log(msg: str) -> None:
        said.append(msg)
        if "waiting for 1 full training(s) (base)" in msg:
            held.close()

    threading.Timer(0.5, held_value.close).start()
    info = validate_proxies(tiny_space, tmp_path, cfg, progress=False, log=log, poll_s=0.1)
    assert any("waiting for 1 full training(s) (base)" in m for m in said)
    assert f"waiting for params of {arch_id}, which another process computes" in said
    got = [json.loads(x) for x in values.read_text().splitlines()]
    assert len(got) == 2 * 3 and len({(r["key"], r["arch_id"]) for r in got}) == 2 * 3
    recs = [json.loads(x) for x in records.read_text().splitlines()]
    assert len(recs) == 6 and len({(r["arch_id"], r["seed"]) for r in recs}) == 6
    assert recs[-1]["resumed_from"] == 4  # its run had finished: loaded, not retrained
    assert len(info.quality["generated"]) == 3


def test_worker_and_status_need_the_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from nas.cli import main

    space = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"
    assert main(["validate", "proxy", "--space", str(space), "--worker"]) == 2
    assert "--worker needs --out" in capsys.readouterr().err
    assert main(["validate", "proxy", "--space", str(space), "--status"]) == 2
    assert "--status needs --out" in capsys.readouterr().err
    missing = tmp_path / "nope"
    status = ["validate", "proxy", "--space", str(space), "--status"]
    assert main([*status, "--out", str(missing)]) == 2
    assert "no such folder; start the validation there first" in capsys.readouterr().err
    assert not missing.exists()  # --status makes nothing
    (tmp_path / "vp").mkdir()
    assert main([*status, "--out", str(tmp_path / "vp"), "--n", "3"]) == 0
    out = capsys.readouterr().out
    assert "base: 0 of 6 done, 0 running, 0 stopped, 6 not started" in out
    assert "no rate measured at this scale yet" in out
    assert main([*status, "--out", str(tmp_path / "vp"), "--n", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["scales"]["base"]["not started"] == 6 and got["scales"]["base"]["hours"] is None
    assert {t["state"] for t in got["trainings"]} == {"not started"}


def test_a_training_that_ends_far_above_its_best_loss_is_marked_collapsed() -> None:
    from nas.quality import loss_collapse

    assert loss_collapse([0.1] * 500 + [1.0] * 200)["collapsed"] is True  # stuck at zero output
    assert loss_collapse([0.1] * 700)["collapsed"] is False
    spike = loss_collapse([0.2] * 300 + [1.0] * 100 + [0.1] * 300)  # spiked, came back
    assert spike["collapsed"] is False and spike["loss_best"] == pytest.approx(0.1)
    assert loss_collapse([5.0] * 150) == {"collapsed": False}  # too short to judge
