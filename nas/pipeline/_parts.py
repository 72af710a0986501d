"""The pipeline's models as PyTorch modules: the text encoder and the decoders of a space.

Built from a :class:`nas.space.PipelinePart` (a bundled config or a local folder). Weights load
only from the part's local folder; a part without weights (every bundled config) is randomly
initialised and says so once on stderr. The modules take tensors only, so the profilers can
time them and the exporters convert them:

- :class:`TextEncoder`: ``forward(input_ids (B, L) int64) -> (B, L, D)`` (the last hidden
  state: what SD-1.5's UNet cross-attends to).
- :class:`Decoder`: ``forward(latents (N, C, h, w)) -> frames (N, 3, h*f, w*f)`` in [-1, 1]
  (SD's latent scaling undone first, as diffusers' pipelines do).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from nas.errors import NasError
from nas.space import PipelinePart

__all__ = ["Decoder", "TextEncoder", "build_decoder", "build_text_encoder", "decode_video"]

_SAID: set[str] = set()


def _note_random(part: PipelinePart) -> None:
    key = f"{part.name}:{part.source}"
    if key not in _SAID:
        _SAID.add(key)
        print(
            f"note: pipeline {part.role} {part.name!r} ({part.source}) has no local weights: "
            "randomly initialised",
            file=sys.stderr,
        )


def _load_safetensors(module: nn.Module, part: PipelinePart, prefix: str = "") -> None:
    """Load ``part.weights`` (a safetensors file) into ``module``; every key must match."""
    from safetensors.torch import load_file

    assert part.weights is not None
    state = load_file(part.weights)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing:
        raise NasError(
            f"pipeline.{part.name}: {Path(part.weights).name} lacks {len(missing)} weight(s) "
            f"of its config, e.g. {missing[0]!r}: the folder's config.json and weights differ"
        )
    del unexpected  # e.g. an AutoencoderKL file holds the encoder too


class TextEncoder(nn.Module):
    """A CLIP text model: token ids -> the last hidden state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(input_ids=input_ids).last_hidden_state
        return out


class Decoder(nn.Module):
    """An autoencoder's decoder: latents -> frames in [-1, 1]."""

    def __init__(self, part: PipelinePart, vae: nn.Module) -> None:
        super().__init__()
        self.family = part.family
        self.scaling = float(part.config.get("scaling_factor", 1.0))
        shift = part.config.get("shift_factor")
        self.shift = float(shift) if shift is not None else 0.0
        decoder = vae.decoder
        assert isinstance(decoder, nn.Module)
        self.decoder = decoder
        self.post_quant_conv: nn.Module | None = getattr(vae, "post_quant_conv", None)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents / self.scaling + self.shift
        if self.family == "autoencoder_kl":
            if self.post_quant_conv is not None:
                z = self.post_quant_conv(z)
            out: torch.Tensor = self.decoder(z)
            return out
        # AutoencoderTiny decodes to [0, 1]; frames are [-1, 1] like the KL decoder's
        frames: torch.Tensor = self.decoder(z)
        return frames.mul(2).sub(1)


def build_text_encoder(part: PipelinePart, *, load_weights: bool = True) -> TextEncoder:
    """The text encoder of a ``pipeline:`` part (transformers ``CLIPTextModel``)."""
    from nas.extras import require

    require("transformers", extra="pipeline", purpose="the pipeline's CLIP text encoder")
    from transformers import CLIPTextConfig, CLIPTextModel

    if part.family != "clip_text":
        raise NasError(f"pipeline.{part.name} is a {part.family}, not a CLIP text model")
    cfg = {k: v for k, v in part.config.items() if k != "model_type"}
    model: nn.Module = CLIPTextModel(CLIPTextConfig(**cfg))
    model.eval()
    if load_weights and part.weights:
        _load_safetensors(model, part)
    elif load_weights:
        _note_random(part)
    return TextEncoder(model)


def build_decoder(part: PipelinePart, *, load_weights: bool = True) -> Decoder:
    """The decoder of a ``pipeline:`` part (diffusers ``AutoencoderKL`` or
    ``AutoencoderTiny``; the encoder is dropped)."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    classes = {"autoencoder_kl": AutoencoderKL, "autoencoder_tiny": AutoencoderTiny}
    if part.family not in classes:
        raise NasError(f"pipeline.{part.name} is a {part.family}, not a decoder")
    vae = classes[part.family].from_config(part.config).eval()
    if load_weights and part.weights:
        _load_safetensors(vae, part)
    elif load_weights:
        _note_random(part)
    dec = Decoder(part, vae)
    del vae  # the encoder is not kept
    return dec.eval()


def decode_video(decoder: Decoder, latents: torch.Tensor, chunk: int = 1) -> torch.Tensor:
    """Latents ``(B, C, T, h, w)`` -> frames ``(B, 3, T, H, W)`` in [-1, 1], decoding ``chunk``
    frames per call (a video's frames are independent images to an image decoder)."""
    b, c, t, h, w = latents.shape
    flat = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    frames = torch.cat([decoder(flat[i : i + chunk]) for i in range(0, b * t, chunk)])
    return frames.reshape(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
