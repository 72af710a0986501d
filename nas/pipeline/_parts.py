"""The pipeline's models as PyTorch modules: the text encoder and the decoders of a space.

Built from a :class:`nas.space.PipelinePart` (a bundled config or a local folder). Weights load
only from the part's local folder; a part without weights (every bundled config) is randomly
initialised and says so once on stderr. The modules take tensors only, so the profilers can
time them and the exporters convert them:

- :class:`TextEncoder`: ``forward(input_ids (B, L) int64) -> (B, L, D)`` (the last hidden
  state: what SD-1.5's UNet cross-attends to).
- :class:`Decoder`: ``forward(latents (N, C, h, w)) -> frames (N, 3, h*f, w*f)`` in [-1, 1]
  (SD's latent scaling undone first, as diffusers' pipelines do).
- :class:`Encoder` (``nas encode``): ``forward(frames (N, 3, H, W) in [-1, 1]) -> latents
  (N, C, H/f, W/f)``, scaled as the UNet sees them (the inverse of :class:`Decoder`'s scaling;
  the KL posterior's mean, so encoding is deterministic).
- :class:`Tokenizer`: ``(prompts, length) -> input_ids (B, length)`` int64: the CLIPTokenizer
  files of the text encoder's folder (or of its sibling ``tokenizer/``, SD's layout) when it
  has them, else a deterministic word-hash fallback (said once on stderr).
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError
from nas.space import PipelinePart

__all__ = [
    "Decoder",
    "Encoder",
    "TextEncoder",
    "Tokenizer",
    "build_decoder",
    "build_encoder",
    "build_text_encoder",
    "build_tokenizer",
    "decode_video",
]

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


def _latent_scale(part: PipelinePart) -> tuple[float, float]:
    """The autoencoder's latent scaling and shift factors (1 and 0 when its config has none)."""
    shift = part.config.get("shift_factor")
    return float(part.config.get("scaling_factor", 1.0)), float(shift) if shift is not None else 0.0


class Decoder(nn.Module):
    """An autoencoder's decoder: latents -> frames in [-1, 1]."""

    def __init__(self, part: PipelinePart, vae: nn.Module) -> None:
        super().__init__()
        self.family = part.family
        self.scaling, self.shift = _latent_scale(part)
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
        # diffusers' DecoderTiny clamps its input (tanh) and maps TAESD's [0, 1] to [-1, 1]
        frames: torch.Tensor = self.decoder(z)
        return frames


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


def _build_vae(part: PipelinePart, load_weights: bool) -> nn.Module:
    """The whole autoencoder of a decoder part (diffusers ``AutoencoderKL`` or
    ``AutoencoderTiny``), weights loaded from its folder when it has them."""
    from nas.extras import require

    require("diffusers", purpose=f"the pipeline's {part.name!r} autoencoder")
    from diffusers import AutoencoderKL, AutoencoderTiny

    classes = {"autoencoder_kl": AutoencoderKL, "autoencoder_tiny": AutoencoderTiny}
    if part.family not in classes:
        raise NasError(f"pipeline.{part.name} is a {part.family}, not an autoencoder")
    cls = classes[part.family]
    known = inspect.signature(cls.__init__).parameters  # save_pretrained adds stale keys
    vae: nn.Module = cls.from_config({k: v for k, v in part.config.items() if k in known}).eval()
    if load_weights and part.weights:
        _load_safetensors(vae, part)
    elif load_weights:
        _note_random(part)
    return vae


def build_decoder(part: PipelinePart, *, load_weights: bool = True) -> Decoder:
    """The decoder of a ``pipeline:`` part (diffusers ``AutoencoderKL`` or
    ``AutoencoderTiny``; the encoder is dropped)."""
    vae = _build_vae(part, load_weights)
    dec = Decoder(part, vae)
    del vae  # the encoder is not kept
    return dec.eval()


