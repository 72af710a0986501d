"""``nas export``: a whole VideoUNet to a deployable ONNX or Core ML file.

ONNX files take any batch and any number of frames up to the space's (``dynamic``); their
outputs are checked against PyTorch with ONNX Runtime at the export size and at a second one.
The Core ML package has the space's fixed shapes; it is converted for real (on any OS) and
inspected: MIL op histogram and weight bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.extras import require
from nas.fileio import atomic_write_text
from nas.mil import inspect_mlprogram
from nas.space import Arch, SearchSpace

__all__ = [
    "ExportReport",
    "export_arch",
    "held_back",
    "held_back_summary",
    "load_checkpoint",
    "onnx_graph_summary",
    "onnx_output_error",
]

_INPUT_NAMES = ("sample", "timestep", "text")
_FORMAT_MODULES = {"onnx": ("onnx", "onnxruntime", "onnxscript"), "coreml": ("coremltools",)}
# ONNX dynamic axes: every input's batch, the latents' frames (B, C, T, H, W)
_DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "sample": {0: "batch", 2: "frames"},
    "timestep": {0: "batch"},
    "text": {0: "batch"},
    "noise_pred": {0: "batch", 2: "frames"},
}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_error: float | None = None  # ONNX vs PyTorch
    op_histogram: dict[str, int] = field(default_factory=dict)
    weight_bytes: int | None = None
    inputs: dict[str, list[int]] = field(default_factory=dict)  # the export size
    dynamic: dict[str, str] = field(default_factory=dict)  # axis -> the sizes it takes
    checked: list[dict[str, list[int]]] = field(default_factory=list)  # sizes run in ORT
    held_back: list[str] = field(default_factory=list)  # third-party messages, not printed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "max_abs_error": self.max_abs_error,
            "op_histogram": self.op_histogram,
            "weight_bytes": self.weight_bytes,
            "inputs": self.inputs,
            "dynamic": self.dynamic,
            "checked": self.checked,
            "held_back": self.held_back,
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
    dynamic: bool = True,
) -> ExportReport:
    """Export ``arch`` at the space's geometry; ``batch`` defaults to the UNet batch. An ONNX
    file is ``dynamic`` by default: any batch, 1 to the space's frames."""
    if fmt not in ("onnx", "coreml"):
        raise NasError(f"format {fmt!r} is not one of ['onnx', 'coreml']")
    held: list[str] = []
    with _held_back(held):  # coremltools talks as it is imported
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
            second = _second_size(inputs[0].shape[0], space.geometry.frames) if dynamic else None
            checks = [inputs] if second is None else [inputs, _example_inputs(space, *second)]
            report = _export_onnx(model, checks, out, opset, space.geometry.frames)
        else:
            report = _export_coreml(model, inputs, out, space.geometry.precision)
    report.held_back = list(dict.fromkeys(held))  # once each
    if fmt == "coreml":  # the JSON beside the package
        atomic_write_text(out.parent / (out.stem + ".json"), json.dumps(report.to_dict(), indent=2))
    return report


# Loggers of the libraries an export drives; their records are held back with the rest.
_CHATTY_LOGGERS = ("coremltools", "torch.onnx", "torch.export", "torch.fx", "onnxscript")
# What a held-back message means for the user, by a phrase in it; the rest change nothing
# (progress bars, trace warnings on an output that was then checked, unused converters).
_MEANINGS = (
    (
        "has not been tested with coremltools",
        "coremltools is untested with this torch (converted and inspected all the same)",
    ),
    ("Failed to load _MLModel", "no Core ML runtime here: converted, not run (that needs macOS)"),
    ("might lose precision", "the int64 timestep is stored as int32"),
)
_PROGRESS_BAR = re.compile(r"\d+%\|")


class _Held(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def _held_back(into: list[str]) -> Iterator[None]:
    """Hold back what third-party libraries print during an export (warnings, log records,
    progress bars, prints) into ``into``; :func:`held_back_summary` makes it one line."""
    handler = _Held(into)
    saved = []
    for name in _CHATTY_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.level, log.propagate, log.handlers))
        log.handlers, log.propagate = [handler], False
        log.setLevel(logging.WARNING)
    printed = io.StringIO()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(printed),
            contextlib.redirect_stderr(printed),
        ):
            warnings.simplefilter("always")
            try:
                yield
            finally:
                into.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for log, level, propagate, handlers in saved:
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(level)
        for part in re.split(r"[\r\n]+", printed.getvalue()):
            if part.strip() and not _PROGRESS_BAR.search(part):
                into.append(part.strip())


held_back = _held_back  # public: nas export --pipeline holds back the same messages


def held_back_summary(held: Sequence[str]) -> str:
    """One line for the held-back messages of an export: how many, and what matters in them."""
    if not held:
        return ""
    meant = list(dict.fromkeys(m for key, m in _MEANINGS for h in held if key in h))
    what = "; ".join(meant) if meant else "none of them changes the file"
    n = len(held)
    return f"{n} third-party message{'s' if n > 1 else ''} held back: {what}"


