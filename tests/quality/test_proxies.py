"""Quality proxies on the tiny space: NASWOT/SynFlow at init (honest zero-init handling), the
training proxy (determinism, cache, rungs, pruning), the registry, diverse-arch picking, rank
statistics, and `nas validate proxy` as a user runs it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from nas.errors import NasError
from nas.model import build_video_unet
from nas.quality import (
    NaswotProxy,
    Proxy,
    ProxyPruned,
    ProxyValidationConfig,
    TrainingProxy,
    list_proxies,
    make_proxy,
    naswot_score,
    output_projections,
    pick_diverse_arches,
    probe_batch,
    proxy_geometry,
    rank_stats,
    synflow_score,
    unzeroed_outputs,
)
from nas.space import reference_arch

SMALL = {"frames": 4, "latent_height": 8, "latent_width": 8, "text_length": 6, "text_dim": 16}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    # Tiny models gain nothing from threads, and on a shared CPU more threads than free cores
    # make small ops many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ref(space, op: str):  # type: ignore[no-untyped-def]
    arch, hits = reference_arch(space, op)
    assert hits > 0
    return arch


def _zero_projections(model) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [p for _, layer in output_projections(model) for p in layer.parameters()]


# --------------------------------------------------------------------------------------------
# NASWOT / SynFlow
# --------------------------------------------------------------------------------------------


def test_naswot_is_deterministic_and_tells_op_types_apart(tiny_space) -> None:  # type: ignore[no-untyped-def]
    a = NaswotProxy(tiny_space, geometry=SMALL, n_videos=6)
    ops = ["none", "conv1d", "conv3d", "attn1d", "attn3d"]
    scores = {op: a.evaluate(_ref(tiny_space, op)) for op in ops}
    assert all(math.isfinite(v) for v in scores.values())
    b = NaswotProxy(tiny_space, geometry=SMALL, n_videos=6)
    assert b.evaluate(_ref(tiny_space, "attn1d")) == scores["attn1d"]
    # the zeroed outputs are re-initialised for scoring, so every op type scores differently
    assert len({round(v, 9) for v in scores.values()}) == len(ops)
    assert isinstance(a, Proxy) and a.name == "naswot"


def test_without_reinit_a_temporal_op_is_invisible(tiny_space) -> None:  # type: ignore[no-untyped-def]
    # the reason for the re-init: at init a temporal op is the identity, so an op with no
    # nonlinear units of its own (attn3d without FFN, at mid) would score exactly as no op
    kw = {"geometry": SMALL, "n_videos": 6}
    none, attn = _ref(tiny_space, "none"), _ref(tiny_space, "attn3d")
    zeroed = NaswotProxy(tiny_space, init_scale=0.0, **kw)
    assert zeroed.evaluate(attn) == zeroed.evaluate(none)
    honest = NaswotProxy(tiny_space, **kw)
    assert honest.evaluate(attn) != honest.evaluate(none)


def test_scoring_leaves_the_model_identity_at_init(tiny_space) -> None:  # type: ignore[no-untyped-def]
    geo = proxy_geometry(tiny_space, SMALL)
    batch = probe_batch(geo, n_videos=4)
    arch = _ref(tiny_space, "attn1d")
    torch.manual_seed(3)
    model = build_video_unet(tiny_space, arch, width_mult=0.125, geometry=geo).eval()
    torch.manual_seed(3)
    plain = build_video_unet(tiny_space, None, width_mult=0.125, geometry=geo).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def out(m):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return m(batch.sample, batch.timestep, batch.text)

    with unzeroed_outputs(model, seed=0) as changed:
        assert changed == len(model.temporal) > 0
        assert not torch.allclose(out(model), out(plain))  # scored: a real temporal function
    naswot_score(model, batch)
    synflow_score(model, batch)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not torch.count_nonzero(p) for p in _zero_projections(model))
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(out(model), out(plain))  # still the image backbone's function


def test_synflow_and_params_rank_the_empty_arch_last(tiny_space) -> None:  # type: ignore[no-untyped-def]
    for name in ("synflow", "params"):
        p = make_proxy(name, tiny_space, geometry=SMALL, n_videos=4)
        none, conv = p.evaluate(_ref(tiny_space, "none")), p.evaluate(_ref(tiny_space, "conv1d"))
        assert none == 0.0 and conv < 0.0


# --------------------------------------------------------------------------------------------
# the training proxy
# --------------------------------------------------------------------------------------------


def _train_proxy(space, **kw):  # type: ignore[no-untyped-def]
    return TrainingProxy(space, steps=4, geometry=SMALL, batch_size=2, n_val=4, **kw)


def test_training_proxy_is_deterministic_finite_and_cached(tiny_space, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    arch = _ref(tiny_space, "attn1d")
    calls = []
    real = TrainingProxy._measure  # called once per training run
    monkeypatch.setattr(
        TrainingProxy, "_measure", lambda self, res: calls.append(1) or real(self, res)
    )
    p = _train_proxy(tiny_space)
    v = p.evaluate(arch)
    assert math.isfinite(v) and len(calls) == 1
    assert p.evaluate(arch) == v and len(calls) == 1  # cached by arch_id
    assert _train_proxy(tiny_space).evaluate(arch) == v  # the same seed, the same number
    (rung,) = p.rungs(arch.arch_id)
    assert rung.step == 4 and rung.value == v
    assert _train_proxy(tiny_space, ema=False).evaluate(arch) != v  # the trained weights
    assert _train_proxy(tiny_space, seed=1).evaluate(arch) != v


def test_training_proxy_reports_rungs_and_prunes(tiny_space) -> None:  # type: ignore[no-untyped-def]
    arch = _ref(tiny_space, "conv1d")
    seen: list[tuple[int, float]] = []
    p = _train_proxy(tiny_space)
    v = p.evaluate_with_reports(arch, lambda step, value: seen.append((step, value)) or False)
    assert [s for s, _ in seen] == [1, 2, 4] and seen[-1][1] == v
    # trained in rungs (resuming a checkpoint) = trained in one go
    assert _train_proxy(tiny_space).evaluate(arch) == pytest.approx(v, rel=1e-6)
    # a cached arch replays its rungs
    again: list[int] = []
    assert p.evaluate_with_reports(arch, lambda s, _v: again.append(s) or False) == v
    assert again == [1, 2, 4]

    q = _train_proxy(tiny_space)
    with pytest.raises(ProxyPruned) as err:
        q.evaluate_with_reports(arch, lambda step, _value: step >= 2)
    # a plain exception: the search, not the proxy, turns it into Optuna's TrialPruned
    assert not isinstance(err.value, optuna.TrialPruned)
    assert err.value.step == 2 and err.value.arch_id == arch.arch_id
    assert [r.step for r in q.rungs(arch.arch_id)] == [1, 2]


# --------------------------------------------------------------------------------------------
# registry, arch picking, statistics
# --------------------------------------------------------------------------------------------


def test_registry_names_the_valid_choices(tiny_space) -> None:  # type: ignore[no-untyped-def]
    assert {"naswot", "synflow", "params", "train"} <= set(list_proxies())
    with pytest.raises(NasError, match="proxies: naswot, synflow"):
        make_proxy("zen", tiny_space)
    with pytest.raises(NasError, match=r"no option.*'stepz'.*steps"):
        make_proxy("train", tiny_space, stepz=3)
    assert isinstance(make_proxy("train", tiny_space, steps=2), Proxy)


def test_diverse_arches_are_seeded_distinct_and_include_the_references(tiny_space) -> None:  # type: ignore[no-untyped-def]
    pick = [a.arch_id for a in pick_diverse_arches(tiny_space, 6, np.random.default_rng(1))]
    again = [a.arch_id for a in pick_diverse_arches(tiny_space, 6, np.random.default_rng(1))]
    other = [a.arch_id for a in pick_diverse_arches(tiny_space, 6, np.random.default_rng(2))]
    assert pick == again and len(set(pick)) == 6 and pick != other
    assert pick[:2] == [_ref(tiny_space, "none").arch_id, _ref(tiny_space, "attn1d").arch_id]
    with pytest.raises(NasError, match="only 216 arches"):
        pick_diverse_arches(tiny_space, 217, np.random.default_rng(0))


def test_rank_stats_and_config_validation() -> None:
    rng = np.random.default_rng(0)
    s = rank_stats([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], rng, resamples=100)
    assert [s["kendall"], s["kendall_lo"], s["kendall_hi"]] == pytest.approx([1.0, 1.0, 1.0])
    rev = rank_stats([1, 2, 3, 4], [4, 3, 2, 1], rng, resamples=10)
    assert rev["spearman"] == pytest.approx(-1.0)
    with pytest.raises(NasError, match="seeds"):
        ProxyValidationConfig(seeds=1)
    with pytest.raises(NasError, match="proxies: naswot"):
        ProxyValidationConfig(proxies=("nope",))


# --------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_validate_proxy_cli_on_tiny(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["validate", "proxy", "--space", "search_spaces/tiny.yaml", "--n", "4",
            "--seeds", "2", "--steps", "20", "--proxy-steps", "4", "--threads", "1",
            "--geometry", "frames=4", "--geometry", "latent_height=8",
            "--geometry", "latent_width=8", "--out", str(out), "--no-progress",
            "--quality", "t800_ema", "--proxies", "naswot,synflow,params,train",
            "--batch-size", "4", "--train-precision", "bf16"]  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=root, timeout=300
    )
    assert res.returncode == 0, res.stderr
    for name in ("proxy_validation.csv", "summary.json", "proxy_validation.html", "plotly.min.js"):
        assert (out / name).is_file(), name
    assert "noise ceiling" in res.stdout and "Kendall tau" in res.stdout
    for proxy in ("naswot", "synflow", "params", "train"):
        assert f"\n{proxy} " in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["arches"]) == 4 and summary["config"]["seeds"] == 2
    # the full trainings ran in bf16 (autocast on CPU), and the output says so
    assert summary["config"]["precision"] == "bf16" and "steps of 4 (bf16)" in res.stdout
    runs = sorted(out.glob("runs/**/config.json"))
    assert len(runs) == 8
    assert {json.loads(p.read_text())["config"]["precision"] for p in runs} == {"bf16"}
    assert set(summary["proxies"]["naswot"]) >= {"kendall", "spearman_lo", "cost_ratio"}
    header = (out / "proxy_validation.csv").read_text()
    assert header.startswith("arch_id,arch,quality_mean,quality_seed0,quality_seed1,full_train_s,")
    assert 'src="plotly.min.js"' in (out / "proxy_validation.html").read_text()
    # the full trainings are resumable: a second run reuses them
    again = subprocess.run(
        [sys.executable, "-m", "nas", *args, "--proxies", "params"],
        capture_output=True, text=True, cwd=root, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len((out / "trained.jsonl").read_text().splitlines()) == 8
    assert "\nparams " in again.stdout and "\nnaswot " not in again.stdout
    # so are the proxies: each value (and the seconds it took) is read back, not recomputed
    cached = (out / "proxies.jsonl").read_text()
    assert {json.loads(x)["proxy"] for x in cached.splitlines()} == {
        "naswot", "synflow", "params", "train", "train@rungs"
    }  # fmt: skip
    third = subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=root, timeout=300
    )
    assert third.returncode == 0, third.stderr
    assert (out / "proxies.jsonl").read_text() == cached
    assert json.loads((out / "summary.json").read_text())["proxies"] == summary["proxies"]


def test_validate_proxy_cli_refuses_bad_flags(root: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "nas", "validate", "proxy", "--space", "search_spaces/tiny.yaml",
         "--seeds", "1"],
        capture_output=True, text=True, cwd=root, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and res.stderr.startswith("error: --seeds must be at least 2")
