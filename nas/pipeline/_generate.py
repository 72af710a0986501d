"""``nas generate``: a prompt -> text embeddings -> N denoising steps -> frames -> MP4 + PNG.

Two kinds of checkpoint (``nas train``):

- trained on the procedural data or a folder of video files: the UNet works on pixels as
  latents and reads the toy text encoder of ``nas.quality``; its samples are the frames
  (``decoder="pixels"``, latent channels shown as R, G, B).
- trained on latents (``nas encode``): the prompt goes through the space's pipeline text
  encoder (CLIP; the toy one when the pipeline has none) and the latents through a decoder of
  the pipeline (the arch's decode choice by default).

Sampling reuses :func:`nas.quality.sample_video`: Euler steps of the rectified flow (DDIM for
``eps`` checkpoints), classifier-free guidance when ``guidance != 1``. A few-step student of
``nas train --stage adversarial`` samples with :func:`nas.quality.few_step_sample` (its
``few_steps`` Euler steps on the few-step grid) without guidance.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError, SpaceError
from nas.pipeline._media import check_out_path, to_uint8, write_mp4, write_png_strip
from nas.pipeline._parts import build_decoder, build_text_encoder, build_tokenizer, decode_video
from nas.space import Arch, DecodeChoice, Geometry, SearchSpace, arch_from_dict

__all__ = ["GenerateResult", "generate", "sampler_name"]

PIXELS = "pixels"  # the decoder value for checkpoints whose latents are pixels


@dataclass
class GenerateResult:
    """What :func:`generate` made and how."""

    video: torch.Tensor  # (3, T, H, W) in [-1, 1]
    latents: torch.Tensor  # (C, T, h, w), what the UNet sampled
    mp4: Path
    png: Path
    decoder: str  # "pixels" or a decode choice key (vae/chunk4)
    text_encoder: str  # "toy" or the pipeline part's source
    sampler: str  # "euler" | "ddim"
    steps: int
    guidance: float
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ``cuda:1``..."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise NasError(f"--device {name!r}: not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    return dev


def sampler_name(objective: str) -> str:
    return "ddim" if objective == "eps" else "euler"


class _Ticking(nn.Module):
    """A module that advances a progress bar on every call (one per step or chunk)."""

    def __init__(self, inner: nn.Module, tick: Callable[[], None]) -> None:
        super().__init__()
        self.inner = inner
        self.tick = tick
        self.geometry = getattr(inner, "geometry", None)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(*args)
        self.tick()
        return out


def _resolve_checkpoint(path: Path) -> Path:
    from nas.quality import find_checkpoint

    if (path / "state.json").is_file():
        return path
    if path.is_file() and path.name in ("ema.safetensors", "model.safetensors"):
        return path.parent
    if not path.exists():
        raise NasError(f"--checkpoint {path}: not found")
    found = find_checkpoint(path)
    if found is None:
        raise NasError(
            f"--checkpoint {path}: no nas train checkpoint here (a step_* folder with "
            "state.json, or a run folder with checkpoints/)"
        )
    return found


def _check_same_arch(space: SearchSpace, arch: Arch, state: dict[str, Any], ckpt: Path) -> None:
    """The checkpoint must hold this arch's UNet in this space (a decoder may differ)."""
    saved_space = state.get("space") or {}
    if saved_space.get("hash") != space.hash:
        raise NasError(
            f"--checkpoint {ckpt}: trained in space {saved_space.get('name')!r} (hash "
            f"{saved_space.get('hash')}), not {space.name!r} ({space.hash}): give --space the "
            "space it was trained in"
        )
    try:
        theirs = arch_from_dict(space, state.get("arch"), str(ckpt / "state.json"))
    except SpaceError as e:
        raise NasError(f"--checkpoint {ckpt}: its arch does not fit this space: {e}") from None
    if theirs.unet_id != arch.unet_id:
        raise NasError(
            f"--checkpoint {ckpt}: trained for arch {theirs.arch_id}, not {arch.arch_id} "
            f"(--arch): give the arch file it was trained for ({ckpt.parent.parent / 'arch.yaml'})"
            " or a checkpoint of this arch"
        )


