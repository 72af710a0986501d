"""The adversarial stage: fine-tune a trained video model into a few-step sampler without
guidance (SnapGen-V's second stage).

``train(..., TrainConfig(stage="adversarial", teacher=RUN))`` runs it through the ordinary
trainer (checkpoints, resume, EMA, NaN stop, torchrun, progress bar); this module supplies what
differs: the teacher, the discriminator and the loss of one step.

- **Student**: the arch's VideoUNet, started from the teacher's (EMA) weights. It is trained
  on the fixed grid of ``few_steps`` Euler steps ``t_k = 1 - k / K`` (``K = few_steps``): a
  real clip noised to a grid time ``t_k`` (pure noise at ``k = 0``) goes in, and its one-step
  clean estimate ``x0 = x_t - t_k v`` is what the losses judge.
- **Discriminator**: the teacher's UNet encoder (down blocks and mid block), frozen, with a
  trainable spatial-temporal head after each down block and after the mid block. A head
  folds time into the batch for a 2-D ResBlock, then space into the batch for a temporal
  self-attention over frames, and scores each position with a 1x1 convolution plus a
  projection onto the pooled text embedding (through a linear layer). Only the heads learn.
  It reads clean clips (real or the student's) renoised to a logit-normal time ``s``.
- **Losses**: hinge (the discriminator ``relu(1 - D(real)) + relu(1 + D(fake))``, the student
  ``-D(fake)``), as in ADD and LADD: a margin loss stops pushing logits the discriminator
  already gets right, which keeps a small head set on frozen features from saturating and
  starving the student of gradient. Plus a distillation term: the squared distance from the
  student's clean estimate to the guided teacher's clean estimate of the same renoised clip,
  weighted by ``1 - s`` (high noise, where the teacher sees little of the sample, counts
  least). And a guided-velocity term: the squared distance from the student's velocity at
  its grid point to the guided teacher's at the same point, so the student's Euler steps
  are the guided teacher's, one UNet call each (guidance baked in).
- **Joint training** (``joint_images``): every even step trains on the first frame of each
  clip as a one-frame video.

:func:`few_step_sample` samples the result (Euler on the same grid, no guidance).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import NasError
from nas.model import VideoUNet
from nas.quality._eval import sample_video
from nas.quality._objective import NUM_TRAIN_STEPS
from nas.quality._train import (
    TrainConfig,
    _autocast,
    _checkpoint_problem,
    _Diverged,
    _flatten_optimizer,
    _unflatten_optimizer,
    find_checkpoint,
    load_trained,
    step_generator,
)

if TYPE_CHECKING:
    from nas.quality._train import _Setup, _Trainable

__all__ = [
    "MAX_FEW_STEPS",
    "Discriminator",
    "few_step_sample",
    "few_step_schedule",
    "teacher_config",
]

MAX_FEW_STEPS = 8
_HISTORY = ("d_loss", "g_adv", "distill", "guided")


def few_step_schedule(steps: int) -> list[float]:
    """The fixed grid of a few-step sampler: ``steps + 1`` times from 1 (noise) to 0, evenly
    spaced. The 4-step grid is 1, 0.75, 0.5, 0.25, 0; the 2- and 1-step grids are subsets."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_FEW_STEPS:
        raise NasError(f"a few-step sampler takes 1..{MAX_FEW_STEPS} steps, got {steps!r}")
    return [1.0 - i / steps for i in range(steps)] + [0.0]


