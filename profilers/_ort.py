"""ONNX Runtime profiler: export a row's module to ONNX, check it, time it, probe its memory.

- **Convert**: ``torch.onnx.export`` to a temporary ``.onnx`` file (opset 18). ``exporter="auto"``
  tries the TorchScript exporter first (``dynamo=False``: deprecated, but about ten times faster
  here and silent) and falls back to the dynamo exporter (needs onnxscript) when it fails to
  export or its graph does not match PyTorch. Exporter chatter (stdout, stderr, warnings,
  ``torch.onnx`` log records) is swallowed and shown only in the error when both fail.
- **Check**: ORT's outputs must match PyTorch's (``rtol``/``atol`` 1e-3) on the example inputs
  and on a second, perturbed set of inputs of the same shapes: a trace that baked a
  data-dependent value into a constant matches on the first and not on the second.
- **Run**: ``InferenceSession`` on ``CPUExecutionProvider`` with ``intra_op_num_threads =
  device.threads``, ``inter_op_num_threads = 1``, all graph optimisations; wall-clock repeats of
  ``sess.run`` per the timing protocol.
- **Memory** (when the protocol asks): a fresh interpreter (``profilers._memprobe``, onnx mode)
  loads the feeds, takes a baseline, creates the same session, runs once and reads the peak:
  ``peak_mem_mb`` is what the session (weights, arena, graph) and the run add, in MiB. The
  method is ``vmhwm`` on Linux (``/proc/self/clear_refs`` then ``VmHWM``) and ``ru_maxrss``
  elsewhere (macOS: the high-water mark cannot be reset, so it is the rise over the baseline);
  ``versions()["memory_method"]`` says which.
- **Weights**: ``weight_bytes`` is the byte size of the graph's initializers, i.e. what the
  session loads. The TorchScript exporter merges initializers with identical values (fresh
  GroupNorm/LayerNorm ones and zeros) and the dynamo exporter adds a few shape constants and
  constant buffers, so it is within a few percent of ``4 x parameters`` at fp32, not equal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.cost import RowSpec, TableRow
from profilers._base import TimingProtocol, measured_row, scratch_dir, time_repeats
from profilers._blocks import RowModule
from profilers._devices import Device
from profilers._memprobe import memory_method, run_probe
from profilers._torch import cpu_name, flat_outputs

__all__ = ["ExportError", "MismatchError", "OrtProfiler"]

EXPORTERS = ("auto", "torchscript", "dynamo")


class ExportError(RuntimeError):
    """The module could not be exported to ONNX."""


class MismatchError(RuntimeError):
    """ONNX Runtime's outputs differ from PyTorch's."""


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Swallow stdout/stderr (Python and file-descriptor level), warnings and torch.onnx logs.

    Yields a buffer that holds the captured text after the block (for error messages).
    """
    buf = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch.fx")]
    levels = [lg.level for lg in loggers]
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(AttributeError, ValueError, OSError):
                    stream.flush()
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    saved.append((fd, os.dup(fd)))
                    os.dup2(tmp.fileno(), fd)
            for lg in loggers:
                lg.setLevel(logging.ERROR)
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(buf),
                contextlib.redirect_stderr(buf),
            ):
                warnings.simplefilter("ignore")
                yield buf
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            for fd, old in saved:
                os.dup2(old, fd)
                os.close(old)
            tmp.seek(0)
            buf.write(tmp.read().decode("utf-8", errors="replace"))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(text: str, limit: int = 240) -> str:
    s = " ".join(_ANSI.sub("", text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _root_cause(e: BaseException) -> BaseException:
    """The innermost ``__cause__``: the dynamo exporter wraps the useful message twice."""
    seen = {id(e)}
    while e.__cause__ is not None and id(e.__cause__) not in seen:
        e = e.__cause__
        seen.add(id(e))
    return e


def _initializer_bytes(path: Path) -> int:
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    total = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= int(d)
        total += n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


def _perturbed(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(12345)
    out = []
    for t in inputs:
        if t.is_floating_point():
            noise = torch.randn(t.shape, generator=gen, dtype=t.dtype)
            out.append(t * 1.5 + 0.25 * noise * (t.abs().mean() + 1e-3))
        else:
            out.append(t.clone())
    return tuple(out)


def _time_session(sess: Any, feeds: dict[str, Any], protocol: TimingProtocol) -> list[float]:
    return time_repeats(lambda: sess.run(None, feeds), protocol)


class OrtProfiler:
    """ONNX Runtime on this CPU (see the module docstring for what is measured and how)."""

    name = "onnxruntime"

    def __init__(
        self,
        *,
        exporter: str = "auto",
        opset: int = 18,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        memprobe_timeout: float = 900.0,
    ) -> None:
        if exporter not in EXPORTERS:
            raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
        if opset < 17:
            raise ValueError(f"opset must be >= 17, got {opset}")
        self.exporter, self.opset = exporter, opset
        self.rtol, self.atol = rtol, atol
        self.memprobe_timeout = memprobe_timeout
        self.last_exporter = ""  # the exporter that produced the last measured row's graph

    def versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime as ort

        return {
            "onnxruntime": str(ort.__version__),
            "onnx": str(onnx.__version__),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": cpu_name(),
            "cpu_count": str(os.cpu_count()),
            "threads": "intra_op=device.threads, inter_op=1",
            "exporter": self.exporter,
            "opset": str(self.opset),
            "memory_method": f"subprocess {memory_method()}",
        }

    # -- convert ----------------------------------------------------------------------------

    def _export_one(self, module: nn.Module, built: RowModule, path: Path, dynamo: bool) -> None:
        with _quiet() as log:
            try:
                torch.onnx.export(
                    module,
                    built.inputs,
                    str(path),
                    input_names=list(built.input_names),
                    opset_version=self.opset,
                    dynamo=dynamo,
                )
            except Exception as e:
                err: Exception | None = e
            else:
                err = None
        if err is not None:
            root = _root_cause(err)
            raise ExportError(_one_line(f"{type(root).__name__}: {root}")) from err
        if not path.is_file():
            raise ExportError(_one_line(f"no ONNX file written; exporter said: {log.getvalue()}"))

    def _session(self, path: Path, threads: int) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    @staticmethod
    def _feeds(sess: Any, names: tuple[str, ...], inputs: tuple[torch.Tensor, ...]) -> Any:
        wanted = {i.name for i in sess.get_inputs()}
        return {
            n: np.ascontiguousarray(t.detach().cpu().numpy())
            for n, t in zip(names, inputs, strict=True)
            if n in wanted
        }

    def _check(self, sess: Any, module: nn.Module, built: RowModule) -> None:
        for label, inputs in (("example", built.inputs), ("perturbed", _perturbed(built.inputs))):
            with torch.no_grad():
                ref = [t.detach().float().numpy() for t in flat_outputs(module(*inputs))]
            got = sess.run(None, self._feeds(sess, built.input_names, inputs))
            if len(got) != len(ref):
                raise MismatchError(f"ONNX graph has {len(got)} outputs, PyTorch module {len(ref)}")
            for i, (g, r) in enumerate(zip(got, ref, strict=True)):
                if g.shape != r.shape:
                    raise MismatchError(
                        f"output {i} ({label} inputs): ONNX shape {g.shape} != torch {r.shape}"
                    )
                if not np.allclose(g, r, rtol=self.rtol, atol=self.atol):
                    err = float(np.max(np.abs(g.astype(np.float64) - r)))
                    raise MismatchError(
                        f"output {i} ({label} inputs): ONNX Runtime differs from PyTorch, "
                        f"max abs error {err:.3g} (rtol {self.rtol:g}, atol {self.atol:g})"
                    )

    def _convert(
        self, module: nn.Module, built: RowModule, folder: Path, threads: int
    ) -> tuple[Path, Any]:
        """Export and check; returns the .onnx path and a ready session."""
        order = {"auto": ("torchscript", "dynamo"), "torchscript": ("torchscript",),
                 "dynamo": ("dynamo",)}[self.exporter]  # fmt: skip
        problems: list[str] = []
        mismatch = True
        for kind in order:
            path = folder / f"{kind}.onnx"
            try:
                self._export_one(module, built, path, dynamo=kind == "dynamo")
                sess = self._session(path, threads)
                self._check(sess, module, built)
            except MismatchError as e:
                problems.append(f"{kind}: {e}")
                continue
            except ExportError as e:
                problems.append(f"{kind}: {e}")
                mismatch = False
                continue
            except Exception as e:  # ORT refused the graph
                problems.append(_one_line(f"{kind}: onnxruntime: {type(e).__name__}: {e}"))
                mismatch = False
                continue
            self.last_exporter = kind
            return path, sess
        detail = "; ".join(problems)
        if mismatch:
            raise MismatchError(f"ONNX Runtime output does not match PyTorch ({detail})")
        raise ExportError(f"ONNX export failed ({detail})")

    # -- measure ----------------------------------------------------------------------------

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        if row.precision != "fp32":
            raise ValueError(
                f"ONNX Runtime CPU rows are fp32; this row is {row.precision} (use an fp32 device)"
            )
        module = built.module.eval()
        threads = max(1, device.threads)
        with scratch_dir("nas-ort-") as d:
            path, sess = self._convert(module, built, d, threads)
            weight_bytes = _initializer_bytes(path)
            feeds = self._feeds(sess, built.input_names, built.inputs)
            times = _time_session(sess, feeds, protocol)
            sess = None  # free it before the memory probe
            peak = None
            if protocol.memory:
                feeds_path = Path(d) / "feeds.npz"
                np.savez(feeds_path, **feeds)
                res = run_probe(
                    ["onnx", str(path), str(feeds_path), "--threads", str(threads)],
                    self.memprobe_timeout,
                )
                peak = float(res["peak_mb"])
        return measured_row(
            row, times, compute_unit="CPU", peak_mem_mb=peak, weight_bytes=weight_bytes
        )
