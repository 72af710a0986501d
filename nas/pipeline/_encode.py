"""``nas encode``: a folder of video files -> VAE latents and text embeddings for ``nas train``.

Each video's frames are sampled and resized to the pixel size of the space's latent geometry
(latent size x the VAE's factor) as :class:`nas.quality.VideoFolder` does, encoded frame by
frame with the VAE's encoder (the KL posterior's mean, scaled as the UNet sees latents), and
its caption (``<stem>.txt`` beside the file, else the file name) goes through the space's
pipeline text encoder. One ``NAME.safetensors`` per video (``latents (C, T, h, w)``,
``text (L, D)``, the caption in the metadata: :class:`nas.quality.LatentsFolder` reads them)
and ``encode.json`` (what made them) are written to the output folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError, SpaceError
from nas.fileio import atomic_write_text, require_writable_dir
from nas.pipeline._generate import resolve_device
from nas.pipeline._parts import build_encoder, build_text_encoder, build_tokenizer
from nas.space import Geometry, GeometryOverride, PipelinePart, SearchSpace, parse_pipeline

__all__ = ["EncodeReport", "encode_videos", "vae_part"]

MANIFEST = "encode.json"


@dataclass
class EncodeReport:
    """What :func:`encode_videos` wrote."""

    out: Path
    files: list[Path]
    vae: str  # the VAE part's source
    text_encoder: str | None  # the text encoder's source; None: captions only (toy at train)
    latent_shape: tuple[int, ...]  # (C, T, h, w)
    pixel_size: tuple[int, int]  # (H, W) the frames were resized to
    seconds: dict[str, float] = field(default_factory=dict)


def vae_part(space: SearchSpace, vae: str, geometry: Geometry) -> PipelinePart:
    """``--vae``: a decoder name of the space's pipeline, or a local diffusers folder
    (AutoencoderKL / AutoencoderTiny) checked against the geometry's latent channels."""
    if space.pipeline is not None and vae in [d.name for d in space.pipeline.decoders]:
        return space.pipeline.decoder(vae)
    try:
        p = parse_pipeline(
            {"decoders": {"vae": {"path": vae}}},
            Path.cwd(),
            frames=geometry.frames,
            latent_channels=geometry.latent_channels,
            text_dim=geometry.text_dim,
            text_length=geometry.text_length,
        )
    except SpaceError as e:
        what = e.where.removeprefix("pipeline.decoders.vae").lstrip(". ")
        raise NasError(f"--vae {vae}: {what + ': ' if what else ''}{e.message}") from None
    return p.decoders[0]


def _encode_frames(encoder: torch.nn.Module, video: torch.Tensor, batch: int) -> torch.Tensor:
    """``(3, T, H, W)`` -> ``(C, T, h, w)``, ``batch`` frames per encoder call."""
    frames = video.permute(1, 0, 2, 3)  # (T, 3, H, W)
    with torch.no_grad():
        lat = torch.cat([encoder(frames[i : i + batch]) for i in range(0, len(frames), batch)])
    return lat.permute(1, 0, 2, 3).contiguous()


def _text_model(
    space: SearchSpace, g: Geometry, device: torch.device
) -> tuple[Any, Any, PipelinePart] | None:
    part = space.pipeline.text_encoder if space.pipeline is not None else None
    if part is None:
        return None
    if part.width != g.text_dim:
        raise NasError(
            f"pipeline.text_encoder is {part.width} wide, not geometry.text_dim = {g.text_dim}"
        )
    return build_tokenizer(part), build_text_encoder(part).to(device), part


def encode_videos(
    space: SearchSpace,
    data: str | Path,
    vae: str,
    out: str | Path,
    *,
    geometry: GeometryOverride | None = None,
    batch: int = 8,
    device: str = "auto",
    progress: bool = True,
) -> EncodeReport:
    """Encode every video file of ``data`` at the space's geometry (with ``geometry`` on top)
    into ``out``; see the module docstring."""
    from tqdm import tqdm

    from nas.quality import VideoFolder, write_latents

    out = Path(out)
    require_writable_dir(out)
    if batch < 1:
        raise NasError(f"--batch must be >= 1, got {batch}")
    g = (geometry or GeometryOverride()).apply(space.geometry)
    part = vae_part(space, vae, g)
    f = part.scale_factor
    pixel = (g.latent_height * f, g.latent_width * f)
    videos = VideoFolder(
        data, replace(g, latent_height=pixel[0], latent_width=pixel[1], latent_channels=3)
    )
    t0 = time.perf_counter()
    dev = resolve_device(device)
    encoder = build_encoder(part).to(dev)
    text = _text_model(space, g, dev)
    seconds = {"load": time.perf_counter() - t0, "encode": 0.0, "text": 0.0}
    files: list[Path] = []
    for i in tqdm(range(len(videos)), disable=not progress, unit="video", desc="encode"):
        item = videos[i]
        t0 = time.perf_counter()
        latents = _encode_frames(encoder, item["video"].to(dev), batch).cpu()
        seconds["encode"] += time.perf_counter() - t0
        emb = None
        if text is not None:
            t0 = time.perf_counter()
            with torch.no_grad():
                emb = text[1](text[0]([item["caption"]], g.text_length).to(dev))[0].cpu()
            seconds["text"] += time.perf_counter() - t0
        path = out / f"{videos.files[i].stem}.safetensors"
        files.append(write_latents(path, latents, emb, caption=item["caption"]))
    manifest = {
        "vae": {"source": part.source, "family": part.family, "config": part.digest},
        "text_encoder": None if text is None else text[2].source,
        "space": {"name": space.name, "hash": space.hash},
        "geometry": g.to_dict(),
        "pixel_size": list(pixel),
        "videos": len(files),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    return EncodeReport(
        out,
        files,
        part.source,
        None if text is None else text[2].source,
        (g.latent_channels, g.frames, g.latent_height, g.latent_width),
        pixel,
        seconds,
    )
