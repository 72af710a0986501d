"""Diffusion objectives shared by the trainer, the validation loss and the sampler.

Timesteps are on one scale for both objectives, ``tau`` in [0, 1000]:
  - ``rectified_flow`` (SnapGen-V): ``t = tau / 1000``, ``x_t = (1 - t) x0 + t noise``, the model
    predicts the velocity ``noise - x0`` and is given ``t * 1000``.
  - ``eps`` (DDPM): the integer step ``tau`` (0..999) of a linear beta schedule from 1e-4 to 0.02
    over 1000 steps, ``x_t = sqrt(abar) x0 + sqrt(1 - abar) noise``; the model predicts ``noise``.
"""

from __future__ import annotations

import torch

__all__ = ["OBJECTIVES", "alphas_cumprod", "corrupt", "to_tau"]

OBJECTIVES = ("rectified_flow", "eps")
NUM_TRAIN_STEPS = 1000


def alphas_cumprod(device: torch.device | str = "cpu") -> torch.Tensor:
    """DDPM's cumulative alpha products for the linear schedule (float64 for accuracy)."""
    betas = torch.linspace(1e-4, 0.02, NUM_TRAIN_STEPS, dtype=torch.float64, device=device)
    return torch.cumprod(1.0 - betas, dim=0)


def to_tau(u: torch.Tensor, objective: str) -> torch.Tensor:
    """Map ``u`` in [0, 1) to the objective's timestep scale (integers for ``eps``)."""
    if objective == "eps":
        return torch.clamp(torch.floor(u * NUM_TRAIN_STEPS), 0, NUM_TRAIN_STEPS - 1)
    return u * NUM_TRAIN_STEPS


def corrupt(
    objective: str, x0: torch.Tensor, noise: torch.Tensor, tau: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, model timestep, target)`` for clean ``x0`` (B, ...), noise and ``tau`` (B,)."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    if objective == "rectified_flow":
        t = (tau / NUM_TRAIN_STEPS).to(x0.dtype).reshape(shape)
        return (1 - t) * x0 + t * noise, tau.to(x0.dtype), noise - x0
    if objective == "eps":
        idx = tau.long().clamp(0, NUM_TRAIN_STEPS - 1)
        ab = alphas_cumprod(x0.device)[idx].to(x0.dtype).reshape(shape)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise, idx, noise
    raise ValueError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
