"""Core ML backend: convert a row for real, then measure it on Apple hardware or estimate it.

convert -> run -> parse, one row at a time:

1. **convert** (any OS): ``torch.jit.trace`` the row's module (eval mode) and ``ct.convert`` it to
   an ML Program for the device's deployment target (``iOS18`` and later fuse
   ``F.scaled_dot_product_attention`` into one MIL op), FP16 when the device is FP16, with the
   device's compute units; the ``.mlpackage`` is saved in a temporary folder and its spec read
   back by :func:`inspect_mlprogram`: the op histogram, the weight bytes and per-op FLOPs and
   bytes (:class:`MilSummary`).
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

The roofline (:func:`roofline`)
-------------------------------
For every MIL op of the program except ``const`` and ``constexpr_*`` (weights, materialised when
the model loads)::

    t_op = max(flops / (peak_tflops * 1e12 * efficiency[class]), bytes / (bandwidth_gbs * 1e9))
           + per_op_overhead_us * 1e-6
    latency = sum(t_op)

``peak_tflops``, ``bandwidth_gbs``, ``per_op_overhead_us`` and ``efficiency`` come from the
device YAML's ``estimator:`` section; a class missing there uses :data:`DEFAULT_EFFICIENCY`.

Op classes (:func:`op_class`) and how each op's FLOPs are counted (one multiply-add = 2 FLOPs):

=============  ===========================================  ====================================
class          MIL ops                                      FLOPs
=============  ===========================================  ====================================
conv           ``conv``, ``conv_transpose``                 2 * out elements * (Cin/groups * k)
                                                            (transpose: 2 * in elements * ...)
matmul         ``linear``, ``matmul``, ``einsum``           2 * out elements * K (einsum: 2 *
                                                            product of every index's size)
attention      ``scaled_dot_product_attention``             2*B*L*S*(E + Ev) + 5*B*L*S (fused:
                                                            the L x S scores are never stored)
memory         ``reshape``, ``transpose``, ``concat``,      0: data movement only
               ``split``, slices, ``expand_dims``,
               ``squeeze``, ``tile``, ``gather*``, ``pad``,
               ``cast``, ``upsample_nearest_neighbor``, ...
                (:data:`MEMORY_OPS`)
elementwise    everything else: arithmetic, activations,    per element of the largest tensor
               normalisations (``layer_norm``, GroupNorm's  (inputs or output) x a small factor
               reduce_mean/sub/square/sqrt/real_div),       (:data:`ELEMENTWISE_FLOPS`: 1 for
               ``softmax``, ``reduce_*``                    add/mul, 4 for sigmoid/silu, 8 for
                                                            gelu/layer_norm, 5 for softmax)
=============  ===========================================  ====================================

``bytes`` of an op = its activation inputs + its outputs + the weights it reads (``const``
tensors of rank >= 1 and ``constexpr_*`` outputs, at their stored size: a 6-bit palettised weight
counts 6 bits per element plus its look-up table), float tensors counted at the device precision
(2 bytes for FP16, 4 for FP32). Every op is assumed to read its inputs from and write its output
to DRAM (no fusion, no on-chip reuse): a pessimistic bound for the Neural Engine, whose compiler
fuses elementwise chains; the per-class efficiencies absorb the rest. Scalars and integer
parameters (shapes, axes, perms) are not counted.

``peak_mem_mb`` of an estimated row = weight bytes + the largest activation set of a single op
(its activation inputs + outputs): the weights stay resident, and activations are assumed freed
as soon as their last reader ran. It is a lower bound of what Core ML allocates.

``flops`` of every row (measured or estimated) = the sum of the per-op FLOPs above.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import platform
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.cost._rows import RowSpec
from nas.cost._table import TableRow
from profilers._base import TimingProtocol, measured_row, now_iso, percentiles, time_repeats
from profilers._blocks import RowModule
from profilers._devices import Device, Estimator

__all__ = [
    "DEFAULT_EFFICIENCY",
    "ELEMENTWISE_FLOPS",
    "MEMORY_OPS",
    "OP_CLASSES",
    "CoreMLProfiler",
    "MilOp",
    "MilSummary",
    "RemoteResult",
    "RooflineEstimate",
    "connect_iphone",
    "convert_row",
    "estimate_row",
    "inspect_mlprogram",
    "make_benchmarker",
    "measure_path",
    "measure_remote",
    "op_class",
    "op_seconds",
    "parse_operation_execution",
    "quiet",
    "remote_row",
    "roofline",
]

OP_CLASSES = ("conv", "matmul", "attention", "elementwise", "memory")

#: efficiency used for a class the device YAML does not list (fraction of ``peak_tflops``).
DEFAULT_EFFICIENCY: dict[str, float] = {
    "conv": 0.55,
    "matmul": 0.45,
    "attention": 0.35,
    "elementwise": 1.0,
    "memory": 1.0,
}

CONV_OPS = frozenset({"conv", "conv_transpose"})
MATMUL_OPS = frozenset({"linear", "matmul", "einsum"})
ATTENTION_OPS = frozenset({"scaled_dot_product_attention"})
#: ops that only move data: no FLOPs, their bytes are inputs + outputs.
MEMORY_OPS = frozenset({
    "reshape", "reshape_like", "transpose", "concat", "stack", "split", "slice_by_index",
    "slice_by_size", "expand_dims", "squeeze", "flatten2d", "tile", "gather", "gather_nd",
    "gather_along_axis", "scatter", "scatter_nd", "scatter_along_axis", "pad", "identity",
    "cast", "upsample_nearest_neighbor", "pixel_shuffle", "pixel_unshuffle", "space_to_depth",
    "depth_to_space", "space_to_batch", "batch_to_space", "reverse", "reverse_sequence",
    "sliding_windows", "fill", "fill_like", "shape", "range_1d", "band_part", "one_hot",
    "read_state", "coreml_update_state",
})  # fmt: skip
#: FLOPs per element (of the op's largest tensor) for elementwise-class ops; others count 1.
ELEMENTWISE_FLOPS: dict[str, int] = {
    "sigmoid": 4, "silu": 4, "tanh": 4, "erf": 4, "softplus": 4, "sigmoid_hard": 2,
    "gelu": 8, "softmax": 5, "log_softmax": 5, "clip": 2, "clamped_relu": 2,
    "layer_norm": 8, "instance_norm": 8, "l2_norm": 4, "batch_norm": 2, "local_response_norm": 8,
}  # fmt: skip

_FLOAT_TYPES = {10: 16, 11: 32, 12: 64, 13: 16, 40: 8, 41: 8}  # MIL DataType -> bits
_INT_BITS = {
    1: 8, 21: 8, 22: 16, 23: 32, 24: 64, 25: 4, 31: 8, 32: 16, 33: 32, 34: 64,
    35: 4, 36: 2, 37: 1, 38: 6, 39: 3,
}  # fmt: skip


def op_class(op_type: str) -> str:
    """The roofline class of a MIL op type (see the module docstring's table)."""
    if op_type in CONV_OPS:
        return "conv"
    if op_type in MATMUL_OPS:
        return "matmul"
    if op_type in ATTENTION_OPS:
        return "attention"
    if op_type in MEMORY_OPS:
        return "memory"
    return "elementwise"


# --------------------------------------------------------------------------- MIL inspection


@dataclass(frozen=True)
class MilOp:
    """One compute op of an ML Program with its roofline inputs."""

    op_type: str
    name: str  # its first output's name
    op_class: str  # conv | matmul | attention | elementwise | memory
    flops: int
    bytes: int  # activation inputs + outputs + weights read
    weight_bytes: int  # the part of ``bytes`` that is weights
    out_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def activation_bytes(self) -> int:
        return self.bytes - self.weight_bytes


@dataclass(frozen=True)
class MilSummary:
    """What :func:`inspect_mlprogram` reads from an ML Program."""

    op_histogram: dict[str, int]  # every op type, const and constexpr_* included
    weight_bytes: int  # stored weights (blob-file consts + float immediate tensors)
    ops: list[MilOp] = field(default_factory=list)  # compute ops, in program order
    input_bytes: int = 0
    output_bytes: int = 0

    @property
    def flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.ops)

    def by_class(self) -> dict[str, tuple[int, int, int]]:
        """class -> (op count, FLOPs, bytes)."""
        out: dict[str, tuple[int, int, int]] = {c: (0, 0, 0) for c in OP_CLASSES}
        for o in self.ops:
            n, f, b = out[o.op_class]
            out[o.op_class] = (n + 1, f + o.flops, b + o.bytes)
        return out

    def peak_activation_bytes(self) -> int:
        return max((o.activation_bytes for o in self.ops), default=0)