def _load_unet(
    space: SearchSpace, arch: Arch, checkpoint: str | Path | None
) -> tuple[nn.Module, dict[str, Any]]:
    """The UNet (eval, CPU) and its training config (empty: untrained)."""
    from nas.model import build_video_unet
    from nas.quality import load_trained

    if checkpoint is None:
        print(
            f"note: no --checkpoint: the UNet of {arch.arch_id} is untrained (seeded; its "
            "temporal layers start at identity)",
            file=sys.stderr,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same untrained UNet every time
            model = build_video_unet(space, arch).eval()
        return model, {}
    ckpt = _resolve_checkpoint(Path(checkpoint))
    try:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise NasError(f"{ckpt / 'state.json'}: cannot be read: {e}") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise NasError(f"{ckpt / 'state.json'}: not a nas train checkpoint (no config)")
    _check_same_arch(space, arch, state, ckpt)
    return load_trained(space, ckpt), dict(state["config"])


def _trained_on_pixels(space: SearchSpace, data: str | None) -> bool:
    """Whether the UNet's latents are pixels (procedural data, video files)."""
    if data is None:  # untrained: the pipeline's latents when the space has decoders
        return not space.decode
    if data == "procedural":
        return True
    root = Path(data)
    if root.is_dir():
        names = [p.name for p in root.iterdir()]
        return not any(n.endswith((".safetensors", ".npz", ".latents.npy")) for n in names)
    return not space.decode  # the folder is gone: latents if the space decodes any


def _decode_choice(
    space: SearchSpace, arch: Arch, decoder: str | None, pixels: bool
) -> DecodeChoice | None:
    """``--decoder``: ``pixels``, a decode choice (``vae/chunk4``) or a decoder name (its
    arch's or first listed chunk); by default pixels for pixel-trained UNets, else the arch's
    decode choice (or the space's first)."""
    if decoder == PIXELS or (decoder is None and (pixels or not space.decode)):
        return None
    p = space.pipeline
    if p is None or not p.decoders:
        raise NasError(
            f"--decoder {decoder}: space {space.name!r} has no pipeline decoders; use "
            f"--decoder {PIXELS} or a space with a pipeline: section"
        )
    if decoder is None:
        return p.choice(arch.decoder) if arch.decoder else p.decode[0]
    if "/" in decoder:
        try:
            return p.choice(decoder)
        except KeyError as e:
            raise NasError(f"--decoder: {e.args[0]}") from None
    names = [d.name for d in p.decoders]
    if decoder not in names:
        raise NasError(
            f"--decoder {decoder!r} is not one of [{', '.join([PIXELS, *names])}] "
            "(or a decode choice such as "
            f"{p.decode[0].key if p.decode else names[0] + '/chunk1'})"
        )
    if arch.decoder and arch.decoder.startswith(decoder + "/"):
        return p.choice(arch.decoder)
    return next((c for c in p.decode if c.decoder == decoder), DecodeChoice(decoder, 1))


def _warn_other_vae(space: SearchSpace, choice: DecodeChoice | None, data: str | None) -> None:
    """A decoder whose config differs from the VAE ``nas encode`` made the training latents
    with decodes them into something else: say so (the user may mean it, e.g. TAESD)."""
    manifest = Path(data) / "encode.json" if data and data != "procedural" else None
    if choice is None or space.pipeline is None or manifest is None or not manifest.is_file():
        return
    try:
        vae = json.loads(manifest.read_text(encoding="utf-8"))["vae"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    part = space.pipeline.decoder(choice.decoder)
    if isinstance(vae, dict) and vae.get("config") not in (None, part.digest):
        print(
            f"warning: the training latents were encoded with {vae.get('source')} (config "
            f"{vae.get('config')}); decoding them with {choice.decoder!r} ({part.source}, "
            f"config {part.digest})",
            file=sys.stderr,
        )


def _encode_prompt(
    space: SearchSpace, geometry: Geometry, prompt: str, toy: bool, device: torch.device
) -> tuple[torch.Tensor, str]:
    """``(1, L, D)`` embeddings and which text encoder made them."""
    from nas.quality import ToyTextEncoder

    part = space.pipeline.text_encoder if space.pipeline is not None else None
    g = geometry
    if toy or part is None:
        return ToyTextEncoder(g.text_length, g.text_dim).encode(prompt)[None], "toy"
    if part.width != g.text_dim:
        raise NasError(
            f"pipeline.text_encoder is {part.width} wide but this UNet cross-attends to "
            f"text_dim={g.text_dim}: use a text encoder of width {g.text_dim}"
        )
    ids = build_tokenizer(part)([prompt], g.text_length)
    with torch.no_grad():
        emb = build_text_encoder(part).to(device)(ids.to(device))
    return emb, part.source


def _as_frames(latents: torch.Tensor) -> torch.Tensor:
    """Pixel latents ``(C, T, H, W)`` as RGB: channels 0-2 (one channel: grey)."""
    c = latents.shape[0]
    return latents[:3] if c >= 3 else latents[:1].expand(3, *latents.shape[1:])


def generate(
    space: SearchSpace,
    arch: Arch,
    prompt: str,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    steps: int | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    decoder: str | None = None,
    fps: int = 8,
    scale: int = 1,
    device: str = "auto",
    progress: bool = True,
) -> GenerateResult:
    """Generate one video for ``prompt`` and write ``out`` (an .mp4) and a PNG strip of its
    frames beside it (``out`` with .png). ``steps`` defaults to the space's
    ``geometry.steps`` (what the cost model prices); ``decoder`` is ``"pixels"``, a decode
    choice or a decoder name (see :func:`_decode_choice`)."""
    from tqdm import tqdm

    from nas.quality import few_step_sample, sample_video

    out = Path(out)
    check_out_path(out, ".mp4")
    if not guidance >= 0:
        raise NasError(f"--guidance must be >= 0 (1: no guidance), got {guidance}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    unet, config = _load_unet(space, arch, checkpoint)
    objective = str(config.get("objective", "rectified_flow"))
    few = config.get("stage") == "adversarial"  # a few-step student: guidance baked in
    if few and guidance != 1:
        raise NasError(
            "--guidance: this checkpoint is a few-step (adversarial stage) student with its "
            "guidance baked in; leave --guidance at 1"
        )
    steps = (int(config["few_steps"]) if few else space.geometry.steps) if steps is None else steps
    if steps < 1 or fps < 1 or scale < 1:
        raise NasError(f"--steps, --fps and --scale must be >= 1, got {steps}, {fps}, {scale}")
    data = config.get("data")
    pixels = _trained_on_pixels(space, None if data is None else str(data))
    choice = _decode_choice(space, arch, decoder, pixels)
    _warn_other_vae(space, choice, None if data is None else str(data))
    dev = resolve_device(device)
    unet.to(dev)
    g: Geometry = unet.geometry  # type: ignore[assignment]
    dec = None
    if choice is not None and space.pipeline is not None:
        dec = build_decoder(space.pipeline.decoder(choice.decoder)).to(dev)
    seconds["load"] = time.perf_counter() - t0
    chunks = 0 if choice is None else -(-g.frames // choice.chunk)
    bar = tqdm(total=1 + steps + chunks, disable=not progress, unit="call", desc="generate")
    try:
        t0 = time.perf_counter()
        text, text_label = _encode_prompt(space, g, prompt, pixels, dev)
        bar.update(1)
        seconds["text"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ticking = _Ticking(unet, lambda: bar.update(1))
        shape = (g.latent_channels, g.frames, g.latent_height, g.latent_width)
        if few:
            latents = few_step_sample(ticking, text, steps=steps, seed=seed, shape=shape)
        else:
            latents = sample_video(
                ticking,
                text,
                steps=steps,
                seed=seed,
                objective=objective,
                guidance=guidance,
                shape=shape,
            )
        seconds["unet"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if dec is None or choice is None:
            video = _as_frames(latents[0])
        else:
            with torch.no_grad():
                video = decode_video(_Ticking(dec, lambda: bar.update(1)), latents, choice.chunk)[0]
        seconds["decode"] = time.perf_counter() - t0
    finally:
        bar.close()
    video, latents = video.cpu(), latents.cpu()
    frames = to_uint8(video, scale)
    write_mp4(out, frames, fps)
    png = write_png_strip(out.with_suffix(".png"), [frames])
    return GenerateResult(
        video=video,
        latents=latents[0],
        mp4=out,
        png=png,
        decoder=PIXELS if choice is None else choice.key,
        text_encoder=text_label,
        sampler="few-step euler" if few else sampler_name(objective),
        steps=steps,
        guidance=guidance,
        seconds=seconds,
    )
