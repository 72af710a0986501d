"""The trainer on the tiny space: loss goes down, checkpoints, bitwise resume, metrics, NaN
stop, frozen spatial weights, corrupt checkpoints passed over; evaluation: deterministic
validation loss, flicker, sampling."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from nas.errors import NasError
from nas.model import build_video_unet
from nas.quality import (
    ProceduralVideos,
    ToyTextEncoder,
    TrainConfig,
    VideoItem,
    find_checkpoint,
    flicker_score,
    load_trained,
    sample_video,
    train,
    validation_loss,
    weighted_validation_loss,
    write_latents,
)
from nas.space import GeometryOverride, sample_arch

CFG = TrainConfig(
    steps=20, batch_size=2, lr=1e-2, checkpoint_every=10, log_every=5, difficulty="easy"
)


@pytest.fixture(scope="module")
def arch(tiny_space):  # type: ignore[no-untyped-def]
    return sample_arch(tiny_space, np.random.default_rng(0))


@pytest.fixture(scope="module")
def full_run(tiny_space, arch, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("full")
    return out, train(tiny_space, arch, CFG, out, progress=False)


def test_training_lowers_the_loss_and_writes_a_run(full_run) -> None:  # type: ignore[no-untyped-def]
    out, res = full_run
    assert res.step == 20 and res.start_step == 0 and len(res.losses) == 20
    assert all(np.isfinite(res.losses))
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])
    assert len(res.grad_norms) == 20 and all(g > 0 for g in res.grad_norms)
    assert res.samples_per_s > 0
    ckpt = find_checkpoint(out)
    assert ckpt == res.checkpoint == out / "checkpoints" / "step_0000020"
    names = {p.name for p in ckpt.iterdir()}
    assert {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "state.json"} <= names
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == [
        "step_0000010", "step_0000020"
    ]  # fmt: skip
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 20 and state["losses"] == list(res.losses)
    assert (out / "arch.yaml").is_file() and (out / "config.json").is_file()
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "loss", "lr", "grad_norm", "samples_per_s"]
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert float(rows[0]["loss"]) == pytest.approx(np.mean(res.losses[:5]), rel=1e-5)
    assert all(float(r["grad_norm"]) > 0 and float(r["samples_per_s"]) > 0 for r in rows)


def test_resume_reproduces_the_uninterrupted_run(tiny_space, arch, full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, full = full_run
    first = train(tiny_space, arch, replace(CFG, steps=10), tmp_path, progress=False)
    assert first.step == 10
    rest = train(tiny_space, arch, CFG, tmp_path, progress=False)
    assert rest.start_step == 10 and rest.step == 20
    assert rest.losses == full.losses  # bitwise, on CPU
    for (name, a), b in zip(rest.model.state_dict().items(), full.model.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    for name in full.ema:
        assert torch.equal(rest.ema[name], full.ema[name]), name
    with (tmp_path / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [5, 10, 15, 20]
    again = train(tiny_space, arch, CFG, tmp_path, progress=False)  # finished: nothing to do
    assert again.start_step == again.step == 20 and again.losses == full.losses
    with pytest.raises(NasError, match=r"lr: checkpoint 0\.01, now 0\.001"):
        train(tiny_space, arch, replace(CFG, steps=30, lr=1e-3), tmp_path, progress=False)
    other = sample_arch(tiny_space, np.random.default_rng(5))
    with pytest.raises(NasError, match="another out dir"):
        train(tiny_space, other, CFG, tmp_path, progress=False)


@pytest.mark.slow
def test_a_compiled_training_matches_the_eager_one_and_resumes_either_way(  # type: ignore[no-untyped-def]
    tiny_space, arch, full_run, tmp_path, monkeypatch
) -> None:
    _, full = full_run
    # the same path as inductor's (dynamo's graph capture, AOT autograd, the _orig_mod
    # wrapper), without its minutes of C++ code generation on 2 cores; inductor itself ran in
    # benchmarks/train_compile.py and the validation's trainings
    real, compiled_modules = torch.compile, []

    def aot_eager(m, **kw):  # type: ignore[no-untyped-def]
        compiled_modules.append(type(m).__name__)
        return real(m, backend="aot_eager", **kw)

    monkeypatch.setattr(torch, "compile", aot_eager)
    compiled = replace(CFG, compile=True)
    first = train(tiny_space, arch, replace(compiled, steps=10), tmp_path, progress=False)
    # fused kernels round differently: close to the eager run, not bit for bit
    np.testing.assert_allclose(first.losses, full.losses[:10], rtol=1e-4)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["compile"] is True
    assert len(compiled_modules) == 1  # the steps' model, once
    # its checkpoint holds the plain model's weights: an eager process resumes it
    rest = train(tiny_space, arch, CFG, tmp_path, progress=False)
    assert len(compiled_modules) == 1  # eager: not compiled
    assert rest.start_step == 10 and rest.step == 20
    np.testing.assert_allclose(rest.losses, full.losses, rtol=1e-3)
    assert list(rest.model.state_dict()) == list(full.model.state_dict())
    with pytest.raises(NasError, match="compile must be true or false"):
        TrainConfig(compile="yes")  # type: ignore[arg-type]


class _NanAfter(Dataset[VideoItem]):
    """Procedural items, NaN from the ``bad_from``-th fetch on (fetches happen in step order)."""

    def __init__(self, base: ProceduralVideos, bad_from: int) -> None:
        self.base, self.bad_from, self.calls = base, bad_from, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> VideoItem:
        self.calls += 1
        item = self.base[i]
        if self.calls > self.bad_from:
            item["video"] = torch.full_like(item["video"], float("nan"))
        return item


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_space, arch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _NanAfter(ProceduralVideos.for_geometry(tiny_space.geometry), bad_from=2 * 4)
    cfg = replace(CFG, steps=8, checkpoint_every=3, log_every=1)
    with pytest.raises(NasError, match=r"step 5: the loss is nan.*step_0000003") as e:
        train(tiny_space, arch, cfg, tmp_path, progress=False, dataset=data)
    assert "lower the learning rate" in str(e.value).lower()
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000003"
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "checkpoints").iterdir())
    with (tmp_path / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


class _SignalAt(Dataset[VideoItem]):
    """Procedural items; the ``at``-th fetch sends this process ``signum`` (a Ctrl-C or a
    scheduler's SIGTERM arriving while the step that fetched it runs)."""

    def __init__(self, base: ProceduralVideos, at: int, signum: int) -> None:
        self.base, self.at, self.signum, self.calls = base, at, signum, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> VideoItem:
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(self.signum)
        return self.base[i]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_the_step_in_progress_and_resumes_bit_for_bit(  # type: ignore[no-untyped-def]
    tiny_space, arch, full_run, tmp_path, signum, capsys
) -> None:
    _, full = full_run
    data = ProceduralVideos.for_geometry(tiny_space.geometry)
    before = signal.getsignal(signal.SIGTERM)
    # as a shell's background job (`nohup ... &`): Ctrl-C ignored, SIGTERM still stops cleanly
    int_before = signal.signal(signal.SIGINT, signal.SIG_IGN if signum == signal.SIGTERM
                               else signal.default_int_handler)  # fmt: skip
    try:
        with pytest.raises(KeyboardInterrupt):  # batch 2: fetch 13 is step 7's first video
            train(tiny_space, arch, CFG, tmp_path, progress=False, stop_on_signal=True,
                  dataset=_SignalAt(data, 13, signum))  # fmt: skip
        assert signal.getsignal(signal.SIGTERM) is before  # the trainer's handlers are gone
    finally:
        signal.signal(signal.SIGINT, int_before)
    assert "stopped at step 7" in capsys.readouterr().err
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000007"
    rest = train(tiny_space, arch, CFG, tmp_path, progress=False)
    assert rest.start_step == 7 and rest.losses == full.losses  # nothing lost, bitwise
    for (name, a), b in zip(rest.model.state_dict().items(), full.model.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name


def test_without_stop_on_signal_the_process_keeps_its_handlers(tiny_space, arch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A search's pool process ignores Ctrl-C (its search stops it) and trains proxies with
    the default: the signal stays ignored."""
    data = ProceduralVideos.for_geometry(tiny_space.geometry)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cfg = replace(CFG, steps=6)
        res = train(tiny_space, arch, cfg, tmp_path, progress=False,
                    dataset=_SignalAt(data, 3, signal.SIGINT))  # fmt: skip
        assert res.step == 6
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WRITES: list[list[str]] = []  # one list per active _file_writes block


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WRITES:
        return
    opened = event == "open" and isinstance(args[2], int) and bool(args[2] & _WRITE_FLAGS)
    made = event in ("os.mkdir", "os.rename", "os.remove", "tempfile.mkdtemp")
    if (opened or made) and "__pycache__" not in str(args[0]):  # imports cache bytecode
        _WRITES[-1].append(f"{event} {args[0]}")


@contextlib.contextmanager
def _file_writes() -> Iterator[list[str]]:
    """What the block writes to the file system, anywhere (seen through audit events)."""
    if not getattr(sys, "_nas_test_audit", False):  # a hook cannot be removed: install once
        sys.addaudithook(_audit)
        sys._nas_test_audit = True  # type: ignore[attr-defined]
    _WRITES.append([])
    try:
        yield _WRITES[-1]
    finally:
        _WRITES.pop()


def test_frozen_spatial_weights_stay_and_in_memory_runs_write_nothing(
    tiny_space, arch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with _file_writes() as seen:  # the watch sees writes
        (tmp_path / "x.txt").write_text("x")
    assert seen == [f"open {tmp_path / 'x.txt'}"]
    train(tiny_space, arch, replace(CFG, steps=1), None, progress=False)  # torch's lazy caches
    with _file_writes() as writes:
        res = train(tiny_space, arch, replace(CFG, steps=3), None, progress=False)
    assert res.checkpoint is None and res.metrics is None and writes == []
    torch.manual_seed(CFG.seed)
    init = build_video_unet(tiny_space, arch)
    for (name, a), b in zip(res.model.unet.state_dict().items(), init.unet.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), f"spatial {name} changed"
    moved = [n for n, p in res.model.temporal.named_parameters()
             if not torch.equal(p, dict(init.temporal.named_parameters())[n])]  # fmt: skip
    assert moved, "no temporal parameter trained"
    assert set(res.ema) == {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert all(n.startswith("temporal.") for n in res.ema)


def test_eps_objective_and_config_errors(tiny_space, arch) -> None:  # type: ignore[no-untyped-def]
    res = train(tiny_space, arch, replace(CFG, steps=2, objective="eps"), None, progress=False)
    assert len(res.losses) == 2 and all(np.isfinite(res.losses))
    with pytest.raises(NasError, match="objective 'flow' is not one of"):
        TrainConfig(objective="flow")
    with pytest.raises(NasError, match="geometry override 'frame'"):
        TrainConfig(geometry={"frame": 2})
    with pytest.raises(NasError, match="steps must be an integer >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(NasError, match="needs a CUDA device"):
        train(tiny_space, arch, replace(CFG, precision="fp16", device="cpu"), None,
              progress=False)  # fmt: skip
    assert TrainConfig.from_dict(CFG.to_dict()) == CFG
    # geometry overrides: one type inside, the same plain mapping in run files
    cfg = TrainConfig(geometry={"latent_width": 4, "frames": 2})
    assert cfg.geometry == GeometryOverride(frames=2, latent_width=4)
    assert json.dumps(cfg.to_dict()["geometry"]) == '{"frames": 2, "latent_width": 4}'
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(NasError, match=r"geometry\.frames: '2' is not an integer"):
        TrainConfig(geometry={"frames": "2"})


def test_trains_on_a_latents_folder(tiny_space, arch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        write_latents(tmp_path / f"v{i}", torch.randn(4, 4, 8, 8, generator=gen).clamp(-1, 1),
                      caption=f"{i} moves up fast")  # fmt: skip
    res = train(tiny_space, arch, replace(CFG, steps=2, data=str(tmp_path)), None, progress=False)
    assert len(res.losses) == 2 and all(np.isfinite(res.losses))
    with pytest.raises(NasError, match=r"v0\.safetensors: latents has shape \(4, 4, 8, 8\)"):
        train(tiny_space, arch, replace(CFG, data=str(tmp_path), geometry={"frames": 2}),
              tmp_path / "run", progress=False)  # fmt: skip
    assert not (tmp_path / "run").exists()  # the data is checked before anything is written


def test_proxy_scale_geometry_and_load_trained(tiny_space, arch, full_run) -> None:  # type: ignore[no-untyped-def]
    cfg = replace(CFG, steps=2, geometry={"frames": 2, "text_dim": 8})
    res = train(tiny_space, arch, cfg, None, progress=False)
    assert res.model.geometry.frames == 2 and res.model.geometry.text_dim == 8
    out, full = full_run
    model = load_trained(tiny_space, out)
    ema = full.ema_model()
    for (name, a), b in zip(model.state_dict().items(), ema.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_validation_loss_is_deterministic(tiny_space, full_run) -> None:  # type: ignore[no-untyped-def]
    _, res = full_run
    val = ProceduralVideos.for_geometry(tiny_space.geometry, split="val", difficulty="easy")
    model = res.ema_model().train()
    a = validation_loss(model, val, n_videos=5, batch_size=2)
    assert model.training  # its mode is restored
    b = validation_loss(model, val, n_videos=5, batch_size=5)
    assert list(a) == [200, 500, 800] and all(np.isfinite(list(a.values())))
    for t in a:
        assert a[t] == pytest.approx(b[t], rel=1e-5)
    assert validation_loss(model, val, n_videos=5, batch_size=2) == a
    assert validation_loss(model, val, n_videos=5, seed=1) != a
    w = weighted_validation_loss(a)
    assert w == pytest.approx(0.2 * a[200] + 0.3 * a[500] + 0.5 * a[800])
    assert weighted_validation_loss({100: 1.0, 300: 2.0}) == pytest.approx(1.75)


def test_flicker_score_and_sampler(tiny_space, full_run) -> None:  # type: ignore[no-untyped-def]
    still = torch.rand(4, 1, 8, 8).repeat(1, 6, 1, 1)
    assert flicker_score(still) == 0.0
    noise = torch.randn(2, 4, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    assert flicker_score(noise) == pytest.approx(2**0.5, rel=0.02)
    data = ProceduralVideos(frames=8, height=16, width=16, channels=4, text_length=4, text_dim=8)
    videos = torch.stack([data[i]["video"] for i in range(8)])
    shuffled = videos[:, :, torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    # what a per-frame model makes: each frame plausible, frame t from another video
    frames_of_others = torch.stack(
        [torch.stack([videos[(i + t) % 8, :, t] for t in range(8)], dim=1) for i in range(8)]
    )
    assert flicker_score(videos) < 0.6 < flicker_score(frames_of_others)
    assert flicker_score(shuffled) > flicker_score(videos)
    _, res = full_run
    model = res.ema_model()
    enc = ToyTextEncoder(tiny_space.geometry.text_length, tiny_space.geometry.text_dim)
    text = torch.stack([enc.encode("3 moves left fast"), enc.encode("7 moves up slow")])
    a = sample_video(model, text, steps=3, seed=1)
    assert a.shape == (2, 4, 4, 8, 8) and bool(torch.isfinite(a).all())
    assert torch.equal(a, sample_video(model, text, steps=3, seed=1))
    assert not torch.equal(a, sample_video(model, text, steps=3, seed=2))
    assert sample_video(model, text[0], steps=2, objective="eps").shape == (1, 4, 4, 8, 8)


def test_text_dropout_trains_on_empty_captions(tiny_space, arch) -> None:  # type: ignore[no-untyped-def]
    seen: list[torch.Tensor] = []

    def spy(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if type(module).__name__ == "VideoUNet" and module.training:
            seen.append(args[2].detach().clone())  # the text the step trains on

    cfg = replace(CFG, steps=6, batch_size=4)
    for dropout, lo, hi in ((0.0, 0, 0), (0.5, 1, 23)):
        seen.clear()
        handle = torch.nn.modules.module.register_module_forward_pre_hook(spy)
        try:
            train(tiny_space, arch, replace(cfg, text_dropout=dropout), None, progress=False)
        finally:
            handle.remove()
        texts = torch.cat(seen)  # (steps * batch, L, D)
        empty = int((texts.flatten(1).abs().sum(1) == 0).sum())
        assert len(texts) == 24 and lo <= empty <= hi, (dropout, empty)
    with pytest.raises(NasError, match="text_dropout"):
        replace(CFG, text_dropout=1.0)


def test_background_option_reaches_the_procedural_data(tiny_space) -> None:  # type: ignore[no-untyped-def]
    from nas.quality import open_dataset

    geo = tiny_space.geometry
    flat = open_dataset("procedural", geo, difficulty="easy", background=0.0)[0]["video"]
    default = open_dataset("procedural", geo, difficulty="easy")[0]["video"]
    assert float((flat == 0).float().mean()) > 0.5  # everything but the digit is exactly 0
    assert float((default == 0).float().mean()) < 0.05
    with pytest.raises(NasError, match="background"):
        replace(CFG, background=0.9)
    # positive colours: with a flat background no value is below 0; random ones go both ways
    kw = {"difficulty": "easy", "background": 0.0}
    positive = open_dataset("procedural", geo, **kw, colours="positive")
    pos = torch.stack([positive[i]["video"] for i in range(8)])
    rnd = torch.stack(
        [open_dataset("procedural", geo, **kw, colours="random")[i]["video"] for i in range(8)]
    )
    assert float(pos.min()) >= 0.0 and float(pos.max()) > 0.5
    assert float(rnd.min()) < -0.3
    # issue 15: positive colours are the default (the caption carries the motion)
    dflt = torch.stack([open_dataset("procedural", geo, **kw)[i]["video"] for i in range(8)])
    assert torch.equal(dflt, pos)
    with pytest.raises(NasError, match="colours"):
        replace(CFG, colours="green")


def test_guidance_mixes_conditional_and_empty_caption_predictions(tiny_space, full_run) -> None:  # type: ignore[no-untyped-def]
    _, res = full_run
    model = res.ema_model()
    enc = ToyTextEncoder(tiny_space.geometry.text_length, tiny_space.geometry.text_dim)
    text = torch.stack([enc.encode("3 moves left fast"), enc.encode("7 moves up slow")])
    plain = sample_video(model, text, steps=3, seed=1)
    # guidance 1 is plain sampling; guidance 0 is sampling with the empty caption
    assert torch.equal(sample_video(model, text, steps=3, seed=1, guidance=1.0), plain)
    empty = sample_video(model, torch.zeros_like(text), steps=3, seed=1)
    torch.testing.assert_close(
        sample_video(model, text, steps=3, seed=1, guidance=0.0), empty, atol=1e-5, rtol=1e-5
    )
    # one Euler step is linear in the velocity: guidance g gives x1 + g (cond - uncond) + uncond
    x_c = sample_video(model, text, steps=1, seed=1)
    x_u = sample_video(model, torch.zeros_like(text), steps=1, seed=1)
    torch.testing.assert_close(
        sample_video(model, text, steps=1, seed=1, guidance=3.0),
        x_u + 3.0 * (x_c - x_u),
        atol=1e-5,
        rtol=1e-5,
    )
    assert sample_video(model, text, steps=2, seed=1, guidance=2.0, objective="eps").shape == (
        2,
        4,
        4,
        8,
        8,
    )
    with pytest.raises(NasError, match="guidance"):
        sample_video(model, text, guidance=-1.0)


# ---------------------------------------------------------------------------------------------
# corrupt checkpoints: verified on resume, passed over for the last good one
# ---------------------------------------------------------------------------------------------


def _copy_run(full_run, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    shutil.copytree(full_run[0], out)
    return out, out / "checkpoints" / "step_0000010", out / "checkpoints" / "step_0000020"


def _tree(root) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_checkpoints_record_their_files_and_verify(full_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = full_run
    ckpt = out / "checkpoints" / "step_0000020"
    files = json.loads((ckpt / "state.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "ema.safetensors", "optimizer.safetensors"}
    for name, written in files.items():
        data = (ckpt / name).read_bytes()
        assert written == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    skipped: list[str] = []
    assert find_checkpoint(out, on_skip=lambda p, why: skipped.append(why)) == ckpt
    assert skipped == []


def test_older_checkpoints_without_hashes_are_checked_by_their_headers(full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, step10, step20 = _copy_run(full_run, tmp_path)
    for ckpt in (step10, step20):  # as nas wrote them before sizes and hashes were recorded
        state = json.loads((ckpt / "state.json").read_text())
        state["files"] = sorted(state["files"])
        (ckpt / "state.json").write_text(json.dumps(state))
    assert find_checkpoint(out) == step20
    ema = step20 / "ema.safetensors"
    ema.write_bytes(ema.read_bytes()[:-100])
    skipped: list[str] = []
    assert find_checkpoint(out, on_skip=lambda p, why: skipped.append(why)) == step10
    assert skipped == ["ema.safetensors is not a readable safetensors file"]


def test_resume_passes_over_a_truncated_checkpoint(tiny_space, arch, full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, full = full_run
    out, step10, step20 = _copy_run(full_run, tmp_path)
    model = step20 / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    skipped: list[tuple[str, str]] = []
    assert find_checkpoint(out, on_skip=lambda p, why: skipped.append((p.name, why))) == step10
    assert skipped == [("step_0000020", skipped[0][1])]
    assert skipped[0][1].startswith("model.safetensors is 1000 bytes")
    rest = train(tiny_space, arch, CFG, out, progress=False)
    assert rest.start_step == 10 and rest.losses == full.losses  # from step 10, bit for bit
    assert find_checkpoint(out) == step20  # rewritten, good again
    for name in ("model.safetensors", "ema.safetensors"):
        assert (step20 / name).read_bytes() == (
            full_run[0] / step20.relative_to(out) / name
        ).read_bytes()


def test_a_stale_bad_checkpoint_goes_once_an_earlier_step_is_saved(  # type: ignore[no-untyped-def]
    tiny_space, arch, full_run, tmp_path
) -> None:
    out, _, step20 = _copy_run(full_run, tmp_path)
    (step20 / "state.json").write_text('{"format": "nas-train-checkpoint/1", "step": 2')
    res = train(tiny_space, arch, replace(CFG, steps=15, checkpoint_every=5), out, progress=False)
    assert res.start_step == 10 and res.step == 15
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step_0000010", "step_0000015"]  # the unusable step 20 is gone


def test_no_good_checkpoint_is_one_error_and_changes_nothing(  # type: ignore[no-untyped-def]
    tiny_space, arch, full_run, tmp_path
) -> None:
    out, step10, step20 = _copy_run(full_run, tmp_path)
    (step10 / "ema.safetensors").unlink()
    flipped = bytearray((step20 / "model.safetensors").read_bytes())
    flipped[-3] ^= 0xFF
    (step20 / "model.safetensors").write_bytes(bytes(flipped))
    before = _tree(out)
    with pytest.raises(NasError) as e:
        train(tiny_space, arch, CFG, out, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{step20}: unusable checkpoint: model.safetensors does not match")
    assert "(and the 1 older one(s) too)" in msg and "\n" not in msg
    assert _tree(out) == before
    with pytest.raises(NasError, match=r"ema\.safetensors is missing"):
        load_trained(tiny_space, step10)
    with pytest.raises(NasError, match="unusable checkpoint"):
        load_trained(tiny_space, out)


def test_load_trained_takes_the_newest_good_checkpoint(tiny_space, full_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, step10, step20 = _copy_run(full_run, tmp_path)
    (step20 / "ema.safetensors").write_bytes(b"")
    old = load_trained(tiny_space, out)
    want = load_trained(tiny_space, step10)
    for (name, a), b in zip(old.state_dict().items(), want.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    best = tmp_path / "best"  # a copied checkpoint folder of another name still loads
    shutil.copytree(step10, best)
    assert set(load_trained(tiny_space, best).state_dict()) == set(want.state_dict())


def test_nas_train_resume_says_it_passed_over_a_checkpoint(  # type: ignore[no-untyped-def]
    full_run, tmp_path, capsys: pytest.CaptureFixture[str], root
) -> None:
    from nas.cli import main

    out, _, step20 = _copy_run(full_run, tmp_path)
    (step20 / "optimizer.safetensors").rename(step20 / "optimizer.old")
    rc = main(["train", "--arch", str(out / "arch.yaml"), "--space",
               str(root / "search_spaces" / "tiny.yaml"), "--out", str(out), "--resume",
               "--steps", "20", "--batch-size", "2", "--lr", "0.01", "--checkpoint-every", "10",
               "--log-every", "5", "--difficulty", "easy", "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == (
        "warning: passed over unusable checkpoint(s) step_0000020 (optimizer.safetensors is "
        "missing); resuming from the last good one, step_0000010\n"
    )
    assert f"resuming {out} from step_0000010" in captured.out and "steps 10 -> 20" in captured.out


def test_bf16_autocast_trains_on_cpu(tiny_space, arch) -> None:  # type: ignore[no-untyped-def]
    """bf16 on CPU runs the model under autocast (its matmuls in bf16) and keeps the weights,
    the loss and the EMA in fp32; its losses stay near the fp32 run's from the same seed."""
    fp32 = train(tiny_space, arch, replace(CFG, steps=3, device="cpu"), None, progress=False)
    res = train(
        tiny_space, arch, replace(CFG, steps=3, precision="bf16", device="cpu"), None,
        progress=False,
    )  # fmt: skip
    assert all(np.isfinite(res.losses)) and len(res.losses) == 3
    assert not np.array_equal(res.losses, fp32.losses)  # it did run in bf16
    np.testing.assert_allclose(res.losses, fp32.losses, rtol=0.05)
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    assert all(v.dtype == torch.float32 for v in res.ema.values())