@dataclass
class _Var:
    shape: tuple[int, ...]
    dtype: int
    weight_bytes: int = 0  # > 0: a weight (const tensor or constexpr output)
    value: list[Any] | None = None  # immediate values of small consts (bools, ints, strings)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _bits(dtype: int) -> int:
    return _FLOAT_TYPES.get(dtype) or _INT_BITS.get(dtype, 32)


def _tensor_type(vt: Any) -> tuple[tuple[int, ...], int]:
    if vt.WhichOneof("type") != "tensorType":
        return (), 0
    tt = vt.tensorType
    dims = []
    for d in tt.dimensions:
        dims.append(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else 1)
    return tuple(dims), int(tt.dataType)


def _immediate(val: Any) -> list[Any] | None:
    if val.WhichOneof("value") != "immediateValue":
        return None
    imm = val.immediateValue
    if imm.WhichOneof("value") != "tensor":
        return None
    t = imm.tensor
    kind = t.WhichOneof("value")
    if kind is None:
        return None
    inner = getattr(t, kind)
    values = getattr(inner, "values", None)
    return list(values) if values is not None else None


def _load_spec(model: Any) -> Any:
    ct = import_coremltools()
    if isinstance(model, (str, Path)):
        return ct.utils.load_spec(str(model))
    if hasattr(model, "get_spec"):
        return model.get_spec()
    if hasattr(model, "mlProgram"):
        return model
    raise TypeError(f"expected an MLModel, a Model spec or a .mlpackage path, not {type(model)}")


