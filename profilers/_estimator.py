"""The Core ML estimator's execution model: attention, fusion, Neural Engine fallback, roofline.

Where no Apple device is reachable, a row's latency and peak memory are estimated from its
converted MIL program (:class:`nas.mil.MilSummary`). Four rules shape the estimate; each is
stated in docs/profiling.md with its sources, and each is a field of the device YAML.

**Attention** (:class:`AttentionModel`, the YAML's ``estimator.attention``). A fused
``scaled_dot_product_attention`` op with query ``(b, h, L, E)`` and key ``(b, h, S, E)`` runs as

* ``fused``: the ``L x S`` scores never leave the chip: traffic is q, k, v and the output;
  no transient memory;
* ``split_heads``: Apple's split-einsum design (ml-stable-diffusion ``attention.py``): one
  einsum, softmax and einsum per head (``chunk: 0``) or per head and chunk of ``chunk`` queries
  (``SPLIT_EINSUM_V2``: 512). The scores of the whole op cross DRAM four times (written by
  the first einsum, read and written by softmax, read by the second einsum); the transient
  memory is one unit's scores and their softmax, ``2 * b * Lc * S`` elements (``Lc = L`` or
  the chunk), plus the unit's q, k and v slices ``b * (Lc + 2 S) * E`` (workspace);
* ``materialized``: all heads at once: the same traffic, transient ``2 * b * h * L * S``
  elements plus the whole q, k, v copies ``b * h * (L + 2 S) * E`` (workspace).

**Fusion** (:func:`fusion_groups`, ``estimator.fusion``). An elementwise op of
:data:`FUSABLE_OPS` (bias, activation, residual add, scale) is fused into its producer when
that producer is a conv, matmul, attention or normalisation op (or an op already fused into
one) and the producer's output has no other reader. The intermediate tensor never reaches DRAM:
neither its write by the producer nor its read by the fused op is charged, the group pays one
per-op overhead, and its other inputs (the residual) are still read.

**Views** (:data:`VIEW_OPS`: ``reshape``, ``expand_dims``, ``squeeze``) relabel a tensor's
shape without moving data: no time is charged for them (transposes, concats and slices are).

**Off the Neural Engine** (:class:`NeuralEngineRules`, ``estimator.neural_engine``). An op whose
type is listed as unsupported, or one with a tensor dimension (outputs, and the scores of a
split or materialised attention) above ``max_dim``, runs on the fallback unit at its own peak
and bandwidth.

**The roofline**, per fusion group ``g`` (an op alone is its own group)::

    t(g) = max(sum(flops / (peak_tflops * 1e12 * efficiency[class])),
               sum(charged bytes) / (bandwidth_gbs * 1e9 * bandwidth_efficiency))
           + per_op_overhead_us * 1e-6
    latency = sum over groups

``peak_mem_bytes`` = weights + the largest single-op activation set (its activation inputs +
outputs, + an attention op's transient scores and workspace).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.mil import OP_CLASSES, MilOp, MilSummary

if TYPE_CHECKING:
    from profilers._devices import Estimator

__all__ = [
    "ATTENTION_KINDS",
    "DEFAULT_EFFICIENCY",
    "FUSABLE_OPS",
    "VIEW_OPS",
    "AttentionModel",
    "GroupCosts",
    "NeuralEngineRules",
    "RooflineEstimate",
    "attention_memory",
    "charged_bytes",
    "fusion_groups",
    "group_costs",
    "op_seconds",
    "roofline",
]

ATTENTION_KINDS = ("fused", "split_heads", "materialized")

#: efficiency used for a class the device YAML does not list (fraction of ``peak_tflops``).
DEFAULT_EFFICIENCY: dict[str, float] = {
    "conv": 0.55,
    "matmul": 0.45,
    "attention": 0.35,
    "elementwise": 1.0,
    "memory": 1.0,
}

#: elementwise ops that fuse into a preceding conv / matmul / attention / normalisation.
FUSABLE_OPS = frozenset({
    "add", "sub", "mul", "real_div", "maximum", "minimum", "relu", "relu6", "leaky_relu",
    "sigmoid", "sigmoid_hard", "silu", "gelu", "tanh", "clip", "clamped_relu", "elu",
    "softplus", "linear_activation", "scaled_tanh", "erf", "batch_norm",
})  # fmt: skip
#: normalisation ops that anchor a fusion group (their affine scale and shift fuse into them).
NORM_OPS = frozenset({"layer_norm", "instance_norm", "batch_norm", "l2_norm"})
#: ops that only relabel a tensor's shape (a view): no data moves, no time is charged.
VIEW_OPS = frozenset({"reshape", "reshape_like", "expand_dims", "squeeze", "flatten2d"})
_ANCHOR_CLASSES = frozenset({"conv", "matmul", "attention"})


@dataclass(frozen=True)
class AttentionModel:
    """How a fused attention op executes on the device (module docstring)."""

    kind: str = "fused"  # fused | split_heads | materialized
    chunk: int = 0  # split_heads: queries per unit (0: a whole head)

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"attention {self.kind!r} is not one of {list(ATTENTION_KINDS)}")
        if self.chunk < 0 or (self.chunk and self.kind != "split_heads"):
            raise ValueError("attention chunk: a whole number >= 0, for split_heads only")

    @property
    def label(self) -> str:
        """What a row's note records: ``fused``, ``split_heads`` or ``split_heads/chunk=512``."""
        return f"{self.kind}/chunk={self.chunk}" if self.chunk else self.kind

    def unit_queries(self, length: int) -> int:
        """Queries whose scores are materialised at once (per head)."""
        return min(self.chunk, length) if self.chunk else length


