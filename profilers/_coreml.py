"""Core ML backend: convert a row for real, then measure it on Apple hardware or estimate it.

convert -> run -> parse, one row at a time:

1. **convert** (any OS): ``torch.jit.trace`` the row's module (eval mode) and ``ct.convert`` it to
   an ML Program for the device's deployment target (``iOS18`` and later fuse
   ``F.scaled_dot_product_attention`` into one MIL op), FP16 when the device is FP16, with the
   device's compute units; the ``.mlpackage`` is saved in a temporary folder and its spec read
   back by :func:`nas.mil.inspect_mlprogram`: the op histogram, the weight bytes and per-op
   FLOPs and bytes (:class:`nas.mil.MilSummary`).
2. **measure** where Apple hardware runs the model:

   * a Mac (device ``mac``, or any Core ML device that is not an iPhone), on macOS:
     ``MLModel.predict`` timed by :func:`profilers._base.time_repeats`;
   * an iPhone attached to a Mac: coremltools 9's ``models.ml_program.experimental``
     (``remote_device.Device.get_connected_devices(DeviceType.IPHONE)``,
     ``prepare_for_model_debugging`` builds and installs the model-runner app, then
     ``perf_utils.MLModelBenchmarker``: ``benchmark_load``, ``benchmark_predict`` and
     ``benchmark_operation_execution``, whose per-op preferred compute device, weighted by Core
     ML's estimated per-op cost, gives the share of the work on the Neural Engine, written to
     ``compute_unit`` as e.g. ``"ANE 92%"``). See
     https://apple.github.io/coremltools/docs-guides/source/mlmodel-debugging-perf-utilities.html
3. **estimate** everywhere else (always on Linux): the roofline below, ``source="estimated"``,
   ``repeats=0``, p10 = p50 = p90, and a ``reason`` that says so.

The estimate (:mod:`profilers._estimator`)
------------------------------------------
The device YAML's ``estimator:`` section says how the program executes: the attention model
(``fused``, ``split_heads`` per head or per chunk of queries, ``materialized``), whether
elementwise ops fuse into their producer, which ops leave the Neural Engine, and the roofline
constants (fitted on Apple's published SD-2.1 figures: benchmarks/estimator_vs_published.py).
A row's ``reason`` records the attention model that produced it; its p10 / p90 are the
estimate times the calibration residuals' quantiles (``uncertainty:``); a row whose peak
memory exceeds the device's budget is still priced, and its ``reason`` starts with
``infeasible:`` (an arch that uses it is over the memory budget).

``flops`` of every row (measured or estimated) = the sum of the per-op FLOPs (:mod:`nas.mil`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import platform
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.cost import RowSpec, TableRow
from nas.mil import MilSummary, import_coremltools, inspect_mlprogram
from profilers._base import (
    TimingProtocol,
    measured_row,
    now_iso,
    percentiles,
    scratch_dir,
    time_repeats,
)
from profilers._blocks import RowModule
from profilers._devices import Device
from profilers._estimator import (
    DEFAULT_EFFICIENCY,
    RooflineEstimate,
    op_seconds,
    roofline,
)

__all__ = [
    "DEFAULT_EFFICIENCY",
    "CoreMLProfiler",
    "RemoteResult",
    "RooflineEstimate",
    "connect_iphone",
    "convert_row",
    "estimate_row",
    "infeasible_note",
    "make_benchmarker",
    "measure_path",
    "measure_remote",
    "op_seconds",
    "parse_operation_execution",
    "quiet",
    "remote_row",
    "roofline",
]

# --------------------------------------------------------------------------- conversion


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence coremltools' progress bars (stderr), warnings and log lines."""
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _target(ct: Any, name: str) -> Any:
    if not name:
        return None
    try:
        return getattr(ct.target, name)
    except AttributeError:
        raise ValueError(f"unknown Core ML deployment target {name!r}") from None


def _compute_units(ct: Any, name: str) -> Any:
    try:
        return getattr(ct.ComputeUnit, name or "ALL")
    except AttributeError:
        known = [c for c in dir(ct.ComputeUnit) if c.isupper()]
        raise ValueError(f"unknown compute units {name!r}; one of {known}") from None


