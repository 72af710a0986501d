"""The adversarial stage on the tiny space: the discriminator's shapes and gradients, the
losses moving the right way, bitwise resume, NaN stop, one-line errors, and the few-step
sampler against hand-computed Euler steps."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_trainer import _NanAfter  # this folder is on sys.path (pytest's rootdir import)

from nas.errors import NasError
from nas.quality import (
    Discriminator,
    ProceduralVideos,
    TrainConfig,
    few_step_sample,
    few_step_schedule,
    find_checkpoint,
    load_trained,
    sample_video,
    teacher_config,
    train,
)
from nas.space import sample_arch

TEACHER = TrainConfig(
    steps=20,
    batch_size=2,
    lr=1e-2,
    checkpoint_every=20,
    log_every=5,
    difficulty="easy",
    text_dropout=0.1,
    freeze_spatial=False,
)


@pytest.fixture(scope="module")
def arch(tiny_space):  # type: ignore[no-untyped-def]
    return sample_arch(tiny_space, np.random.default_rng(0))


@pytest.fixture(scope="module")
def teacher(tiny_space, arch, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("teacher")
    train(tiny_space, arch, TEACHER, out, progress=False)
    return out


def _student(teacher_dir, **kw):  # type: ignore[no-untyped-def]
    base = replace(
        TEACHER,
        stage="adversarial",
        teacher=str(teacher_dir),
        text_dropout=0.0,
        lr=1e-3,
        disc_lr=1e-3,
        checkpoint_every=5,
        steps=10,
    )
    return replace(base, **kw)


def test_discriminator_shapes_and_only_its_heads_learn(tiny_space, teacher) -> None:  # type: ignore[no-untyped-def]
    model = load_trained(tiny_space, teacher)
    model.requires_grad_(False)
    disc = Discriminator(model)
    g = model.geometry
    levels = len(model.unet.down_blocks) + 1  # each down block, then the mid block
    assert len(disc.heads) == levels
    assert set(disc.state_dict()) == {f"heads.{k}" for k in disc.heads.state_dict()}
    feats = model.encoder_features(
        torch.zeros(2, g.latent_channels, g.frames, g.latent_height, g.latent_width),
        torch.full((2,), 500.0),
        torch.zeros(2, g.text_length, g.text_dim),
    )
    assert len(feats) == levels and all(f.shape[0] == 2 * g.frames for f in feats)
    assert [h.out.in_channels for h in disc.heads] == [f.shape[1] for f in feats]
    x = torch.randn(2, g.latent_channels, g.frames, g.latent_height, g.latent_width)
    with torch.no_grad():  # the logits start at 0 (hinge losses at chance)
        assert torch.equal(
            disc(x, torch.full((2,), 9.0), torch.randn(2, 6, g.text_dim)),
            0 * x[:, 0, 0, 0, :1].expand(2, sum(g.frames * f.shape[2] * f.shape[3] for f in feats)),
        )
        for head in disc.heads:  # as if trained
            torch.nn.init.normal_(head.out.weight)
            torch.nn.init.normal_(head.text.weight)
    for frames in (g.frames, 1):  # videos and images (one-frame clips)
        x = torch.randn(3, g.latent_channels, frames, g.latent_height, g.latent_width)
        x.requires_grad_(True)
        text = torch.randn(3, g.text_length, g.text_dim)
        logits = disc(x, torch.full((3,), 400.0), text)
        positions = sum(frames * f.shape[2] * f.shape[3] for f in feats)  # patch logits
        assert logits.shape == (3, positions)
        disc.zero_grad(set_to_none=True)
        logits.sum().backward()
        assert all(p.grad is None for p in model.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
        assert x.grad is not None and x.grad.abs().sum() > 0  # the student's path
    # the text reaches the logits through each head's projection
    x = torch.randn(1, g.latent_channels, g.frames, g.latent_height, g.latent_width)
    with torch.no_grad():
        a = disc(x, torch.full((1,), 400.0), torch.zeros(1, g.text_length, g.text_dim))
        b = disc(x, torch.full((1,), 400.0), torch.ones(1, g.text_length, g.text_dim))
    assert not torch.allclose(a, b)


def _distill_gap(student: torch.nn.Module, teacher: torch.nn.Module) -> float:
    """The distillation term on 8 fixed clips, noise and times (guidance 3)."""
    data = ProceduralVideos.for_geometry(teacher.geometry, difficulty="easy")  # type: ignore[arg-type]
    x0 = torch.stack([data[i]["video"] for i in range(8)])
    text = torch.stack([data[i]["text"] for i in range(8)])
    gen = torch.Generator().manual_seed(7)
    noise, renoise = torch.randn(x0.shape, generator=gen), torch.randn(x0.shape, generator=gen)
    t_k = torch.tensor([1.0, 0.75, 0.5, 0.25] * 2)[:, None, None, None, None]
    u = torch.linspace(0.1, 0.9, 8)[:, None, None, None, None]
    with torch.no_grad():
        x_t = (1 - t_k) * x0 + t_k * noise
        x0_hat = x_t - t_k * student(x_t, t_k.flatten() * 1000, text)
        fake = (1 - u) * x0_hat + u * renoise
        both = teacher(torch.cat([fake, fake]), torch.cat([u.flatten()] * 2) * 1000,
                       torch.cat([text, 0 * text]))  # fmt: skip
        cond, uncond = both.chunk(2)
        x0_teacher = fake - u * (uncond + 3 * (cond - uncond))
        per_clip = (x0_hat - x0_teacher).square().flatten(1).mean(1)
    return float(((1 - u.flatten()) * per_clip).mean())


def test_the_losses_move_the_right_way(tiny_space, arch, teacher) -> None:  # type: ignore[no-untyped-def]
    # the discriminator, against a student that hardly moves, learns to tell them apart:
    # its hinge loss starts at chance (2: the logits start at 0) and falls
    slow = _student(
        teacher, steps=40, lr=1e-9, disc_lr=3e-3, batch_size=4, timestep_sampling="uniform"
    )
    d_loss = train(tiny_space, arch, slow, None, progress=False).parts["d_loss"]
    assert len(d_loss) == 40 and d_loss[0] == pytest.approx(2.0)
    assert np.mean(d_loss[-10:]) < min(np.mean(d_loss[:10]), 1.97)
    # the student, with distillation alone, comes closer to the guided teacher (measured on
    # fixed clips, noise and times: the per-step losses are too noisy to compare)
    t = load_trained(tiny_space, teacher)
    alone = _student(teacher, steps=30, adv_weight=0.0, guided_weight=0.0, lr=3e-3)
    s = train(tiny_space, arch, alone, None, progress=False)
    assert len(s.parts["distill"]) == 30 and s.parts["g_adv"]  # recorded, though unweighted
    assert _distill_gap(s.model, t) < 0.9 * _distill_gap(t, t)
    assert s.parts["guided"] == (0.0,) * 30  # off: not computed
    # the student starts from the teacher's weights
    s0 = train(tiny_space, arch, _student(teacher, steps=1, lr=1e-9), None, progress=False)
    for (name, a), b in zip(s0.model.state_dict().items(), t.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def _guided_gap(student: torch.nn.Module, teacher: torch.nn.Module) -> float:
    """The guided-velocity term on 8 fixed clips and noise at the 4-step grid (guidance 3)."""
    data = ProceduralVideos.for_geometry(teacher.geometry, difficulty="easy")  # type: ignore[arg-type]
    x0 = torch.stack([data[i]["video"] for i in range(8)])
    text = torch.stack([data[i]["text"] for i in range(8)])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(8))
    t_k = torch.tensor([1.0, 0.75, 0.5, 0.25] * 2)
    with torch.no_grad():
        x_t = (1 - t_k[:, None, None, None, None]) * x0 + t_k[:, None, None, None, None] * noise
        v = student(x_t, t_k * 1000, text)
        cond, uncond = teacher(
            torch.cat([x_t, x_t]), torch.cat([t_k, t_k]) * 1000, torch.cat([text, 0 * text])
        ).chunk(2)
    return float((v - (uncond + 3 * (cond - uncond))).square().mean())


def test_the_guided_term_takes_the_guided_teachers_steps(tiny_space, arch, teacher) -> None:  # type: ignore[no-untyped-def]
    # with the guided-velocity term alone, the student's velocity at its grid points comes
    # closer to the guided teacher's (fixed clips and noise; the per-step figures are noisy)
    t = load_trained(tiny_space, teacher)
    cfg = _student(teacher, steps=30, adv_weight=0.0, distill_weight=0.0, lr=3e-4)
    s = train(tiny_space, arch, cfg, None, progress=False)
    assert len(s.parts["guided"]) == 30 and all(g > 0 for g in s.parts["guided"])
    assert _guided_gap(s.model, t) < 0.8 * _guided_gap(t, t)


def test_resume_is_bitwise_and_keeps_the_discriminator(tiny_space, arch, teacher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _student(teacher, joint_images=True)
    full = train(tiny_space, arch, cfg, tmp_path / "full", progress=False)
    names = {p.name for p in full.checkpoint.iterdir()}  # type: ignore[union-attr]
    assert {"discriminator.safetensors", "discriminator_optimizer.safetensors"} <= names
    first = train(tiny_space, arch, replace(cfg, steps=5), tmp_path / "part", progress=False)
    assert first.step == 5
    rest = train(tiny_space, arch, cfg, tmp_path / "part", progress=False)
    assert rest.start_step == 5 and rest.losses == full.losses  # bitwise, on CPU
    assert rest.parts == full.parts
    for (name, a), b in zip(
        rest.model.state_dict().items(), full.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for name in full.ema:
        assert torch.equal(rest.ema[name], full.ema[name]), name
    with pytest.raises(NasError, match=r"distill_weight: checkpoint 1\.0, now 2\.0"):
        train(tiny_space, arch, replace(cfg, steps=12, distill_weight=2.0), tmp_path / "part")


def test_a_nan_stops_keeping_the_last_good_checkpoint(tiny_space, arch, teacher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _NanAfter(ProceduralVideos.for_geometry(tiny_space.geometry), bad_from=2 * 4)
    cfg = _student(teacher, steps=8, checkpoint_every=3)
    with pytest.raises(NasError, match=r"step 5: .*nan.*step_0000003"):
        train(tiny_space, arch, cfg, tmp_path, progress=False, dataset=data)
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000003"


def test_one_line_errors(tiny_space, arch, teacher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NasError, match="--stage adversarial needs --teacher"):
        TrainConfig(stage="adversarial")
    with pytest.raises(NasError, match="is not one of"):
        TrainConfig(stage="gan")
    with pytest.raises(NasError, match="for --stage adversarial"):
        TrainConfig(teacher="x")
    with pytest.raises(NasError, match="teacher checkpoint not found"):
        train(tiny_space, arch, _student(tmp_path / "nope"), None, progress=False)
    other = sample_arch(tiny_space, np.random.default_rng(5))
    assert other.arch_id != arch.arch_id
    with pytest.raises(NasError, match=rf"checkpoint of arch {arch.arch_id}, not {other.arch_id}"):
        train(tiny_space, other, _student(teacher), None, progress=False)
    with pytest.raises(NasError, match="another model size"):
        train(tiny_space, arch, _student(teacher, width_mult=0.5), None, progress=False)
    with pytest.raises(NasError, match=r"1\.\.8"):
        _student(teacher, few_steps=9)
    assert teacher_config(teacher).text_dropout == 0.1


def test_few_step_sampler_is_euler_on_the_fixed_grid() -> None:
    assert few_step_schedule(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert few_step_schedule(1) == [1.0, 0.0]
    for bad in (0, 9, 2.0):
        with pytest.raises(NasError, match=r"1\.\.8"):
            few_step_schedule(bad)  # type: ignore[arg-type]

    class Linear(torch.nn.Module):
        """v(x, tau) = a x + tau / 1000 + text mean: easy to step by hand."""

        def __init__(self, a: float) -> None:
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(a))

        def forward(self, x: torch.Tensor, tau: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            shift = (tau / 1000 + text.mean((1, 2))).reshape(-1, 1, 1, 1, 1)
            return self.a * x + shift

    shape = (2, 3, 4, 4)
    text = torch.randn(2, 5, 6)
    x = few_step_sample(Linear(0.0), torch.zeros(2, 5, 6), steps=1, seed=3, shape=shape)
    x = x + 1.0  # undo its one step of v = 1 (tau = 1000, no text): the seed's noise
    for steps in (1, 2, 4):
        got = few_step_sample(Linear(-0.5), text, steps=steps, seed=3, shape=shape)
        want = x.clone()
        for i in range(steps):
            t, t_next = 1.0 - i / steps, 1.0 - (i + 1) / steps
            v = -0.5 * want + t + text.mean((1, 2)).reshape(-1, 1, 1, 1, 1)
            want = want + (t_next - t) * v
        assert torch.allclose(got, want, atol=1e-6), steps
        same = sample_video(Linear(-0.5), text, steps=steps, seed=3, shape=shape, guidance=1.0)
        assert torch.equal(got, same)  # what evaluate_generation(steps=...) samples


def test_nas_train_stage_adversarial(root, tiny_space, arch, teacher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    def nas(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nas", "train", "--space", "search_spaces/tiny.yaml", *args],
            capture_output=True, text=True, cwd=root, timeout=300,
        )  # fmt: skip

    arch_file = arch.save(tmp_path / "arch.yaml")
    other = sample_arch(tiny_space, np.random.default_rng(5)).save(tmp_path / "other.yaml")
    base = ("--arch", str(arch_file), "--no-progress", "--steps", "2", "--batch-size", "2")
    for args, needle in (
        (("--stage", "adversarial"), "--stage adversarial needs --teacher"),
        (("--stage", "adversarial", "--teacher", str(tmp_path / "nope")), "not found"),
        (("--teacher", str(teacher)), "for --stage adversarial"),
    ):
        bad = nas(*base, "--out", str(tmp_path / "x"), *args)
        assert bad.returncode == 2 and needle in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error:")
    wrong = nas("--arch", str(other), "--no-progress", "--stage", "adversarial", "--teacher",
                str(teacher), "--out", str(tmp_path / "y"))  # fmt: skip
    assert wrong.returncode == 2 and "checkpoint of arch" in wrong.stderr
    assert wrong.stderr.count("\n") == 1
    out = tmp_path / "student"
    ok = nas(*base, "--stage", "adversarial", "--teacher", str(teacher), "--few-steps", "2",
             "--out", str(out), "--joint-images")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    state = json.loads((find_checkpoint(out) / "state.json").read_text())  # type: ignore[operator]
    cfg = state["config"]
    assert cfg["stage"] == "adversarial" and cfg["few_steps"] == 2 and cfg["joint_images"]
    assert cfg["freeze_spatial"] is False and cfg["difficulty"] == "easy"  # the teacher's
    assert len(state["adversarial"]["history"]["d_loss"]) == 2


def test_resume_refuses_a_teacher_that_changed(tiny_space, arch, teacher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    moved = tmp_path / "teacher"
    shutil.copytree(teacher, moved)
    cfg = _student(moved, steps=4, checkpoint_every=2)
    train(tiny_space, arch, replace(cfg, steps=2), tmp_path / "s", progress=False)
    train(tiny_space, arch, replace(TEACHER, steps=21), moved, progress=False)  # new weights
    with pytest.raises(NasError, match="cannot continue bit for bit"):
        train(tiny_space, arch, cfg, tmp_path / "s", progress=False)
