"""CostModel: an Arch's latency and peak memory on a device, from that device's table.

Latency per step = sum of the rows the arch runs through (backbone blocks + temporal ops) +
a fixed overhead (fitted by ``nas validate latency``; 0 unless given); per video = steps x
step. Peak memory = all weights + the largest live activation set (at every block, the skip
connections held for the up path plus the block's own working set) + a fixed runtime
overhead (likewise fitted; 0 unless given).
Lookups are precomputed per slot group and choice, so evaluation is array arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from nas.cost._backbone import backbone_block_cost
from nas.cost._rows import RowSpec, backbone_row, rows_for_space, temporal_row
from nas.cost._table import Table, TableRow
from nas.cost._temporal import temporal_op_cost
from nas.errors import NasError
from nas.space import Arch, Block, SearchSpace, arch_indices

__all__ = ["ArchEstimate", "CostModel", "MissingRowsError"]

MIB = float(2**20)


class MissingRowsError(NasError):
    """The table lacks rows the space needs; lists them and the command that fills them."""

    def __init__(self, missing: Sequence[RowSpec], device: str, space: SearchSpace) -> None:
        self.missing = list(missing)
        shown = ", ".join(r.key for r in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        where = space.source or "SPACE.yaml"
        super().__init__(
            f"the {device} table lacks {len(self.missing)} row(s) this space needs: {shown}{more}; "
            f"fill them with: nas profile --device {device} --space {where}"
        )


@dataclass(frozen=True)
class ArchEstimate:
    """What the cost model says about one arch on one device."""

    latency_ms_step: float
    latency_s_video: float
    peak_mem_mb: float
    weights_mb: float
    per_slot_ms: dict[str, float]
    sources: tuple[str, ...]  # provenance of the table rows behind the model (measured, ...)


def _quantile_col(quantile: str) -> str:
    if quantile not in ("p10", "p50", "p90"):
        raise NasError(f"quantile {quantile!r} is not one of ['p10', 'p50', 'p90']")
    return f"latency_ms_{quantile}"


class CostModel:
    """Latency and peak memory of arches of ``space`` on the device ``table`` describes."""

    def __init__(
        self,
        space: SearchSpace,
        table: Table,
        *,
        quantile: str = "p50",
        overhead_ms: float | None = None,
        overhead_mb: float | None = None,
    ) -> None:
        self.space = space
        self.table = table
        device = table.meta.get("device", {})
        self.device = str(device.get("name", "unknown"))
        self.precision = str(device.get("precision", space.geometry.precision))
        self.memory_budget_mb = float(device.get("memory_budget_mb", float("inf")))
        col = _quantile_col(quantile)
        missing = table.missing(rows_for_space(space, self.precision))
        if missing:
            raise MissingRowsError(missing, self.device, space)
        self.overhead_ms = float(
            overhead_ms if overhead_ms is not None else table.meta.get("overhead_ms", 0.0)
        )
        self.overhead_mb = float(
            overhead_mb if overhead_mb is not None else table.meta.get("overhead_mb", 0.0)
        )
        geo = replace(space.geometry, precision=self.precision)
        bpe = geo.bytes_per_element
        cfg = space.backbone.config

        def lat(r: TableRow) -> float:
            v = getattr(r, col)
            v = r.latency_ms_p50 if v is None else v
            assert v is not None  # `missing` above rejected rows without a latency
            return float(v)

        def work_mb(r: TableRow, analytic_in: int, analytic_peak: int, params: int) -> float:
            """A block's own activation working set: its measured peak minus its weights where
            the table has a peak, else the analytic input plus its largest tensor."""
            weights = (r.weight_bytes if r.weight_bytes is not None else params * bpe) / MIB
            if r.peak_mem_mb is not None and r.peak_mem_mb > weights:
                return float(r.peak_mem_mb - weights)
            return (analytic_in + analytic_peak) / MIB

        sources: set[str] = set()
        n = geo.effective_batch * geo.frames  # spatial blocks run frames folded into the batch

        def in_bytes(blk: Block) -> int:
            if blk.kind == "time_embed":
                return geo.effective_batch * blk.in_channels * bpe
            return n * blk.in_channels * blk.height * blk.width * bpe

        # Walk one step in execution order. The skips the up path needs are pushed after
        # conv_in, after each down pair (its temporal slot ends the pair) and after each
        # downsampler, and each up ResNet pops one (its concat input).
        self._bb_ms = 0.0
        self._bb_weights_mb = 0.0
        bb_points: list[float] = []
        skip_live_at_slot: dict[str, float] = {}
        skips: list[float] = []
        held = 0.0
        for b in space.blocks:
            if b.kind == "temporal":
                skip_live_at_slot[b.name] = held
                if b.stage == "down":
                    skips.append(n * b.out_channels * b.height * b.width * bpe / MIB)
                    held += skips[-1]
                continue
            r = table.rows[backbone_row(b, space, self.precision).key]
            sources.add(r.source)
            c = backbone_block_cost(b, cfg, geo)
            self._bb_ms += lat(r)
            self._bb_weights_mb += (
                r.weight_bytes if r.weight_bytes is not None else c.params * bpe
            ) / MIB
            if b.stage == "up" and b.kind == "resnet":
                held -= skips.pop()  # now part of this block's input
            bb_points.append(held + work_mb(r, in_bytes(b), c.peak_bytes, c.params))
            if b.kind == "conv_in" or b.kind == "downsample":
                skips.append(c.out_bytes / MIB)
                held += skips[-1]
        self._bb_peak_mb = max(bb_points)
        # per group and choice: latency, weights, activation peak at its slots
        self._g_ms: list[np.ndarray] = []
        self._g_w: list[np.ndarray] = []
        self._g_act: list[np.ndarray] = []
        self._slot_ms: list[list[dict[str, float]]] = []
        for g in space.groups:
            ms, w, act, per = [], [], [], []
            for choice in g.choices:
                t_ms = t_w = 0.0
                t_act = 0.0
                per_slot: dict[str, float] = {}
                for sname in g.slots:
                    if choice.op == "none":
                        per_slot[sname] = 0.0
                        continue
                    slot = space.slot(sname)
                    r = table.rows[temporal_row(choice, slot, space, self.precision).key]
                    sources.add(r.source)
                    c = temporal_op_cost(choice, slot, geo)
                    per_slot[sname] = lat(r)
                    t_ms += lat(r)
                    t_w += (r.weight_bytes if r.weight_bytes is not None else c.params * bpe) / MIB
                    t_act = max(
                        t_act,
                        skip_live_at_slot[sname] + work_mb(r, c.out_bytes, c.peak_bytes, c.params),
                    )
                ms.append(t_ms)
                w.append(t_w)
                act.append(t_act)
                per.append(per_slot)
            self._g_ms.append(np.asarray(ms))
            self._g_w.append(np.asarray(w))
            self._g_act.append(np.asarray(act))
            self._slot_ms.append(per)
        self.sources = tuple(sorted(sources))

    # -- vectorised core ---------------------------------------------------------------------

    def evaluate_indices(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Arrays for ``(n, groups)`` choice indices: latency per step (ms) and per video (s),
        peak memory and weights (MB)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] != len(self._g_ms):
            raise ValueError(f"expected (n, {len(self._g_ms)}) indices, got {idx.shape}")
        n = idx.shape[0]
        ms = np.full(n, self._bb_ms + self.overhead_ms)
        weights = np.full(n, self._bb_weights_mb)
        act = np.full(n, self._bb_peak_mb)
        for j in range(idx.shape[1]):
            col = idx[:, j]
            ms += self._g_ms[j][col]
            weights += self._g_w[j][col]
            act = np.maximum(act, self._g_act[j][col])
        return {
            "latency_ms_step": ms,
            "latency_s_video": ms * self.space.geometry.steps / 1e3,
            "peak_mem_mb": weights + act + self.overhead_mb,
            "weights_mb": weights,
        }

    def evaluate(self, arch: Arch) -> ArchEstimate:
        idx = arch_indices(self.space, arch)
        out = self.evaluate_indices(np.asarray([idx]))
        per_slot: dict[str, float] = {s.name: 0.0 for s in self.space.slots}
        for j, i in enumerate(idx):
            per_slot.update(self._slot_ms[j][i])
        return ArchEstimate(
            latency_ms_step=float(out["latency_ms_step"][0]),
            latency_s_video=float(out["latency_s_video"][0]),
            peak_mem_mb=float(out["peak_mem_mb"][0]),
            weights_mb=float(out["weights_mb"][0]),
            per_slot_ms=per_slot,
            sources=self.sources,
        )