def _second_size(batch: int, frames: int) -> tuple[int, int]:
    """The second (batch, frames) a dynamic ONNX file is checked at: another batch and, where
    the space has more than one frame, fewer frames (positional tables cap them at the
    space's)."""
    return batch + 1, max(1, frames // 2)


def _example_inputs(
    space: SearchSpace, batch: int | None, frames: int | None = None
) -> tuple[Any, ...]:
    """Seeded ``(sample, timestep, text)`` tensors at the space's geometry (or ``frames``)."""
    import torch

    g = space.geometry
    b = batch or g.effective_batch
    t = frames or g.frames
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(b, g.latent_channels, t, g.latent_height, g.latent_width, generator=gen)
    timestep = torch.full((b,), 500, dtype=torch.int64)
    text = torch.randn(b, g.text_length, g.text_dim, generator=gen)
    return sample, timestep, text


def _shapes(inputs: tuple[Any, ...]) -> dict[str, list[int]]:
    return {n: list(x.shape) for n, x in zip(_INPUT_NAMES, inputs, strict=True)}


def onnx_output_error(got: Any, want: Any, where: str) -> float:
    """The largest absolute difference between ONNX Runtime's output and PyTorch's; a NasError
    naming ``where`` when it exceeds 1e-3 of the output's scale (at least 1)."""
    import numpy as np

    diff = float(np.abs(got - want).max())
    tol = 1e-3 * max(1.0, float(np.abs(want).max()))
    if not diff <= tol:
        raise NasError(f"{where}: ONNX output differs from PyTorch by {diff:.3g} (> {tol:.3g})")
    return diff


def onnx_graph_summary(path: str | Path) -> tuple[dict[str, int], int]:
    """An ONNX file's op histogram (sorted by op type) and the bytes of its initializers."""
    import numpy as np
    import onnx

    m = onnx.load(str(path))
    hist: dict[str, int] = {}
    for node in m.graph.node:
        hist[node.op_type] = hist.get(node.op_type, 0) + 1
    wbytes = sum(
        int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in m.graph.initializer
    )
    return dict(sorted(hist.items())), int(wbytes)


def _export_onnx(
    model: Any, checks: list[tuple[Any, ...]], out: Path, opset: int, frames: int
) -> ExportReport:
    """Export at the first of ``checks``' sizes (dynamic when there are two), check the outputs
    against PyTorch with ONNX Runtime at each, and count ops and weights."""
    import onnxruntime as ort
    import torch

    inputs, dynamic = checks[0], len(checks) > 1
    torch.onnx.export(
        model,
        inputs,
        str(out),
        opset_version=opset,
        dynamo=False,
        input_names=list(_INPUT_NAMES),
        output_names=["noise_pred"],
        dynamic_axes=_DYNAMIC_AXES if dynamic else None,
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT writes its warnings past Python
    sess = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    err = 0.0
    for x in checks:
        feeds = {k: v.numpy() for k, v in zip(_INPUT_NAMES, x, strict=True)}
        try:
            got = sess.run(None, feeds)[0]
        except Exception as e:  # ORT's messages span lines; the first names the node
            first = str(e).strip().splitlines()[0][:300]
            raise NasError(
                f"the ONNX file does not run at {_shapes(x)['sample']} (batch, C, frames, H, W): "
                f"{first}; pass --static-shapes for a file of the export size only"
            ) from None
        with torch.no_grad():
            want = model(*x).numpy()
        err = max(err, onnx_output_error(got, want, f"{out} at {_shapes(x)['sample']}"))
    hist, wbytes = onnx_graph_summary(out)
    axes = {"batch": "any", "frames": f"1..{frames}"} if dynamic else {}
    return ExportReport(
        out,
        "onnx",
        err,
        dict(sorted(hist.items())),
        wbytes,
        _shapes(inputs),
        axes,
        [_shapes(x) for x in checks],
    )


def _export_coreml(model: Any, inputs: tuple[Any, ...], out: Path, precision: str) -> ExportReport:
    """Trace, convert to an ML Program at ``precision``, save, inspect (export_arch writes the
    report beside it as JSON)."""
    import coremltools as ct
    import torch

    if out.suffix != ".mlpackage":
        raise NasError(f"a Core ML export must end in .mlpackage, got {out.name}")
    traced = torch.jit.trace(model, inputs)  # type: ignore[no-untyped-call]
    mlmodel = ct.convert(
        traced,
        inputs=[
            ct.TensorType(name=n, shape=x.shape) for n, x in zip(_INPUT_NAMES, inputs, strict=True)
        ],
        outputs=[ct.TensorType(name="noise_pred")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=(ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32),
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
    return report