def _main_block(spec: Any) -> tuple[Any, Any]:
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError("not an ML Program (convert with convert_to='mlprogram')")
    funcs = spec.mlProgram.functions
    fn = funcs["main"] if "main" in funcs else next(iter(funcs.values()))
    blocks = fn.block_specializations
    block = blocks[fn.opset] if fn.opset in blocks else next(iter(blocks.values()))
    return fn, block


def _walk(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for sub in op.blocks:
            yield from _walk(sub)


def inspect_mlprogram(model: Any, *, float_bytes: int | None = None) -> MilSummary:
    """Op histogram, weight bytes and per-op FLOPs/bytes of an ML Program.

    ``model``: an ``MLModel``, its spec, or the path of a ``.mlpackage`` / ``.mlmodel``.
    ``float_bytes``: count float tensors at this width (the device precision: 2 for FP16);
    ``None`` counts every tensor at its stored type. Compressed weights (palettised indices and
    look-up tables, quantised ints) always count at their stored size.
    """
    spec = _load_spec(model)
    fn, block = _main_block(spec)
    env: dict[str, _Var] = {}

    def nbytes(v: _Var) -> int:
        if float_bytes is not None and v.dtype in _FLOAT_TYPES:
            return v.numel * float_bytes
        return (v.numel * _bits(v.dtype) + 7) // 8

    in_bytes = 0
    for inp in fn.inputs:
        shape, dtype = _tensor_type(inp.type)
        env[inp.name] = _Var(shape, dtype)
        in_bytes += nbytes(env[inp.name])

    def const_var(vtype: Any, val: Any) -> _Var:
        shape, dtype = _tensor_type(vtype)
        v = _Var(shape, dtype, value=_immediate(val))
        if val.WhichOneof("value") == "blobFileValue" or (
            dtype in _FLOAT_TYPES and len(shape) >= 1
        ):
            v.weight_bytes = max(1, nbytes(v))
        return v

    hist: Counter[str] = Counter()
    weight_total = 0
    ops: list[MilOp] = []
    for op in _walk(block):
        hist[op.type] += 1
        if op.type == "const":
            out = op.outputs[0]
            v = const_var(out.type, op.attributes["val"])
            weight_total += v.weight_bytes
            env[out.name] = v
            continue
        args: list[tuple[str, _Var | None]] = []
        for name, arg in op.inputs.items():
            for a in arg.arguments:
                if a.WhichOneof("binding") == "name":
                    args.append((name, env.get(a.name)))
                else:  # a value written inline (constexpr ops keep their data this way)
                    v = const_var(a.value.type, a.value)
                    weight_total += v.weight_bytes
                    args.append((name, v))
        if op.type.startswith("constexpr_"):  # decompressed at load time: a weight
            for key, attr in op.attributes.items():  # iOS16/17 opsets keep data as attributes
                if key != "name":
                    v = const_var(attr.type, attr)
                    weight_total += v.weight_bytes
                    args.append((key, v))
            wb = sum(v.weight_bytes for _, v in args if v is not None)
            for out in op.outputs:
                shape, dtype = _tensor_type(out.type)
                env[out.name] = _Var(shape, dtype, weight_bytes=max(1, wb))
            continue
        outs: list[_Var] = []
        for out in op.outputs:
            shape, dtype = _tensor_type(out.type)
            outs.append(_Var(shape, dtype))
            env[out.name] = outs[-1]
        act_in = [v for _, v in args if v is not None and not v.weight_bytes and v.value is None]
        weights = [v for _, v in args if v is not None and v.weight_bytes]
        w_bytes = sum(v.weight_bytes for v in weights)
        act_bytes = sum(nbytes(v) for v in act_in) + sum(nbytes(v) for v in outs)
        named = {name: v for name, v in args if v is not None}
        cls = op_class(op.type)
        flops = _op_flops(op.type, cls, named, act_in, outs)
        ops.append(MilOp(
            op.type, op.outputs[0].name if op.outputs else op.type, cls, flops,
            act_bytes + w_bytes, w_bytes, tuple(o.shape for o in outs),
        ))  # fmt: skip
    out_bytes = sum(nbytes(env[o]) for o in block.outputs if o in env)
    return MilSummary(dict(hist), weight_total, ops, in_bytes, out_bytes)


def _op_flops(
    op_type: str, cls: str, named: Mapping[str, _Var], act_in: Sequence[_Var], outs: Sequence[_Var]
) -> int:
    out_numel = outs[0].numel if outs else 0
    if cls == "memory":
        return 0
    if op_type == "conv":
        w = named.get("weight")
        return 2 * out_numel * (math.prod(w.shape[1:]) if w else 1)
    if op_type == "conv_transpose":
        w, x = named.get("weight"), named.get("x")
        return 2 * (x.numel if x else 0) * (math.prod(w.shape[1:]) if w else 1)
    if op_type == "linear":
        w = named.get("weight")
        return 2 * out_numel * (w.shape[-1] if w and w.shape else 1)
    if op_type == "matmul":
        x = named.get("x")
        tx = named.get("transpose_x")
        if x is None or not x.shape:
            return 2 * out_numel
        transposed = bool(tx and tx.value and tx.value[0])
        inner = x.shape[-2] if transposed and len(x.shape) >= 2 else x.shape[-1]
        return 2 * out_numel * inner
    if op_type == "einsum":
        return _einsum_flops(named, act_in, out_numel)
    if op_type == "scaled_dot_product_attention":
        q, k, v = named.get("query"), named.get("key"), named.get("value")
        if q is None or k is None or v is None or len(q.shape) < 2 or len(k.shape) < 2:
            return 2 * out_numel
        length, e = q.shape[-2], q.shape[-1]
        s, ev = k.shape[-2], v.shape[-1]
        b = q.numel // max(1, length * e)
        return int(2 * b * length * s * (e + ev) + 5 * b * length * s)
    biggest = max([out_numel, *(v.numel for v in act_in)])
    return ELEMENTWISE_FLOPS.get(op_type, 1) * biggest


def _einsum_flops(named: Mapping[str, _Var], act_in: Sequence[_Var], out_numel: int) -> int:
    eq = named.get("equation")
    if eq is None or not eq.value:
        return 2 * out_numel
    text = eq.value[0]
    text = text.decode() if isinstance(text, bytes) else str(text)
    lhs = text.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, v in zip(lhs, act_in, strict=False):
        for letter, n in zip(term, v.shape, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), n)
    return 2 * math.prod(sizes.values()) if sizes else 2 * out_numel