def convert_row(built: RowModule, device: Device, folder: str | Path) -> tuple[Any, Path]:
    """Trace ``built.module``, convert it for ``device`` and save ``<folder>/row.mlpackage``.

    Returns the ``MLModel`` (not loaded: loading needs macOS) and the package path.
    """
    import numpy as np
    import torch

    ct = import_coremltools()
    module = built.module.eval()
    fp16 = device.precision == "fp16"
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(  # type: ignore[no-untyped-call]
            module, built.inputs, check_trace=False
        )
        inputs = [
            ct.TensorType(name=n, shape=tuple(x.shape), dtype=np.float16 if fp16 else np.float32)
            for n, x in zip(built.input_names, built.inputs, strict=True)
        ]
        mlmodel = ct.convert(
            traced,
            inputs=inputs,
            convert_to="mlprogram",
            minimum_deployment_target=_target(ct, device.target),
            compute_precision=ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32,
            compute_units=_compute_units(ct, device.compute_units),
            skip_model_load=True,
        )
        path = Path(folder) / "row.mlpackage"
        mlmodel.save(str(path))
    return mlmodel, path


def _feed(built: RowModule, fp16: bool) -> dict[str, Any]:
    import numpy as np

    dtype = np.float16 if fp16 else np.float32
    return {
        n: x.detach().numpy().astype(dtype)
        for n, x in zip(built.input_names, built.inputs, strict=True)
    }


# --------------------------------------------------------------------------- iPhone (remote)


@dataclass(frozen=True)
class RemoteResult:
    """What the iPhone path measured: predict samples (ms), load time and the ANE share."""

    predict_ms: list[float]
    load_ms: float | None
    unit_share: dict[str, float]  # ANE / GPU / CPU -> share of Core ML's estimated work

    @property
    def compute_unit(self) -> str:
        if not self.unit_share:
            return ""
        return f"ANE {100 * self.unit_share.get('ANE', 0.0):.0f}%"


def _unit_of(compute_device: Any) -> str:
    """ANE/GPU/CPU from a compute device object (matched by its class name)."""
    name = type(compute_device).__name__
    if "NeuralEngine" in name:
        return "ANE"
    if "GPU" in name:
        return "GPU"
    return "CPU"


def parse_operation_execution(infos: Sequence[Any]) -> dict[str, float]:
    """Share of the work per compute unit from ``benchmark_operation_execution``'s result.

    Each info has ``compute_device_usage.preferred_compute_device`` (or ``None``) and a
    ``measurement`` whose samples are the predict time scaled by Core ML's estimated cost of the
    op; the share is the sum of those medians per unit. Where Core ML gives no costs, ops are
    counted instead.
    """
    weights: dict[str, float] = {}
    counts: dict[str, float] = {}
    for info in infos:
        usage = getattr(info, "compute_device_usage", None)
        if usage is None:
            continue
        unit = _unit_of(usage.preferred_compute_device)
        counts[unit] = counts.get(unit, 0.0) + 1.0
        stats = getattr(info.measurement, "statistics", None)
        if stats is not None:
            weights[unit] = weights.get(unit, 0.0) + float(stats.median)
    use = weights if sum(weights.values()) > 0 else counts
    total = sum(use.values())
    return {u: w / total for u, w in sorted(use.items())} if total > 0 else {}


async def _remote_async(bench: Any, feed: Mapping[str, Any], protocol: TimingProtocol) -> Any:
    load = await bench.benchmark_load(iterations=1)
    pred = await bench.benchmark_predict(
        inputs=dict(feed), iterations=max(1, protocol.max_repeats), warmup=protocol.warmup > 0
    )
    ops = await bench.benchmark_operation_execution(inputs=dict(feed), iterations=1)
    return load, pred, ops


def measure_remote(bench: Any, feed: Mapping[str, Any], protocol: TimingProtocol) -> RemoteResult:
    """Run an ``MLModelBenchmarker`` (or anything with its three async methods) and parse it."""
    load, pred, ops = asyncio.run(_remote_async(bench, feed, protocol))
    samples = [float(s) for s in pred.samples]
    if not samples:
        raise RuntimeError("the remote benchmark returned no predict samples")
    load_ms = float(load.statistics.median) if load.statistics is not None else None
    return RemoteResult(samples, load_ms, parse_operation_execution(ops))


