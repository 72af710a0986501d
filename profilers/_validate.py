"""``nas validate latency``: does the cost model predict whole networks?

Samples N arches (seeded), measures each whole VideoUNet end to end on the device with the same
protocol as the table rows, and compares with the cost model built from the per-row table at
the same (small) validation geometry: share within +-10 %, RMSPE and Kendall tau, for latency
and peak memory. A fixed per-call overhead is fitted on the first half of the arches and
checked on the held-out half; the same for peak memory (a runtime's fixed per-session
memory, e.g. ONNX Runtime keeping the model proto beside its initialised weights).

With ``pipeline=True`` (a space with a ``pipeline:``), each measured network is the whole
pipeline a user waits for: the text encoder once, every denoising step of the UNet (Euler
steps, the batch doubled with guidance) and the decoder over every chunk of frames, as one
graph; it is compared with the cost model's per-video latency.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.cost import CostModel, RowSpec, Table
from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.space import (
    Arch,
    GeometryOverride,
    SearchSpace,
    arch_from_indices,
    arch_indices,
    sample_arch,
    with_geometry,
)
from profilers._base import TimingProtocol
from profilers._blocks import RowModule
from profilers._devices import Device
from profilers._runner import get_profiler, profile_space

__all__ = ["DEFAULT_VALIDATION_GEOMETRY", "ValidationResult", "summarize", "validate_latency"]

DEFAULT_VALIDATION_GEOMETRY = GeometryOverride(
    frames=4, latent_height=16, latent_width=16, batch=1, cfg=False
)


@dataclass
class ValidationResult:
    records: list[dict[str, Any]]
    stats: dict[str, dict[str, float]]
    overhead_ms: float
    overhead_mb: float | None
    folder: Path

    def table_text(self) -> str:
        lines = [f"{'metric':<28}{'within 10%':>11}{'RMSPE %':>9}{'Kendall tau':>13}"]
        for name, s in self.stats.items():
            lines.append(
                f"{name:<28}{s['within_10pct'] * 100:>10.0f}%{s['rmspe_pct']:>9.1f}"
                f"{s['kendall_tau']:>13.3f}"
            )
        return "\n".join(lines)


def _whole_network(space: SearchSpace, arch: Arch) -> RowModule:
    import torch
    from torch import nn

    from nas.model import build_video_unet

    torch.manual_seed(0)
    model = build_video_unet(space, arch, load_weights=False).eval()
    # like the table rows: trained ops are not zero, give the zero projections weights
    for name, p in model.temporal.named_parameters():
        if name.endswith("weight") and torch.count_nonzero(p) == 0:
            nn.init.normal_(p, std=0.02)
    g = space.geometry
    b = g.effective_batch
    gen = torch.Generator().manual_seed(0)
    inputs = (
        torch.randn(b, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen),
        torch.full((b,), 500, dtype=torch.int64),
        torch.randn(b, g.text_length, g.text_dim, generator=gen),
    )
    return RowModule(model, inputs, ("sample", "timestep", "text"))


def _whole_pipeline(space: SearchSpace, arch: Arch) -> RowModule:
    """Text encoder + steps x UNet + decoder over chunks, one module: what a user waits for."""
    import torch
    from torch import nn

    from nas.pipeline import build_decoder, build_text_encoder

    if space.pipeline is None or arch.decoder is None:
        raise NasError(f"space {space.name!r} has no pipeline with a decoder to validate")
    unet = _whole_network(space, arch)
    p = space.pipeline
    choice = p.choice(arch.decoder)
    text = None
    if p.text_encoder is not None:
        text = build_text_encoder(p.text_encoder, load_weights=False).eval()
    decoder = build_decoder(p.decoder(choice.decoder), load_weights=False).eval()
    g = space.geometry

    class _Pipeline(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text, self.unet, self.decoder = text, unet.module, decoder

        def forward(self, ids: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
            ctx = self.text(ids) if self.text is not None else unet.inputs[2]
            x = latents
            for i in range(g.steps):  # Euler steps on a fixed schedule
                t = torch.full((ctx.shape[0],), 999 - i * (1000 // g.steps), dtype=torch.int64)
                inp = torch.cat([x, x]) if g.cfg else x
                v = self.unet(inp, t, ctx)
                if g.cfg:
                    cond, uncond = v.chunk(2)
                    v = uncond + 3.0 * (cond - uncond)
                x = x - v / g.steps
            b, c, f, h, w = x.shape
            flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            frames = [
                self.decoder(flat[i : i + choice.chunk]) for i in range(0, b * f, choice.chunk)
            ]
            out: torch.Tensor = torch.cat(frames)
            return out

    gen = torch.Generator().manual_seed(0)
    vocab = int(p.text_encoder.config["vocab_size"]) if p.text_encoder is not None else 2
    ids = torch.randint(0, vocab, (g.effective_batch, g.text_length), generator=gen)
    latents = torch.randn(
        g.batch, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen
    )
    return RowModule(_Pipeline().eval(), (ids, latents), ("input_ids", "latents"))


def _stats(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau

    rel = (pred - meas) / meas
    tau = float(kendalltau(pred, meas).statistic) if len(pred) > 1 else float("nan")
    return {
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "rmspe_pct": float(math.sqrt(float(np.mean(rel**2))) * 100),
        "kendall_tau": tau,
    }


def summarize(
    records: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, float]], float, float | None]:
    """Statistics of predicted vs measured, plain and with a fixed per-call overhead.

    The overheads (latency ms, memory MB) are the median of measured - predicted over the
    first half of the records; the "with overhead" statistics use only the held-out half.
    Returns (stats by metric, overhead_ms, overhead_mb or None without memory figures).
    """
    half = len(records) // 2

    def offset_stats(pred: np.ndarray, meas: np.ndarray) -> tuple[float, dict[str, float]]:
        off = float(np.median(meas[:half] - pred[:half])) if half else 0.0
        return off, _stats(pred[half:] + off, meas[half:])

    pred = np.array([r["predicted_ms"] for r in records], dtype=float)
    meas = np.array([r["measured_ms"] for r in records], dtype=float)
    overhead_ms, held = offset_stats(pred, meas)
    stats = {"latency (sum of rows)": _stats(pred, meas), "latency + overhead (held out)": held}
    overhead_mb = None
    mem_p = np.array([r["predicted_mem_mb"] or np.nan for r in records], dtype=float)
    mem_m = np.array([r["measured_mem_mb"] or np.nan for r in records], dtype=float)
    if np.isfinite(mem_m).all() and np.isfinite(mem_p).all():
        stats["peak memory"] = _stats(mem_p, mem_m)
        overhead_mb, stats["peak memory + overhead (held out)"] = offset_stats(mem_p, mem_m)
    return stats, overhead_ms, overhead_mb


def validate_latency(
    space: SearchSpace,
    device: Device,
    folder: str | Path,
    *,
    samples: int = 20,
    seed: int = 0,
    geometry: GeometryOverride | dict[str, Any] | None = None,  # over the default
    protocol: TimingProtocol | None = None,
    progress: bool = True,
    pipeline: bool = False,
) -> ValidationResult:
    """Measure ``samples`` whole arches and compare with the cost model; files go to ``folder``.

    ``pipeline``: measure and predict the whole pipeline per video (text encoder, steps,
    decoder) instead of one UNet step."""
    if pipeline and not space.decode:
        raise NasError(
            f"--pipeline: space {space.name!r} has no pipeline: section with decoders "
            "(see docs/concepts.md#the-pipeline-around-the-unet)"
        )
    if samples < 2:
        raise NasError("--samples must be at least 2 (a rank correlation needs two arches)")
    protocol = protocol or TimingProtocol()
    folder = Path(folder)
    override = DEFAULT_VALIDATION_GEOMETRY.merged(GeometryOverride.coerce(geometry))
    vspace = with_geometry(space, **override.to_dict())
    # 1. the per-row table at the validation geometry (resumable)
    rep = profile_space(vspace, device, folder / "table", protocol=protocol, progress=progress)
    if rep.interrupted:
        raise KeyboardInterrupt
    model = CostModel(vspace, Table.load(folder / "table"), overhead_ms=0.0)
    # 2. whole networks, measured with the same backend and protocol
    rng = np.random.default_rng(seed)
    archs: list[tuple[Arch, Arch]] = []
    seen: set[str] = set()
    while len(archs) < samples:
        a = sample_arch(space, rng)
        if a.arch_id not in seen or len(seen) >= space.size:
            seen.add(a.arch_id)
            archs.append((a, arch_from_indices(vspace, arch_indices(space, a))))
    prof = get_profiler(device.backend)
    records: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(archs), desc="validate whole networks", unit="arch")
    g = vspace.geometry
    for orig, varch in archs:
        est = model.evaluate(varch)
        spec = RowSpec(
            "network",
            orig.arch_id,
            0,
            g.frames,
            g.latent_height,
            g.latent_width,
            g.effective_batch,
            device.precision,
        )
        built = _whole_pipeline(vspace, varch) if pipeline else _whole_network(vspace, varch)
        row = prof.measure(spec, built, device, protocol)
        records.append(
            {
                "arch_id": orig.arch_id,
                "arch": orig.describe(),
                "predicted_ms": est.latency_s_video * 1e3 if pipeline else est.latency_ms_step,
                "measured_ms": row.latency_ms_p50,
                "measured_ms_p10": row.latency_ms_p10,
                "measured_ms_p90": row.latency_ms_p90,
                "predicted_mem_mb": est.peak_mem_mb,
                "measured_mem_mb": row.peak_mem_mb,
            }
        )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    stats, overhead_ms, overhead_mb = summarize(records)
    for r in records:
        r["error_pct"] = (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] * 100
        r["error_pct_with_overhead"] = (
            (r["predicted_ms"] + overhead_ms - r["measured_ms"]) / r["measured_ms"] * 100
        )
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    atomic_write_text(folder / "validate_latency.csv", buf.getvalue())
    return ValidationResult(records, stats, overhead_ms, overhead_mb, folder)