# --------------------------------------------------------------------------- the roofline


@dataclass(frozen=True)
class RooflineEstimate:
    latency_ms: float
    by_class_ms: dict[str, float]  # time of each class (its ops' roofline + overhead)
    compute_bound_ops: int
    memory_bound_ops: int
    overhead_ms: float
    n_ops: int
    peak_mem_bytes: int  # weights + the largest single-op activation set


def _efficiency(est: Estimator, cls: str) -> float:
    e = est.efficiency.get(cls, DEFAULT_EFFICIENCY[cls])
    if e <= 0:
        raise ValueError(f"estimator efficiency for {cls!r} must be > 0, not {e}")
    return e


def op_seconds(op: MilOp, est: Estimator) -> tuple[float, bool]:
    """Roofline time of one op (overhead excluded) and whether it is compute-bound."""
    t_compute = op.flops / (est.peak_tflops * 1e12 * _efficiency(est, op.op_class))
    t_memory = op.bytes / (est.bandwidth_gbs * 1e9)
    return max(t_compute, t_memory), t_compute >= t_memory


def roofline(summary: MilSummary, est: Estimator) -> RooflineEstimate:
    """The documented roofline (module docstring) over every compute op of ``summary``."""
    by_class = dict.fromkeys(OP_CLASSES, 0.0)
    n_compute = 0
    overhead = est.per_op_overhead_us * 1e-6
    for op in summary.ops:
        t, compute_bound = op_seconds(op, est)
        n_compute += compute_bound
        by_class[op.op_class] += (t + overhead) * 1e3
    n = len(summary.ops)
    return RooflineEstimate(
        latency_ms=sum(by_class.values()),
        by_class_ms=by_class,
        compute_bound_ops=n_compute,
        memory_bound_ops=n - n_compute,
        overhead_ms=n * overhead * 1e3,
        n_ops=n,
        peak_mem_bytes=summary.weight_bytes + summary.peak_activation_bytes(),
    )