def attention_memory(op: MilOp, model: AttentionModel, float_bytes: int) -> tuple[int, int, int]:
    """(score traffic bytes, transient bytes, workspace bytes) of an attention op under
    ``model``: module docstring. (0, 0, 0) for any other op and for ``fused``."""
    if op.attention is None or model.kind == "fused":
        return 0, 0, 0
    b, h, length, s = op.attention
    e = _head_dim(op)
    traffic = 4 * b * h * length * s * float_bytes
    if model.kind == "materialized":
        transient = 2 * b * h * length * s * float_bytes
        workspace = b * h * (length + 2 * s) * e * float_bytes
    else:
        lc = model.unit_queries(length)
        transient = 2 * b * lc * s * float_bytes
        workspace = b * (lc + 2 * s) * e * float_bytes
    return traffic, transient, workspace


def _head_dim(op: MilOp) -> int:
    """E of an attention op, from its output ``(..., L, Ev)`` (Ev = E in our blocks)."""
    return op.out_shapes[0][-1] if op.out_shapes and op.out_shapes[0] else 1


@dataclass(frozen=True)
class NeuralEngineRules:
    """Which ops leave the Neural Engine, and the unit that runs them then."""

    max_dim: int = 0  # a tensor dimension above this sends the op off the ANE (0: no limit)
    unsupported_ops: frozenset[str] = frozenset()
    fallback_unit: str = "GPU"
    fallback_tflops: float = 1.0
    fallback_bandwidth_gbs: float = 0.0  # 0: the device's bandwidth

    def off_reason(self, op: MilOp, model: AttentionModel) -> str:
        """Why ``op`` runs off the Neural Engine, or "" when it runs on it."""
        if op.op_type in self.unsupported_ops:
            return f"{op.op_type} is not supported on the Neural Engine"
        if not self.max_dim:
            return ""
        dims = [d for shape in op.out_shapes for d in shape]
        if op.attention is not None and model.kind != "fused":
            dims += [op.attention[2], op.attention[3]]
        big = max(dims, default=0)
        if big > self.max_dim:
            return f"{op.op_type} has a dimension of {big} > {self.max_dim}"
        return ""