class Encoder(nn.Module):
    """An autoencoder's encoder: frames in [-1, 1] -> latents as the UNet sees them."""

    def __init__(self, part: PipelinePart, vae: nn.Module) -> None:
        super().__init__()
        self.family = part.family
        self.scaling, self.shift = _latent_scale(part)
        self.channels = int(part.config.get("latent_channels", 4))
        encoder = vae.encoder
        assert isinstance(encoder, nn.Module)
        self.encoder = encoder
        self.quant_conv: nn.Module | None = getattr(vae, "quant_conv", None)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.encoder(frames)  # EncoderTiny maps [-1, 1] to TAESD's [0, 1]
        if self.family == "autoencoder_kl":
            if self.quant_conv is not None:
                z = self.quant_conv(z)
            z = z[:, : self.channels]  # the posterior's mean (the rest is its log-variance)
        return (z - self.shift) * self.scaling


def build_encoder(part: PipelinePart, *, load_weights: bool = True) -> Encoder:
    """The encoder of a decoder part's autoencoder (what ``nas encode`` runs)."""
    vae = _build_vae(part, load_weights)
    enc = Encoder(part, vae)
    del vae
    return enc.eval()


class Tokenizer:
    """Prompts -> ``input_ids (B, length)`` int64 for a CLIP text encoder."""

    def __init__(self, part: PipelinePart, clip: Any | None) -> None:
        c = part.config
        self.vocab_size = int(c["vocab_size"])
        self.bos = int(c.get("bos_token_id", 0))
        self.eos = int(c.get("eos_token_id", 2))
        self.pad = int(c.get("pad_token_id", 1))
        self.clip = clip  # a transformers CLIPTokenizer, or None: the fallback
        self.kind = "clip" if clip is not None else "fallback"

    def _fallback_ids(self, prompt: str) -> list[int]:
        special = {self.bos, self.eos, self.pad}
        first = max(special) + 1
        ids = []
        for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", prompt.lower()):
            h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big")
            ids.append(first + h % max(1, self.vocab_size - first))
        return ids

    def __call__(self, prompts: Sequence[str], length: int) -> torch.Tensor:
        if self.clip is not None:
            ids: torch.Tensor = self.clip(
                list(prompts),
                padding="max_length",
                max_length=length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            return ids.to(torch.int64)
        out = torch.full((len(prompts), length), self.pad, dtype=torch.int64)
        for i, prompt in enumerate(prompts):
            row = [*[self.bos, *self._fallback_ids(prompt)][: length - 1], self.eos]
            out[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        return out


_TOKENIZER_FILES = ("vocab.json", "merges.txt")


def _tokenizer_folder(part: PipelinePart) -> Path | None:
    if not part.source.startswith("path:"):
        return None
    folder = Path(part.source[5:])
    folder = folder if folder.is_dir() else folder.parent
    for cand in (folder, folder.parent / "tokenizer"):  # SD: text_encoder/ beside tokenizer/
        if all((cand / f).is_file() for f in _TOKENIZER_FILES):
            return cand
    return None


def build_tokenizer(part: PipelinePart) -> Tokenizer:
    """The tokenizer of a text-encoder part: the folder's CLIPTokenizer files (vocab.json,
    merges.txt; in the folder or its sibling ``tokenizer/``), else a deterministic fallback
    (words hashed into the vocabulary, between the BOS and EOS ids), said once on stderr."""
    folder = _tokenizer_folder(part)
    if folder is None:
        key = f"tokenizer:{part.name}:{part.source}"
        if key not in _SAID:
            _SAID.add(key)
            print(
                f"note: pipeline {part.role} {part.name!r} ({part.source}) has no tokenizer "
                "files (vocab.json, merges.txt): fallback tokenizer (words hashed to ids)",
                file=sys.stderr,
            )
        return Tokenizer(part, None)
    from nas.extras import require

    require("transformers", extra="pipeline", purpose="the pipeline's CLIP tokenizer")
    from transformers import CLIPTokenizer

    try:
        clip = CLIPTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        why = " ".join(str(e).split())[:200]
        raise NasError(f"{folder}: the CLIP tokenizer files cannot be read: {why}") from None
    return Tokenizer(part, clip)


def decode_video(decoder: nn.Module, latents: torch.Tensor, chunk: int = 1) -> torch.Tensor:
    """Latents ``(B, C, T, h, w)`` -> frames ``(B, 3, T, H, W)`` in [-1, 1], decoding ``chunk``
    frames per call (a video's frames are independent images to an image decoder)."""
    b, c, t, h, w = latents.shape
    flat = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    frames = torch.cat([decoder(flat[i : i + chunk]) for i in range(0, b * t, chunk)])
    return frames.reshape(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
