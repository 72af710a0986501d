"""Per-block cost cells: what :meth:`CostModel.breakdown` returns and the dashboard draws.

A cell is the latency and weights of the blocks of one kind at one level of one step. The
parts (:class:`CostParts`: the fixed backbone cells, and per slot group and choice its
temporal op's cells) are what any arch's breakdown is summed from; the dashboard composes a
clicked trial's breakdown from them in the browser exactly as :meth:`CostParts.compose` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["BlockCell", "CostBreakdown", "CostParts", "merge_cells", "where_of"]


def where_of(stage: str, level: int) -> str:
    """``in`` | ``down.<level>`` | ``mid.<level>`` | ``up.<level>`` | ``out``."""
    return stage if stage in ("in", "out") else f"{stage}.{level}"


@dataclass(frozen=True)
class BlockCell:
    """Latency and weights of the blocks of one kind at one level of one step."""

    where: str  # "in" | "down.<level>" | "mid.<level>" | "up.<level>" | "out"
    kind: str  # a backbone block kind ("resnet", "attn", ...) or a temporal op ("conv1d", ...)
    temporal: bool
    ms: float
    weights_mb: float


def merge_cells(cells: Iterable[BlockCell], wheres: Sequence[str]) -> tuple[BlockCell, ...]:
    """Cells merged by (where, kind), in execution order (backbone kinds before temporal ops
    at a level, then first appearance)."""
    order = {w: i for i, w in enumerate(wheres)}
    acc: dict[tuple[str, str], list[float]] = {}
    temporal: dict[tuple[str, str], bool] = {}
    first: dict[tuple[str, str], int] = {}
    for n, c in enumerate(cells):
        k = (c.where, c.kind)
        a = acc.setdefault(k, [0.0, 0.0])
        a[0] += c.ms
        a[1] += c.weights_mb
        temporal[k] = c.temporal
        first.setdefault(k, n)
    keys = sorted(acc, key=lambda k: (order.get(k[0], len(order)), temporal[k], first[k]))
    return tuple(BlockCell(w, kind, temporal[(w, kind)], *acc[(w, kind)]) for w, kind in keys)


@dataclass(frozen=True)
class CostParts:
    """The pieces every arch's per-step cells are summed from."""

    wheres: tuple[str, ...]  # every level, in execution order
    backbone: tuple[BlockCell, ...]  # one per backbone block
    choices: tuple[tuple[tuple[BlockCell, ...], ...], ...]  # [group][choice] -> cells per slot
    overhead_ms: float
    overhead_mb: float

    def compose(self, indices: Sequence[int]) -> tuple[BlockCell, ...]:
        """Cells of the arch taking choice ``indices[g]`` in group ``g``, merged by
        (where, kind), in execution order."""
        if len(indices) != len(self.choices):
            raise ValueError(f"expected {len(self.choices)} choice indices, got {len(indices)}")
        cells = list(self.backbone)
        for g, i in enumerate(indices):
            cells.extend(self.choices[g][i])
        return merge_cells(cells, self.wheres)


@dataclass(frozen=True)
class CostBreakdown:
    """One arch's cost on one device, by level and block kind, and its totals.

    ``sum(c.ms for c in cells) + overhead_ms == latency_ms_step``; the cells' weights sum to
    ``weights_mb`` of the UNet, and with the pipeline's resident weights ``weights_mb``;
    ``peak_mem_mb == weights_mb + activation_mb + overhead_mb``; per video,
    ``latency_s_video == (text_ms + steps * latency_ms_step + decode_ms) / 1000`` (the text
    encoder and decoder are 0 without a ``pipeline:``).
    """

    arch_id: str
    cells: tuple[BlockCell, ...]
    overhead_ms: float
    latency_ms_step: float
    steps: int
    latency_s_video: float
    weights_mb: float
    activation_mb: float  # the largest live activation set (skips held + a block's own)
    overhead_mb: float
    peak_mem_mb: float
    text_ms: float = 0.0  # the text encoder, once per video
    decode_ms: float = 0.0  # the decoder, over all of the video's frames
    decoder: str | None = None  # the decode choice, when the space has a pipeline

    @property
    def per_video_ms(self) -> dict[str, float]:
        """Latency per video by pipeline stage: text encoder, UNet steps, decoder."""
        unet = self.steps * self.latency_ms_step
        return {"text_encoder": self.text_ms, "unet": unet, "decoder": self.decode_ms}

    @property
    def backbone_ms(self) -> float:
        return sum(c.ms for c in self.cells if not c.temporal)

    @property
    def temporal_ms(self) -> float:
        return sum(c.ms for c in self.cells if c.temporal)

    @property
    def per_stage_ms(self) -> dict[str, float]:
        """Latency per step by UNet stage (in, down, mid, up, out), in execution order."""
        out: dict[str, float] = {}
        for c in self.cells:
            stage = c.where.split(".", 1)[0]
            out[stage] = out.get(stage, 0.0) + c.ms
        return out