def connect_iphone() -> Any:
    """The first attached iPhone, prepared for model debugging (macOS + Xcode only)."""
    with quiet():
        from coremltools.models.ml_program.experimental.remote_device import (
            Device as RemoteDevice,
        )
        from coremltools.models.ml_program.experimental.remote_device import DeviceType
    found = RemoteDevice.get_connected_devices(DeviceType.IPHONE)
    if not found:
        raise RuntimeError("no iPhone is connected (coremltools remote_device found none)")
    return asyncio.run(found[0].prepare_for_model_debugging())


def make_benchmarker(package: Path, device: Device, remote_device: Any) -> Any:
    """An ``MLModelBenchmarker`` for the package on ``remote_device`` (macOS only)."""
    ct = import_coremltools()
    from coremltools.models.ml_program.experimental.perf_utils import MLModelBenchmarker

    model = ct.models.MLModel(
        str(package), compute_units=_compute_units(ct, device.compute_units),
        skip_model_load=True,
    )  # fmt: skip
    return MLModelBenchmarker(model=model, device=remote_device)


# --------------------------------------------------------------------------- the profiler


def measure_path(device: Device, system: str | None = None) -> tuple[str, str]:
    """How a row for ``device`` is timed here: ``local``, ``remote`` or ``estimate``, and why."""
    system = system or platform.system()
    if system != "Darwin":
        return "estimate", "Core ML runs models only on macOS; no Apple device measured it"
    if device.name.startswith("iphone"):
        return "remote", "iPhone through coremltools remote_device + MLModelBenchmarker"
    return "local", "MLModel.predict on this Mac"


class CoreMLProfiler:
    """Core ML rows: converted for real everywhere, measured on Apple hardware, else estimated.

    ``remote_device`` (a prepared ``remote_device.Device``), ``connect`` (how to get one:
    :func:`connect_iphone`) and ``benchmarker_factory`` (:func:`make_benchmarker`) can be
    injected: tests pass fakes. ``system`` overrides ``platform.system()``.
    """

    name = "coreml"

    def __init__(
        self,
        *,
        remote_device: Any = None,
        benchmarker_factory: Callable[[Path, Device, Any], Any] | None = None,
        connect: Callable[[], Any] | None = None,
        system: str | None = None,
    ) -> None:
        self._remote_device = remote_device
        self._bench_factory = benchmarker_factory or make_benchmarker
        self._connect = connect or connect_iphone
        self._system = system or platform.system()

    def versions(self) -> dict[str, str]:
        import numpy
        import torch

        ct = import_coremltools()
        if self._system == "Darwin":
            how = (
                "measure: MLModel.predict on this Mac; iPhone via coremltools remote_device "
                "+ MLModelBenchmarker (estimated when none is attached)"
            )
        else:
            how = "measure: estimated (no Apple device)"
        return {
            "coremltools": str(ct.__version__),
            "torch": str(torch.__version__),
            "numpy": str(numpy.__version__),
            "python": sys.version.split()[0],
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "measure": how,
        }

    def inspect(self, built: RowModule, device: Device) -> MilSummary:
        """Convert ``built`` for ``device`` and inspect the saved package."""
        with scratch_dir("nas-coreml-") as tmp:
            _, path = convert_row(built, device, tmp)
            return inspect_mlprogram(path, float_bytes=_float_bytes(device))

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        if device.backend != "coreml":
            raise ValueError(f"device {device.name} is not a Core ML device ({device.backend})")
        with scratch_dir("nas-coreml-") as tmp:
            _, path = convert_row(built, device, tmp)
            summary = inspect_mlprogram(path, float_bytes=_float_bytes(device))
            how, why = measure_path(device, self._system)
            if how == "remote" and self._remote_device is None:
                try:
                    self._remote_device = self._connect()
                except Exception as e:  # no phone, no Xcode: estimate instead, and say why
                    how, why = "estimate", f"no iPhone measured it ({type(e).__name__}: {e})"
            if how == "local":
                return self._measure_local(row, built, device, protocol, path, summary)
            if how == "remote":
                bench = self._bench_factory(path, device, self._remote_device)
                result = measure_remote(bench, _feed(built, device.precision == "fp16"), protocol)
                return remote_row(row, summary, result, device)
        return estimate_row(row, summary, device, why)

    def _measure_local(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol,
        path: Path, summary: MilSummary,
    ) -> TableRow:  # fmt: skip
        ct = import_coremltools()
        model = ct.models.MLModel(str(path), compute_units=_compute_units(ct, device.compute_units))
        feed = _feed(built, device.precision == "fp16")
        times = time_repeats(lambda: model.predict(feed), protocol)
        return measured_row(
            row,
            times,
            compute_unit=device.compute_units,
            peak_mem_mb=_peak_mem_mb(summary, device),
            weight_bytes=summary.weight_bytes,
            flops=summary.flops,
            reason="MLModel.predict on this Mac; peak_mem_mb estimated from the MIL program",
        )


