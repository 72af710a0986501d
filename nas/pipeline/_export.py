"""``nas export --pipeline``: the text encoder, the UNet and the decoders of an arch's pipeline,
each to ONNX (checked against PyTorch with ONNX Runtime) or Core ML (converted, inspected).

The UNet goes through :func:`nas.export.export_arch`; the text encoder and decoders are
exported here the same way. ``pipeline.json`` beside them says how to chain them: inputs and
outputs, the tokenizer, the decoder's chunk and latent scaling (applied inside the decoder
file), the sampler and its steps.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError
from nas.export import (
    ExportReport,
    export_arch,
    held_back,
    onnx_graph_summary,
    onnx_output_error,
)
from nas.extras import require
from nas.fileio import atomic_write_text, require_writable_dir
from nas.mil import inspect_mlprogram
from nas.pipeline._parts import build_decoder, build_text_encoder
from nas.space import Arch, DecodeChoice, PipelinePart, SearchSpace

__all__ = ["PipelineExport", "export_pipeline"]

_SUFFIX = {"onnx": ".onnx", "coreml": ".mlpackage"}
_MODULES = {"onnx": ("onnx", "onnxruntime", "onnxscript"), "coreml": ("coremltools",)}


@dataclass
class PipelineExport:
    """What :func:`export_pipeline` wrote: one report per model, and the manifest."""

    out: Path
    parts: dict[str, ExportReport]  # "text_encoder", "unet", "decoder_<name>"
    manifest: Path
    held_back: list[str] = field(default_factory=list)


def _onnx_check(
    module: nn.Module, path: Path, names: tuple[str, str], checks: list[torch.Tensor]
) -> ExportReport:
    """Export ``module`` (one input, one output, any batch) and check it at each input."""
    import onnxruntime as ort

    axes = {names[0]: {0: "batch"}, names[1]: {0: "batch"}}
    torch.onnx.export(
        module,
        (checks[0],),
        str(path),
        opset_version=18,
        dynamo=False,
        input_names=[names[0]],
        output_names=[names[1]],
        dynamic_axes=axes,
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    err = 0.0
    for x in checks:
        got = sess.run(None, {names[0]: x.numpy()})[0]
        with torch.no_grad():
            want = module(x).numpy()
        err = max(err, onnx_output_error(got, want, f"{path.name} at {list(x.shape)}"))
    hist, wbytes = onnx_graph_summary(path)
    report = ExportReport(path, "onnx", err, hist, wbytes)
    report.inputs = {names[0]: list(checks[0].shape)}
    report.dynamic = {"batch": "any"}
    report.checked = [{names[0]: list(x.shape)} for x in checks]
    return report


def _coreml(
    module: nn.Module, path: Path, names: tuple[str, str], x: torch.Tensor, precision: str
) -> ExportReport:
    import coremltools as ct
    import numpy as np

    traced = torch.jit.trace(module, (x,))  # type: ignore[no-untyped-call]
    dtype = np.int32 if x.dtype == torch.int64 else np.float32
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name=names[0], shape=x.shape, dtype=dtype)],
        outputs=[ct.TensorType(name=names[1])],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
    )
    mlmodel.save(str(path))
    summary = inspect_mlprogram(mlmodel)
    report = ExportReport(
        path, "coreml", None, dict(sorted(summary.op_histogram.items())), summary.weight_bytes
    )
    report.inputs = {names[0]: list(x.shape)}
    return report


def _export_one(
    module: nn.Module, path: Path, names: tuple[str, str], x: torch.Tensor, fmt: str, precision: str
) -> ExportReport:
    if fmt == "coreml":
        return _coreml(module, path, names, x, precision)
    second = torch.cat([x, x[:1]])  # one more in the batch: the dynamic axis works
    return _onnx_check(module, path, names, [x, second])


def _decoders(space: SearchSpace, arch: Arch, decoder: str | None) -> list[DecodeChoice]:
    """The decode choices to export: ``decoder`` (a name or choice key), else the arch's,
    else one per decoder of the space (its first listed chunk)."""
    p = space.pipeline
    assert p is not None
    if decoder is not None:
        if "/" in decoder:
            try:
                return [p.choice(decoder)]
            except KeyError as e:
                raise NasError(f"--decoder: {e.args[0]}") from None
        if decoder not in [d.name for d in p.decoders]:
            names = ", ".join(d.name for d in p.decoders)
            raise NasError(f"--decoder {decoder!r} is not one of [{names}]")
        return [next((c for c in p.decode if c.decoder == decoder), DecodeChoice(decoder, 1))]
    if arch.decoder is not None:
        return [p.choice(arch.decoder)]
    out: list[DecodeChoice] = []
    for d in p.decoders:
        out.append(next((c for c in p.decode if c.decoder == d.name), DecodeChoice(d.name, 1)))
    return out


def _text_part(
    space: SearchSpace, out: Path, fmt: str, held: list[str]
) -> tuple[ExportReport, dict[str, Any]]:
    p = space.pipeline
    assert p is not None and p.text_encoder is not None
    part: PipelinePart = p.text_encoder
    g = space.geometry
    module = build_text_encoder(part).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, int(part.config["vocab_size"]), (1, g.text_length), generator=gen)
    path = out / f"text_encoder{_SUFFIX[fmt]}"
    log = logging.getLogger("transformers")  # its handler writes to the stderr of import time
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with held_back(held):
            report = _export_one(
                module, path, ("input_ids", "text_embeddings"), ids, fmt, g.precision
            )
    finally:
        log.setLevel(level)
    return report, {
        "file": path.name,
        "source": part.source,
        "input": {
            "input_ids": ["batch", g.text_length],
            "dtype": "int64" if fmt == "onnx" else "int32",
        },
        "output": {"text_embeddings": ["batch", g.text_length, part.width]},
        "tokenizer": "CLIP (vocab.json, merges.txt in the text encoder's folder or its sibling "
        "tokenizer/), padded to text_length",
    }


def _decoder_part(
    space: SearchSpace, choice: DecodeChoice, out: Path, fmt: str, held: list[str]
) -> tuple[ExportReport, dict[str, Any]]:
    p = space.pipeline
    assert p is not None
    part = p.decoder(choice.decoder)
    g = space.geometry
    module = build_decoder(part).eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(choice.chunk, g.latent_channels, g.latent_height, g.latent_width, generator=gen)
    path = out / f"decoder_{choice.decoder}{_SUFFIX[fmt]}"
    with held_back(held):
        report = _export_one(module, path, ("latents", "frames"), z, fmt, g.precision)
    f = part.scale_factor
    return report, {
        "file": path.name,
        "source": part.source,
        "chunk": choice.chunk,
        "input": {"latents": ["chunk", g.latent_channels, g.latent_height, g.latent_width]},
        "output": {"frames": ["chunk", 3, g.latent_height * f, g.latent_width * f]},
        "frames_range": [-1, 1],
        "scaling_factor": part.config.get("scaling_factor", 1.0),
        "note": "latents as the UNet makes them: the scaling is undone inside this file",
    }


def export_pipeline(
    space: SearchSpace,
    arch: Arch,
    out: str | Path,
    fmt: str,
    *,
    checkpoint: str | Path | None = None,
    decoder: str | None = None,
    dynamic: bool = True,
) -> PipelineExport:
    """Export ``arch``'s pipeline to the folder ``out``: ``text_encoder``, ``unet`` and
    ``decoder_<name>`` files (``.onnx`` or ``.mlpackage``) and ``pipeline.json``."""
    if fmt not in _SUFFIX:
        raise NasError(f"format {fmt!r} is not one of ['onnx', 'coreml']")
    if space.pipeline is None:
        raise NasError(
            f"--pipeline: space {space.name!r} has no pipeline: section (text encoder, "
            "decoders); see docs/concepts.md#the-pipeline-around-the-unet"
        )
    out = Path(out)
    require_writable_dir(out)
    held: list[str] = []
    with held_back(held):  # coremltools talks as it is imported
        for module in ("torch", "diffusers", *_MODULES[fmt]):
            require(module, extra=fmt, purpose=f"nas export --pipeline --format {fmt}")
        if space.pipeline.text_encoder is not None:
            require("transformers", extra="pipeline", purpose="exporting the text encoder")
    choices = _decoders(space, arch, decoder)
    out.mkdir(parents=True, exist_ok=True)
    parts: dict[str, ExportReport] = {}
    manifest: dict[str, Any] = {
        "arch_id": arch.arch_id,
        "space": {"name": space.name, "hash": space.hash},
    }
    if space.pipeline.text_encoder is not None:
        parts["text_encoder"], manifest["text_encoder"] = _text_part(space, out, fmt, held)
    unet = export_arch(
        space, arch, out / f"unet{_SUFFIX[fmt]}", fmt, checkpoint=checkpoint, dynamic=dynamic
    )
    held.extend(unet.held_back)
    parts["unet"] = unet
    g = space.geometry
    manifest["unet"] = {
        "file": unet.path.name,
        "inputs": unet.inputs,
        "steps": g.steps,
        "cfg": g.cfg,
        "sampler": "rectified flow, Euler: t from 1 to 0 in `steps` equal steps, "
        "x += (t_next - t) * unet(x, t * 1000, text); with cfg, the batch is [text, zeros]",
    }
    manifest["decoders"] = {}
    for c in choices:
        rep, info = _decoder_part(space, c, out, fmt, held)
        parts[f"decoder_{c.decoder}"] = rep
        manifest["decoders"][c.decoder] = info
    path = out / "pipeline.json"
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return PipelineExport(out, parts, path, list(dict.fromkeys(held)))
