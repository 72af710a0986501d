"""Reading a Core ML ML Program: op histogram, weight bytes, per-op FLOPs and bytes.

:func:`inspect_mlprogram` walks the MIL program of an ``MLModel``, its spec or a saved
``.mlpackage`` and returns a :class:`MilSummary`. ``nas export`` reports it for a whole network;
the Core ML profiler (``profilers``) feeds it to its roofline estimate. ``import nas.mil`` does
not import coremltools (nor torch): reading a saved package imports coremltools on first use.

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
counts 6 bits per element plus its look-up table), float tensors counted at ``float_bytes`` (the
device precision: 2 bytes for FP16, 4 for FP32). Scalars and integer parameters (shapes, axes,
perms) are not counted.

Each :class:`MilOp` also records the dataflow (the names and bytes of its activation inputs and
outputs), which the Core ML estimator's fusion rules read, and for
``scaled_dot_product_attention`` its ``(batch, heads, L, S)``, which its attention models read
(profilers/_estimator.py). :meth:`MilSummary.to_dict` / :meth:`MilSummary.from_dict` round-trip a
summary through JSON (benchmarks cache converted programs so).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ELEMENTWISE_FLOPS",
    "MEMORY_OPS",
    "OP_CLASSES",
    "MilOp",
    "MilSummary",
    "import_coremltools",
    "inspect_mlprogram",
    "op_class",
]

OP_CLASSES = ("conv", "matmul", "attention", "elementwise", "memory")

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
    """The class of a MIL op type (see the module docstring's table)."""
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
    # the dataflow graph, for fusion: activation inputs and outputs by name, with their bytes
    inputs: tuple[str, ...] = ()
    input_bytes: tuple[int, ...] = ()
    outputs: tuple[str, ...] = ()
    output_bytes: tuple[int, ...] = ()
    # scaled_dot_product_attention only: (batch without heads, heads, L queries, S keys)
    attention: tuple[int, int, int, int] | None = None
    has_const_operand: bool = False  # reads a constant tensor (a bias, a scale)

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a converted program is costly to make: benchmarks cache it)."""
        return {
            "op_histogram": dict(self.op_histogram),
            "weight_bytes": self.weight_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "ops": [dataclasses.asdict(o) for o in self.ops],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MilSummary:
        def op(m: Mapping[str, Any]) -> MilOp:
            m = dict(m)
            m["out_shapes"] = tuple(tuple(x) for x in m.get("out_shapes", ()))
            for k in ("inputs", "input_bytes", "outputs", "output_bytes"):
                m[k] = tuple(m.get(k, ()))
            if m.get("attention") is not None:
                m["attention"] = tuple(m["attention"])
            return MilOp(**m)

        return cls(
            dict(d["op_histogram"]), int(d["weight_bytes"]), [op(o) for o in d["ops"]],
            int(d.get("input_bytes", 0)), int(d.get("output_bytes", 0)),
        )  # fmt: skip


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
        names: list[tuple[str, _Var | None]] = []  # the same, by variable name
        for name, arg in op.inputs.items():
            for a in arg.arguments:
                if a.WhichOneof("binding") == "name":
                    args.append((name, env.get(a.name)))
                    names.append((a.name, env.get(a.name)))
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
        act_named = [
            (n, v) for n, v in names if v is not None and not v.weight_bytes and v.value is None
        ]
        act_in = [v for _, v in act_named]
        weights = [v for _, v in args if v is not None and v.weight_bytes]
        w_bytes = sum(v.weight_bytes for v in weights)
        act_bytes = sum(nbytes(v) for v in act_in) + sum(nbytes(v) for v in outs)
        named = {name: v for name, v in args if v is not None}
        cls = op_class(op.type)
        flops = _op_flops(op.type, cls, named, act_in, outs)
        ops.append(MilOp(
            op.type, op.outputs[0].name if op.outputs else op.type, cls, flops,
            act_bytes + w_bytes, w_bytes, tuple(o.shape for o in outs),
            inputs=tuple(n for n, _ in act_named),
            input_bytes=tuple(nbytes(v) for v in act_in),
            outputs=tuple(o.name for o in op.outputs),
            output_bytes=tuple(nbytes(v) for v in outs),
            attention=_attention_dims(named) if cls == "attention" else None,
            has_const_operand=any(
                v is not None and (v.weight_bytes or (v.value is not None and v.dtype in
                                                      _FLOAT_TYPES)) for _, v in args
            ),
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


def _attention_dims(named: Mapping[str, _Var]) -> tuple[int, int, int, int] | None:
    """(batch without heads, heads, L, S) of a ``scaled_dot_product_attention``'s query and key
    (``(..., L, E)`` and ``(..., S, E)``; heads: the dimension before L when the rank is >= 4)."""
    q, k = named.get("query"), named.get("key")
    if q is None or k is None or len(q.shape) < 2 or len(k.shape) < 2:
        return None
    length, s = q.shape[-2], k.shape[-2]
    heads = q.shape[-3] if len(q.shape) >= 4 else 1
    rows = q.numel // max(1, length * q.shape[-1])
    return rows // max(1, heads), heads, length, s


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