def few_step_sample(
    model: nn.Module,
    text: torch.Tensor,
    *,
    steps: int = 4,
    seed: int = 0,
    shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """Videos ``(B, C, T, H, W)`` from a rectified-flow model in ``steps`` (1..8) Euler steps
    on :func:`few_step_schedule`'s grid, without guidance: one UNet call per step and video.

    ``x <- x + (t_next - t) v(x, t)`` from seeded noise (``seed`` alone fixes it, as in
    :func:`sample_video`, which this is with ``guidance=1``; ``evaluate_generation(...,
    steps=4)`` samples the same way). ``text`` is ``(B, L, D)`` or ``(L, D)``.
    """
    few_step_schedule(steps)  # checks steps
    return sample_video(
        model, text, steps=steps, seed=seed, objective="rectified_flow", shape=shape
    )


# ---------------------------------------------------------------------------------------------
# the teacher
# ---------------------------------------------------------------------------------------------


def _teacher_state(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The teacher's checkpoint folder and its state.json (one-line errors for the rest)."""
    p = Path(path)
    if not p.exists():
        raise NasError(f"teacher checkpoint not found: {p}")
    ckpt = p if (p / "state.json").is_file() else find_checkpoint(p)
    if ckpt is None:
        raise NasError(f"{p}: no nas train checkpoint (state.json) here or in checkpoints/")
    problem = _checkpoint_problem(ckpt)
    if problem is not None:
        raise NasError(f"{ckpt}: unusable teacher checkpoint: {problem}")
    state: dict[str, Any] = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    return ckpt, state


def teacher_config(path: str | Path) -> TrainConfig:
    """The settings a teacher run was trained with (its data, width and geometry are the
    student's defaults)."""
    return TrainConfig.from_dict(_teacher_state(path)[1]["config"])


def _load_teacher(s: _Setup) -> tuple[VideoUNet, dict[str, Any]]:
    """The frozen teacher on the device, and what identifies its weights (for resume)."""
    config = s.config
    ckpt, state = _teacher_state(str(config.teacher))
    arch_id = state["arch"].get("arch_id")
    if arch_id != s.arch.arch_id:
        raise NasError(
            f"teacher {ckpt} is a checkpoint of arch {arch_id}, not {s.arch.arch_id}: "
            "the student starts from the teacher's weights, so give the teacher's arch"
        )
    if state["space"].get("hash") != s.space.hash:
        raise NasError(f"teacher {ckpt} is from another space ({state['space'].get('name')!r})")
    tc = TrainConfig.from_dict(state["config"])
    if tc.objective != "rectified_flow":
        raise NasError(
            f"teacher {ckpt} was trained with objective {tc.objective}, not rectified_flow"
        )
    diffs = [
        f"{k}: teacher {getattr(tc, k)!r}, now {getattr(config, k)!r}"
        for k in ("width_mult", "geometry")
        if getattr(tc, k) != getattr(config, k)
    ]
    if diffs:
        raise NasError(f"teacher {ckpt} has another model size ({'; '.join(diffs)})")
    teacher = load_trained(s.space, ckpt).to(s.device)
    teacher.requires_grad_(False)
    ema = state.get("files", {})
    ema = ema.get("ema.safetensors") if isinstance(ema, dict) else None
    sha = ema.get("sha256") if isinstance(ema, dict) else None
    return teacher, {"checkpoint": str(ckpt), "step": state["step"], "ema_sha256": sha}


# ---------------------------------------------------------------------------------------------
# the discriminator
# ---------------------------------------------------------------------------------------------


class _Head(nn.Module):
    """One spatial-temporal head on ``(B*T, C, h, w)`` features: a 2-D ResBlock (time in the
    batch), a temporal self-attention (space in the batch), then per-position logits with a
    text projection; returns a logit per position ``(B, T*h*w)``."""

    def __init__(self, channels: int, text_dim: int, frames: int) -> None:
        super().__init__()
        groups = math.gcd(channels, 32)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.attn_norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.pos = nn.Parameter(torch.zeros(frames, channels))
        self.text = nn.Linear(text_dim, channels)
        self.out = nn.Conv2d(channels, 1, 1)
        for layer in (self.out, self.text):  # logits start at 0: the hinge losses at chance
            nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, frames: int, pooled: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = h.shape
        b = n // frames
        h = h + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(h))))))
        seq = h.reshape(b, frames, c, hh * ww).permute(0, 3, 1, 2).reshape(b * hh * ww, frames, c)
        q, k, v = self.qkv(self.attn_norm(seq + self.pos[:frames])).chunk(3, dim=-1)
        seq = seq + self.proj(F.scaled_dot_product_attention(q, k, v))
        h = seq.reshape(b, hh * ww, frames, c).permute(0, 2, 3, 1).reshape(n, c, hh, ww)
        emb = self.text(pooled).repeat_interleave(frames, dim=0)[:, :, None, None]
        logits: torch.Tensor = self.out(h) + (h * emb).sum(1, keepdim=True) / math.sqrt(c)
        return logits.reshape(b, -1)