def fusion_groups(ops: Sequence[MilOp]) -> tuple[list[int], set[str]]:
    """The group (its anchor's index) of every op, and the fused edges (tensor names that
    never reach DRAM): module docstring's rules."""
    producer: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        for name in op.outputs:
            producer[name] = i
        for name in op.inputs:
            readers.setdefault(name, []).append(i)
    group = list(range(len(ops)))
    edges: set[str] = set()
    norms = set()
    for i in range(len(ops)):
        found = _norm_pattern(ops, i, readers)
        if found is not None:
            members, inner = found
            norms.add(i)
            for j in members:
                group[j] = i
            edges |= inner
    for i, op in enumerate(ops):
        if op.op_type not in FUSABLE_OPS or group[i] != i:
            continue
        for name in op.inputs:
            p = producer.get(name)
            if p is None or len(readers.get(name, ())) != 1:
                continue
            anchor = group[p]
            if (
                ops[anchor].op_class in _ANCHOR_CLASSES
                or ops[anchor].op_type in NORM_OPS
                or (anchor in norms)
            ):
                group[i] = anchor
                edges.add(name)
                break
    return group, edges


def _only(ops: Sequence[MilOp], readers: dict[str, list[int]], name: str, op_type: str,
          other: str | None = None) -> int | None:  # fmt: skip
    """The reader of ``name`` of type ``op_type`` (whose other input is ``other``), if any."""
    for j in readers.get(name, ()):
        o = ops[j]
        if o.op_type == op_type and (other is None or set(o.inputs) == {name, other}):
            return j
    return None


def _norm_pattern(
    ops: Sequence[MilOp], i: int, readers: dict[str, list[int]]
) -> tuple[list[int], set[str]] | None:
    """A decomposed normalisation starting at ``reduce_mean`` op ``i`` (GroupNorm lowers to
    ``mean = reduce_mean(x); d = x - mean; v = reduce_mean(d^2); y = d / sqrt(v + eps)``):
    its other ops and inner tensors, or None."""
    op = ops[i]
    if op.op_type != "reduce_mean" or not op.inputs or not op.outputs:
        return None
    x, mean = op.inputs[0], op.outputs[0]
    sub = _only(ops, readers, mean, "sub", x)
    if sub is None:
        return None
    d = ops[sub].outputs[0]
    chain = [sub]
    name = d
    for t in ("square", "reduce_mean", "add", "sqrt"):
        j = _only(ops, readers, name, t)
        if j is None or len(ops[j].inputs) != 1:
            return None
        chain.append(j)
        name = ops[j].outputs[0]
    div = _only(ops, readers, name, "real_div", d)
    if div is None:
        return None
    chain.append(div)
    inner = {mean, d} | {ops[j].outputs[0] for j in chain[1:-1]}
    return chain, inner


def charged_bytes(op: MilOp, edges: set[str]) -> int:
    """The op's bytes less the fused edges it writes or reads."""
    saved = sum(b for n, b in zip(op.inputs, op.input_bytes, strict=False) if n in edges)
    saved += sum(b for n, b in zip(op.outputs, op.output_bytes, strict=False) if n in edges)
    return op.bytes - saved


@dataclass(frozen=True)
class RooflineEstimate:
    latency_ms: float
    by_class_ms: dict[str, float]  # time of each class (its groups' roofline + overhead)
    compute_bound_ops: int  # groups, in fact: an op alone is its own group
    memory_bound_ops: int
    overhead_ms: float
    n_ops: int
    peak_mem_bytes: int  # weights + the largest single-op activation set (+ attention)
    attention: str = "fused"  # the attention model's label
    transient_bytes: int = 0  # the largest attention transient + workspace
    fused_ops: int = 0  # ops fused into a producer
    off_ane: tuple[str, ...] = ()  # why ops ran off the Neural Engine (one line per op)

    @property
    def groups(self) -> int:
        return self.compute_bound_ops + self.memory_bound_ops


def _efficiency(est: Estimator, cls: str) -> float:
    e = est.efficiency.get(cls, DEFAULT_EFFICIENCY[cls])
    if e <= 0:
        raise ValueError(f"estimator efficiency for {cls!r} must be > 0, not {e}")
    return e


def op_seconds(op: MilOp, est: Estimator, float_bytes: int = 2) -> tuple[float, bool]:
    """Roofline time of one op alone (unfused, overhead excluded) and whether it is
    compute-bound."""
    t_compute = op.flops / (est.peak_tflops * 1e12 * _efficiency(est, op.op_class))
    traffic = op.bytes + attention_memory(op, est.attention, float_bytes)[0]
    t_memory = traffic / (est.bandwidth_gbs * 1e9 * est.bandwidth_efficiency)
    return max(t_compute, t_memory), t_compute >= t_memory