def _float_bytes(device: Device) -> int:
    return 2 if device.precision == "fp16" else 4


def _peak_mem_mb(summary: MilSummary, device: Device) -> float:
    """Weights + the largest activation set, with the device's attention model's scores."""
    if device.estimator is not None:
        est = roofline(summary, device.estimator, _float_bytes(device))
        return est.peak_mem_bytes / 2**20
    return (summary.weight_bytes + summary.peak_activation_bytes()) / 2**20


def infeasible_note(peak_mb: float, device: Device) -> str:
    """``"infeasible: ..."`` when ``peak_mb`` exceeds the device's memory budget, else ""."""
    if peak_mb <= device.memory_budget_mb:
        return ""
    return (
        f"infeasible: peak memory {peak_mb:.0f} MB exceeds the {device.name} budget "
        f"{device.memory_budget_mb:.0f} MB"
    )


def estimate_row(row: RowSpec, summary: MilSummary, device: Device, why: str = "") -> TableRow:
    """The roofline row (``source="estimated"``) for ``summary`` on ``device``: p10 / p90 from
    the calibration band; the note records the attention model and, first, infeasibility."""
    est_c = device.estimator
    if est_c is None:
        raise ValueError(f"device {device.name} has no estimator: section to estimate with")
    est = roofline(summary, est_c, _float_bytes(device))
    peak_mb = est.peak_mem_bytes / 2**20
    note = (
        f"roofline estimate from the converted MIL program ({est.n_ops} ops, "
        f"{est.fused_ops} fused; attention {est.attention}"
        + (f"; {len(est.off_ane)} off the Neural Engine: {est.off_ane[0]}" if est.off_ane else "")
        + "); no Apple device measured it"
    )
    if why and "no Apple device" not in why:
        note = f"{note}: {why}"
    infeasible = infeasible_note(peak_mb, device)
    if infeasible:
        note = f"{infeasible}; {note}"
    p50 = est.latency_ms
    return TableRow(
        row, "estimated", p50 * est_c.p10_ratio, p50, p50 * est_c.p90_ratio, repeats=0,
        peak_mem_mb=peak_mb, weight_bytes=summary.weight_bytes,
        flops=summary.flops, compute_unit=device.compute_units, reason=note,
        measured_at=now_iso(),
    )  # fmt: skip


def remote_row(row: RowSpec, summary: MilSummary, result: RemoteResult, device: Device) -> TableRow:
    """The measured row from an iPhone benchmark."""
    p10, p50, p90 = percentiles(result.predict_ms)
    load = f"; load {result.load_ms:.1f} ms" if result.load_ms is not None else ""
    return TableRow(
        row, "measured", p10, p50, p90, repeats=len(result.predict_ms),
        peak_mem_mb=_peak_mem_mb(summary, device), weight_bytes=summary.weight_bytes,
        flops=summary.flops, compute_unit=result.compute_unit or device.compute_units,
        reason=f"MLModelBenchmarker on {device.name}{load}; peak_mem_mb estimated",
        measured_at=now_iso(),
    )  # fmt: skip