class Discriminator(nn.Module):
    """A frozen VideoUNet encoder (``teacher``'s down and mid blocks) with a trainable
    :class:`_Head` after each block. ``forward(x, tau, text)`` takes noised clips
    ``(B, C, T, H, W)``, their timesteps ``(B,)`` on the 0..1000 scale and the text
    ``(B, L, D)``, and returns every head's logit per position, concatenated ``(B, P)``
    (a patch discriminator: the hinge losses average over positions). Its state dict is the
    heads' alone (the encoder is the teacher's)."""

    def __init__(self, teacher: VideoUNet) -> None:
        super().__init__()
        self._encoder = [teacher]  # not a submodule: frozen, and saved with the teacher
        g = teacher.geometry
        probe = torch.zeros(1, g.latent_channels, 1, g.latent_height, g.latent_width)
        device = next(teacher.parameters()).device
        with torch.no_grad():
            feats = teacher.encoder_features(
                probe.to(device),
                torch.zeros(1, device=device),
                torch.zeros(1, g.text_length, g.text_dim, device=device),
            )
        self.heads = nn.ModuleList(_Head(f.shape[1], g.text_dim, g.frames) for f in feats)

    @property
    def encoder(self) -> VideoUNet:
        return self._encoder[0]

    def forward(self, x: torch.Tensor, tau: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.encoder_features(x, tau, text)
        pooled = text.mean(1)
        logits = [head(f, x.shape[2], pooled) for head, f in zip(self.heads, feats, strict=True)]
        return torch.cat(logits, dim=1)


# ---------------------------------------------------------------------------------------------
# the stage's state and one step's loss
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Adversarial:
    """What the adversarial stage adds to a trainer run (``_Trainable.extra``)."""

    teacher: VideoUNet
    disc: Discriminator
    opt: torch.optim.Optimizer
    teacher_id: dict[str, Any]  # the teacher checkpoint's folder, step and EMA file hash
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _HISTORY})

    def checkpoint(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Extra files and state.json entries of a checkpoint."""
        heads = {k: v.detach().cpu().contiguous() for k, v in self.disc.state_dict().items()}
        files = {
            "discriminator.safetensors": heads,
            "discriminator_optimizer.safetensors": _flatten_optimizer(self.opt),
        }
        return files, {"adversarial": {"history": self.history, "teacher": self.teacher_id}}

    def restore(self, ckpt: Path, state: Mapping[str, Any]) -> None:
        """Load what :meth:`checkpoint` wrote (the trainer has verified the files)."""
        from safetensors.torch import load_file

        was = state.get("adversarial", {}).get("teacher")
        if was is not None and was.get("ema_sha256") != self.teacher_id["ema_sha256"]:
            raise NasError(
                f"{ckpt}: its teacher was {was.get('checkpoint')} (step {was.get('step')}); "
                f"{self.teacher_id['checkpoint']} (step {self.teacher_id['step']}) has other "
                "weights, so the run cannot continue bit for bit: give that teacher or a new --out"
            )
        self.disc.load_state_dict(load_file(str(ckpt / "discriminator.safetensors")))
        sd = self.opt.state_dict()
        flat = load_file(str(ckpt / "discriminator_optimizer.safetensors"))
        sd["state"] = _unflatten_optimizer(flat)
        self.opt.load_state_dict(sd)
        saved = state.get("adversarial", {}).get("history", {})
        self.history = {k: [float(x) for x in saved.get(k, [])] for k in _HISTORY}


def build_adversarial(s: _Setup, model: VideoUNet) -> _Adversarial:
    """Load the teacher into ``model`` (the student) and build the seeded discriminator."""
    teacher, teacher_id = _load_teacher(s)
    model.load_state_dict(teacher.state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.config.seed + 1)
        disc = Discriminator(teacher).to(s.device)
    opt = torch.optim.AdamW(
        disc.parameters(), lr=s.config.disc_lr, betas=(0.0, 0.99), weight_decay=0.0
    )
    return _Adversarial(teacher, disc, opt, teacher_id)


def _renoise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    tt = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - tt) * x0 + tt * noise


def _guided_velocity(
    teacher: VideoUNet, x: torch.Tensor, tau: torch.Tensor, text: torch.Tensor, w: float
) -> torch.Tensor:
    if w == 1.0:
        out: torch.Tensor = teacher(x, tau, text).float()
        return out
    both: torch.Tensor = teacher(
        torch.cat([x, x]), torch.cat([tau, tau]), torch.cat([text, 0 * text])
    ).float()
    cond, uncond = both.chunk(2)
    return uncond + w * (cond - uncond)


def _discriminator_step(
    s: _Setup,
    adv: _Adversarial,
    real: torch.Tensor,
    fake: torch.Tensor,
    tau: torch.Tensor,
    text: torch.Tensor,
    step: int,
) -> float:
    """One hinge-loss update of the heads on renoised real and student clips."""
    import torch.distributed as tdist

    with _autocast(s.device, s.amp_dtype):
        logits = adv.disc(torch.cat([real, fake]), torch.cat([tau, tau]), torch.cat([text, text]))
    d_real, d_fake = logits.float().chunk(2)
    d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    adv.opt.zero_grad(set_to_none=True)
    torch.autograd.backward(d_loss)
    heads = [p for p in adv.disc.parameters() if p.grad is not None]
    if s.dist.world > 1:
        for p in heads:
            grad = p.grad
            assert grad is not None
            tdist.all_reduce(grad)
            grad.div_(s.dist.world)
    value = float(d_loss.detach())
    gn = float(torch.nn.utils.clip_grad_norm_(heads, s.config.grad_clip or float("inf")))
    if not math.isfinite(value) or not math.isfinite(gn):
        raise _Diverged(step, f"the discriminator's loss is {value} (gradient norm {gn})")
    adv.opt.step()
    return value


def adversarial_loss(
    s: _Setup, t: _Trainable, net: nn.Module, batch: Mapping[str, torch.Tensor], step: int
) -> torch.Tensor:
    """The student's loss of step ``step`` (after the discriminator's update on the same
    clips): ``adv_weight * -D(fake) + distill_weight * distillation``."""
    config, device = s.config, s.device
    adv: _Adversarial = t.extra
    x0 = batch["video"].to(device, non_blocking=True)
    text = batch["text"].to(device, non_blocking=True)
    if config.joint_images and step % 2 == 0:
        x0 = x0[:, :, :1].contiguous()  # images: one-frame clips
    gen = step_generator(s, step)
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=gen).to(device)
    k = torch.randint(0, config.few_steps, (b,), generator=gen)
    t_k = (1.0 - k.double() / config.few_steps).float().to(device)
    renoise = torch.randn(x0.shape, generator=gen).to(device)
    if config.timestep_sampling == "logit_normal":
        u = torch.sigmoid(torch.randn(b, generator=gen)).to(device)
    else:
        u = torch.rand(b, generator=gen).to(device)
    tau = u * NUM_TRAIN_STEPS
    x_k = _renoise(x0, noise, t_k)
    with _autocast(device, s.amp_dtype):
        v = net(x_k, t_k * NUM_TRAIN_STEPS, text)
    x0_hat = x_k - t_k.reshape(-1, 1, 1, 1, 1) * v.float()
    fake = _renoise(x0_hat, renoise, u)
    d_loss = _discriminator_step(s, adv, _renoise(x0, renoise, u), fake.detach(), tau, text, step)
    adv.disc.requires_grad_(False)  # the student's gradient only
    try:
        with _autocast(device, s.amp_dtype):
            g_adv = -adv.disc(fake, tau, text).float().mean()
    finally:
        adv.disc.requires_grad_(True)
    with torch.no_grad(), _autocast(device, s.amp_dtype):
        v_t = _guided_velocity(adv.teacher, fake.detach(), tau, text, config.teacher_guidance)
    x0_teacher = fake.detach() - u.reshape(-1, 1, 1, 1, 1) * v_t
    per_clip = (x0_hat - x0_teacher).square().flatten(1).mean(1)
    distill = ((1 - u) * per_clip).mean()
    guided = _guided_term(s, adv, v, x_k, t_k, text)
    parts = (d_loss, float(g_adv.detach()), float(distill.detach()), float(guided.detach()))
    for name, value in zip(_HISTORY, parts, strict=True):
        adv.history[name].append(value)
    loss: torch.Tensor = (
        config.adv_weight * g_adv + config.distill_weight * distill + config.guided_weight * guided
    )
    return loss


def _guided_term(
    s: _Setup,
    adv: _Adversarial,
    v: torch.Tensor,
    x_k: torch.Tensor,
    t_k: torch.Tensor,
    text: torch.Tensor,
) -> torch.Tensor:
    """The guided-velocity term: the mean squared distance from the student's velocity at
    the grid point ``(x_k, t_k)`` to the guided teacher's at the same point. One Euler step
    of the student moves ``(t_k - t_{k+1}) v``, so an error in velocity costs the same at
    every grid point: the student learns to take the guided teacher's Euler steps on its own
    grid with one UNet call each (guidance distillation); the adversarial term then sharpens
    what few large steps blur. Zero (and no teacher call) when ``guided_weight`` is 0."""
    if s.config.guided_weight == 0:
        return torch.zeros((), device=v.device)
    with torch.no_grad(), _autocast(s.device, s.amp_dtype):
        v_teacher = _guided_velocity(
            adv.teacher, x_k, t_k * NUM_TRAIN_STEPS, text, s.config.teacher_guidance
        )
    return (v.float() - v_teacher).square().mean()