@dataclass(frozen=True)
class GroupCosts:
    """Per fusion group: FLOPs per op class, charged bytes, whether it runs off the Neural
    Engine (and why), its anchor's class; plus the program's activation peak. What the
    roofline sums, kept apart so a calibration can re-evaluate it for many constants."""

    flops: dict[str, list[float]]  # class -> per group
    bytes: list[float]
    off: list[str]  # "" on the Neural Engine, else why not
    anchor_class: list[str]
    peak_act_bytes: int
    transient_bytes: int
    n_ops: int
    n_views: int = 0  # views: in no group, charged nothing


def group_costs(summary: MilSummary, est: Estimator, float_bytes: int = 2) -> GroupCosts:
    """Sum every op of ``summary`` into its fusion group under ``est``'s execution model."""
    ops = summary.ops
    group, edges = fusion_groups(ops) if est.fusion else (list(range(len(ops))), set())
    index: dict[int, int] = {}  # anchor op -> group number
    flops: dict[str, list[float]] = {c: [] for c in OP_CLASSES}
    nbytes: list[float] = []
    off: list[str] = []
    anchor_class: list[str] = []
    peak_act, transient_max, views = 0, 0, 0
    for i, op in enumerate(ops):
        if op.op_type in VIEW_OPS:
            peak_act = max(peak_act, op.activation_bytes)
            views += 1
            continue
        g = index.get(group[i])
        if g is None:
            g = index[group[i]] = len(nbytes)
            for c in OP_CLASSES:
                flops[c].append(0.0)
            nbytes.append(0.0)
            off.append("")
            anchor_class.append(ops[group[i]].op_class)
        score_bytes, transient, workspace = attention_memory(op, est.attention, float_bytes)
        flops[op.op_class][g] += op.flops
        nbytes[g] += charged_bytes(op, edges) + score_bytes
        off[g] = off[g] or est.neural_engine.off_reason(op, est.attention)
        peak_act = max(peak_act, op.activation_bytes + transient + workspace)
        transient_max = max(transient_max, transient + workspace)
    return GroupCosts(flops, nbytes, off, anchor_class, peak_act, transient_max, len(ops), views)


def roofline(summary: MilSummary, est: Estimator, float_bytes: int = 2) -> RooflineEstimate:
    """The documented roofline (module docstring) over every compute op of ``summary``;
    ``float_bytes``: the device precision's (scores are activations)."""
    gc = group_costs(summary, est, float_bytes)
    by_class = dict.fromkeys(OP_CLASSES, 0.0)
    overhead = est.per_op_overhead_us * 1e-6
    ne = est.neural_engine
    n_compute = 0
    for g, nbytes in enumerate(gc.bytes):
        peak, bandwidth = est.peak_tflops, est.bandwidth_gbs * est.bandwidth_efficiency
        if gc.off[g]:  # the fallback unit's peak (same efficiencies) and bandwidth
            peak, bandwidth = ne.fallback_tflops, ne.fallback_bandwidth_gbs or bandwidth
        t_c = sum(gc.flops[c][g] / (peak * 1e12 * _efficiency(est, c)) for c in OP_CLASSES)
        t_m = nbytes / (bandwidth * 1e9)
        n_compute += t_c >= t_m
        by_class[gc.anchor_class[g]] += (max(t_c, t_m) + overhead) * 1e3
    n_groups = len(gc.bytes)
    return RooflineEstimate(
        latency_ms=sum(by_class.values()),
        by_class_ms=by_class,
        compute_bound_ops=n_compute,
        memory_bound_ops=n_groups - n_compute,
        overhead_ms=n_groups * overhead * 1e3,
        n_ops=gc.n_ops,
        peak_mem_bytes=summary.weight_bytes + gc.peak_act_bytes,
        attention=est.attention.label,
        transient_bytes=gc.transient_bytes,
        fused_ops=gc.n_ops - n_groups - gc.n_views,
        off_ane=tuple(w for w in gc.off if w),
    )
