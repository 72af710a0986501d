"""``nas export``: a whole VideoUNet to a deployable ONNX or Core ML file.

ONNX outputs are checked against PyTorch with ONNX Runtime; the Core ML package is converted
for real (on any OS) and inspected: MIL op histogram and weight bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.extras import require
from nas.fileio import atomic_write_text
from nas.mil import inspect_mlprogram
from nas.space import Arch, SearchSpace

__all__ = ["ExportReport", "export_arch", "load_checkpoint"]

_INPUT_NAMES = ("sample", "timestep", "text")
_FORMAT_MODULES = {"onnx": ("onnx", "onnxruntime", "onnxscript"), "coreml": ("coremltools",)}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_error: float | None = None  # ONNX vs PyTorch
    op_histogram: dict[str, int] = field(default_factory=dict)
    weight_bytes: int | None = None
    inputs: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "max_abs_error": self.max_abs_error,
            "op_histogram": self.op_histogram,
            "weight_bytes": self.weight_bytes,
            "inputs": self.inputs,
        }


def load_checkpoint(model: Any, checkpoint: str | Path) -> None:
    """Load a VideoUNet state dict from a ``.safetensors`` file (as ``nas train`` writes)."""
    from safetensors.torch import load_file

    p = Path(checkpoint)
    if not p.is_file():
        raise NasError(f"checkpoint not found: {p}")
    try:
        state = load_file(str(p))
    except Exception as e:  # a corrupt or non-safetensors file
        raise NasError(f"{p}: not a readable safetensors file: {e}") from None
    state = {k.removeprefix("model."): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise NasError(
            f"{p} does not match this arch: {len(missing)} missing keys"
            + (f" (e.g. {missing[0]})" if missing else "")
            + f", {len(unexpected)} unexpected"
            + (f" (e.g. {unexpected[0]})" if unexpected else "")
        )
    model.load_state_dict(state)


def export_arch(
    space: SearchSpace,
    arch: Arch,
    out: str | Path,
    fmt: str,
    *,
    checkpoint: str | Path | None = None,
    batch: int | None = None,
    opset: int = 18,
) -> ExportReport:
    """Export ``arch`` at the space's geometry; ``batch`` defaults to the UNet batch."""
    if fmt not in ("onnx", "coreml"):
        raise NasError(f"format {fmt!r} is not one of ['onnx', 'coreml']")
    purpose = f"nas export --format {fmt}"
    for module in ("torch", "diffusers", *_FORMAT_MODULES[fmt]):  # before any work; the
        require(module, extra=fmt, purpose=purpose)  # format's extra installs torch too
    from nas.model import build_video_unet

    model = build_video_unet(space, arch).eval()
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    inputs = _example_inputs(space, batch)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        return _export_onnx(model, inputs, out, opset)
    return _export_coreml(model, inputs, out, space.geometry.precision)


def _example_inputs(space: SearchSpace, batch: int | None) -> tuple[Any, ...]:
    """Seeded ``(sample, timestep, text)`` tensors at the space's geometry."""
    import torch

    g = space.geometry
    b = batch or g.effective_batch
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(
        b, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen
    )
    timestep = torch.full((b,), 500, dtype=torch.int64)
    text = torch.randn(b, g.text_length, g.text_dim, generator=gen)
    return sample, timestep, text


def _shapes(inputs: tuple[Any, ...]) -> dict[str, list[int]]:
    return {n: list(x.shape) for n, x in zip(_INPUT_NAMES, inputs, strict=True)}


def _export_onnx(model: Any, inputs: tuple[Any, ...], out: Path, opset: int) -> ExportReport:
    """Export, check the outputs against PyTorch with ONNX Runtime, and count ops and weights."""
    import numpy as np
    import onnxruntime as ort
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(out),
            opset_version=opset,
            dynamo=False,
            input_names=list(_INPUT_NAMES),
            output_names=["noise_pred"],
        )
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in zip(_INPUT_NAMES, inputs, strict=True)}
    got = sess.run(None, feeds)[0]
    with torch.no_grad():
        want = model(*inputs).numpy()
    err = float(np.abs(got - want).max())
    tol = 1e-3 * max(1.0, float(np.abs(want).max()))
    if not err <= tol:
        raise NasError(f"ONNX output differs from PyTorch by {err:.3g} (> {tol:.3g}): {out}")
    import onnx

    m = onnx.load(str(out))
    hist: dict[str, int] = {}
    for node in m.graph.node:
        hist[node.op_type] = hist.get(node.op_type, 0) + 1
    wbytes = sum(
        int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in m.graph.initializer
    )
    return ExportReport(out, "onnx", err, dict(sorted(hist.items())), wbytes, _shapes(inputs))


def _export_coreml(model: Any, inputs: tuple[Any, ...], out: Path, precision: str) -> ExportReport:
    """Trace, convert to an ML Program at ``precision``, save, inspect; a JSON report beside."""
    import coremltools as ct
    import torch

    if out.suffix != ".mlpackage":
        raise NasError(f"a Core ML export must end in .mlpackage, got {out.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, inputs)  # type: ignore[no-untyped-call]
        mlmodel = ct.convert(
            traced,
            inputs=[
                ct.TensorType(name=n, shape=x.shape)
                for n, x in zip(_INPUT_NAMES, inputs, strict=True)
            ],
            outputs=[ct.TensorType(name="noise_pred")],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=(
                ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
            ),
        )
    mlmodel.save(str(out))
    summary = inspect_mlprogram(mlmodel)
    report = ExportReport(
        out,
        "coreml",
        None,
        dict(sorted(summary.op_histogram.items())),
        summary.weight_bytes,
        _shapes(inputs),
    )
    atomic_write_text(out.parent / (out.stem + ".json"), json.dumps(report.to_dict(), indent=2))
    return report