# --------------------------------------------------------------------------- conversion


def import_coremltools() -> Any:
    """coremltools, imported without its import-time warnings (torch version, missing libs)."""
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import coremltools as ct
    except ImportError as e:  # pragma: no cover - a hard dependency
        raise ImportError(f"the Core ML profiler needs coremltools: {e}") from None
    finally:
        log.setLevel(level)
    return ct


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
        with tempfile.TemporaryDirectory(prefix="nas-coreml-") as tmp:
            _, path = convert_row(built, device, tmp)
            return inspect_mlprogram(path, float_bytes=_float_bytes(device))

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        if device.backend != "coreml":
            raise ValueError(f"device {device.name} is not a Core ML device ({device.backend})")
        with tempfile.TemporaryDirectory(prefix="nas-coreml-") as tmp:
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
            peak_mem_mb=_peak_mem_mb(summary),
            weight_bytes=summary.weight_bytes,
            flops=summary.flops,
            reason="MLModel.predict on this Mac; peak_mem_mb estimated from the MIL program",
        )


def _float_bytes(device: Device) -> int:
    return 2 if device.precision == "fp16" else 4


def _peak_mem_mb(summary: MilSummary) -> float:
    return (summary.weight_bytes + summary.peak_activation_bytes()) / 2**20


def estimate_row(row: RowSpec, summary: MilSummary, device: Device, why: str = "") -> TableRow:
    """The roofline row (``source="estimated"``) for ``summary`` on ``device``."""
    if device.estimator is None:
        raise ValueError(f"device {device.name} has no estimator: section to estimate with")
    est = roofline(summary, device.estimator)
    note = (
        f"roofline estimate from the converted MIL program ({est.n_ops} ops); "
        "no Apple device measured it"
    )
    if why and "no Apple device" not in why:
        note = f"{note}: {why}"
    return TableRow(
        row, "estimated", est.latency_ms, est.latency_ms, est.latency_ms, repeats=0,
        peak_mem_mb=est.peak_mem_bytes / 2**20, weight_bytes=summary.weight_bytes,
        flops=summary.flops, compute_unit=device.compute_units, reason=note,
        measured_at=now_iso(),
    )  # fmt: skip


def remote_row(row: RowSpec, summary: MilSummary, result: RemoteResult, device: Device) -> TableRow:
    """The measured row from an iPhone benchmark."""
    p10, p50, p90 = percentiles(result.predict_ms)
    load = f"; load {result.load_ms:.1f} ms" if result.load_ms is not None else ""
    return TableRow(
        row, "measured", p10, p50, p90, repeats=len(result.predict_ms),
        peak_mem_mb=_peak_mem_mb(summary), weight_bytes=summary.weight_bytes,
        flops=summary.flops, compute_unit=result.compute_unit or device.compute_units,
        reason=f"MLModelBenchmarker on {device.name}{load}; peak_mem_mb estimated",
        measured_at=now_iso(),
    )  # fmt: skip
