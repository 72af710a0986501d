"""Evaluation: a deterministic validation loss, a temporal flicker score, and a sampler.

These are the measurements proxies and reports build on:

- :func:`validation_loss`: the training objective on fixed videos with fixed noise at fixed
  timesteps, per timestep; :func:`weighted_validation_loss` folds it into one number that
  favours medium and high noise, where a video's layout and motion are decided.
- :func:`flicker_score`: a model-free measure of frame-to-frame change for any video.
- :func:`sample_video`: generate videos from a trained model (rectified-flow Euler steps, or
  DDIM for ``eps`` models) so sample metrics can be computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from nas.errors import NasError
from nas.quality._data import VideoItem
from nas.quality._objective import (
    NUM_TRAIN_STEPS,
    OBJECTIVES,
    alphas_cumprod,
    corrupt,
)

__all__ = [
    "DEFAULT_TIMESTEP_WEIGHTS",
    "flicker_score",
    "sample_video",
    "validation_loss",
    "weighted_validation_loss",
]

# Medium and high noise decide layout and motion; low noise is mostly texture, which the
# frozen image backbone already handles. Other timesteps are weighted in proportion to tau.
DEFAULT_TIMESTEP_WEIGHTS: Mapping[int, float] = {200: 0.2, 500: 0.3, 800: 0.5}


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def validation_loss(
    model: nn.Module,
    dataset: Dataset[VideoItem],
    *,
    timesteps: Sequence[int] = (200, 500, 800),
    n_videos: int = 16,
    seed: int = 0,
    objective: str = "rectified_flow",
    batch_size: int = 8,
) -> dict[int, float]:
    """Mean squared error of the objective's target, per timestep ``tau`` (0..1000 scale).

    Deterministic: videos ``0 .. n_videos-1`` of ``dataset`` (use a held-out split, e.g.
    ``ProceduralVideos(..., split="val")``), noise for video ``i`` at ``tau`` drawn from a
    generator seeded by ``(seed, i, tau)``, no gradients, the model in eval mode (its mode is
    restored). The same model, data and arguments give the same numbers on any batch size.
    For ``rectified_flow`` ``tau=800`` means ``t=0.8`` (mostly noise); for ``eps`` it is DDPM
    step 800 of 1000.
    """
    if objective not in OBJECTIVES:
        raise NasError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
    n = min(n_videos, len(dataset))  # type: ignore[arg-type]
    if n < 1:
        raise NasError("validation_loss needs at least one video")
    bad = [t for t in timesteps if not 0 <= t <= NUM_TRAIN_STEPS]
    if bad:
        raise NasError(f"timesteps {bad} are outside 0..{NUM_TRAIN_STEPS}")
    device = _device(model)
    was_training = model.training
    model.eval()
    sums = {int(t): 0.0 for t in timesteps}
    try:
        with torch.no_grad():
            for lo in range(0, n, batch_size):
                items = [dataset[i] for i in range(lo, min(n, lo + batch_size))]
                x0 = torch.stack([it["video"] for it in items]).to(device)
                text = torch.stack([it["text"] for it in items]).to(device)
                for tau in sums:
                    noise = torch.stack(
                        [
                            torch.randn(
                                x0.shape[1:],
                                generator=torch.Generator().manual_seed(_seed(seed, lo + k, tau)),
                            )
                            for k in range(len(items))
                        ]
                    ).to(device)
                    taus = torch.full((len(items),), float(tau), device=device)
                    xt, mt, target = corrupt(objective, x0, noise, taus)
                    pred = model(xt, mt, text).float()
                    per_video = (pred - target.float()).square().flatten(1).mean(1)
                    sums[tau] += float(per_video.double().sum())
    finally:
        model.train(was_training)
    return {tau: s / n for tau, s in sums.items()}


def weighted_validation_loss(
    per_timestep: Mapping[int, float], weights: Mapping[int, float] | None = None
) -> float:
    """One number from :func:`validation_loss`: a weighted mean over timesteps.

    Default weights: 0.2 / 0.3 / 0.5 at tau 200 / 500 / 800 (:data:`DEFAULT_TIMESTEP_WEIGHTS`);
    for other timesteps, weights proportional to tau. Weights are normalised to sum to 1.
    """
    if not per_timestep:
        raise NasError("no timesteps to weigh")
    if weights is None:
        if set(per_timestep) == set(DEFAULT_TIMESTEP_WEIGHTS):
            weights = DEFAULT_TIMESTEP_WEIGHTS
        else:
            weights = {t: max(float(t), 1.0) for t in per_timestep}
    missing = [t for t in per_timestep if t not in weights]
    if missing:
        raise NasError(f"no weight for timestep(s) {missing}; weights are for {sorted(weights)}")
    total = sum(weights[t] for t in per_timestep)
    return sum(weights[t] * v for t, v in per_timestep.items()) / total


def flicker_score(video: torch.Tensor | np.ndarray[Any, Any]) -> float:
    """Frame-to-frame change relative to the content: 0 for a still video.

    ``mean |x[t+1] - x[t]|`` over channels, pixels and frame pairs, divided by the video's
    spatial contrast ``mean |x - its frame's spatial mean|``. Accepts ``(C, T, H, W)`` or a
    batch ``(B, C, T, H, W)``. Reading it: 0 is a still video; white noise scores sqrt(2).
    The procedural data (8 frames) scores about 0.22 / 0.26 / 0.34 (easy / medium / hard); the
    same frames drawn from unrelated videos, as a per-frame model would make them, about 1.7.
    A generator with temporal layers that work lands near its data's value. It measures
    change, not correctness: compare generated videos with the data they imitate.
    """
    x = torch.as_tensor(video).detach().double()
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5:
        raise NasError(f"video must be (C, T, H, W) or (B, C, T, H, W), got {tuple(x.shape)}")
    if x.shape[2] < 2:
        raise NasError("flicker_score needs at least 2 frames")
    change = (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
    contrast = (x - x.mean(dim=(3, 4), keepdim=True)).abs().mean()
    return float(change / contrast.clamp_min(1e-8))


def sample_video(
    model: nn.Module,
    text: torch.Tensor,
    *,
    steps: int = 8,
    seed: int = 0,
    objective: str = "rectified_flow",
    shape: Sequence[int] | None = None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Generate videos ``(B, C, T, H, W)`` for text embeddings ``(B, L, D)`` (or ``(L, D)``).

    ``rectified_flow``: ``steps`` Euler steps of ``dx/dt = v(x, t)`` from ``t=1`` (noise) to 0
    on a uniform grid. ``eps``: deterministic DDIM with ``steps`` evenly spaced DDPM steps.
    ``shape`` is ``(C, T, H, W)``; it defaults to the model's geometry (a VideoUNet's). The
    initial noise comes from ``seed`` alone, so one seed gives one video per model.

    ``guidance`` != 1 applies classifier-free guidance: each step runs the model on the text
    and on the empty caption (all-zero text) in one doubled batch and uses
    ``uncond + guidance * (cond - uncond)``. It only makes sense for a model trained with
    ``TrainConfig.text_dropout > 0``; 1 is plain conditional sampling.
    """
    if objective not in OBJECTIVES:
        raise NasError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
    if steps < 1:
        raise NasError(f"steps must be >= 1, got {steps}")
    if not guidance >= 0:
        raise NasError(f"guidance must be >= 0 (1: no guidance), got {guidance!r}")
    if text.ndim == 2:
        text = text[None]
    if shape is None:
        g = getattr(model, "geometry", None)
        if g is None:
            raise NasError("give shape=(C, T, H, W): the model has no geometry")
        shape = (g.latent_channels, g.frames, g.latent_height, g.latent_width)
    device = _device(model)
    b = text.shape[0]
    gen = torch.Generator().manual_seed(_seed(seed, 0x5A11))
    x = torch.randn((b, *shape), generator=gen).to(device)
    text = text.to(device)
    guided = guidance != 1.0
    text_in = torch.cat([text, torch.zeros_like(text)]) if guided else text

    def predict(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        if not guided:
            out: torch.Tensor = model(x, tau, text_in).float()
            return out
        both: torch.Tensor = model(torch.cat([x, x]), torch.cat([tau, tau]), text_in).float()
        cond, uncond = both[:b], both[b:]
        return uncond + guidance * (cond - uncond)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if objective == "rectified_flow":
                grid = torch.linspace(1.0, 0.0, steps + 1)
                for i in range(steps):
                    t, t_next = float(grid[i]), float(grid[i + 1])
                    tau = torch.full((b,), t * NUM_TRAIN_STEPS, device=device)
                    v = predict(x, tau)
                    x = x + (t_next - t) * v
            else:
                ab = alphas_cumprod(device)
                taus = np.linspace(NUM_TRAIN_STEPS - 1, 0, steps).round().astype(int)
                for i, tau in enumerate(taus):
                    a_t = ab[tau].float()
                    a_prev = (
                        ab[taus[i + 1]].float()
                        if i + 1 < len(taus)
                        else torch.tensor(1.0, device=device)
                    )
                    eps = predict(x, torch.full((b,), int(tau), device=device))
                    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
                    x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    finally:
        model.train(was_training)
    return x
