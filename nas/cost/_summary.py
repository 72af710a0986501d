"""Per-arch analytic costs and the space summary behind ``nas space``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nas.cost._backbone import backbone_block_cost
from nas.cost._temporal import temporal_op_cost
from nas.cost._types import BlockCost
from nas.space import OPS, Arch, PipelinePart, SearchSpace, reference_arch

__all__ = ["ArchCost", "arch_cost", "backbone_costs", "space_summary"]


@lru_cache(maxsize=32)
def backbone_costs(space: SearchSpace) -> dict[str, BlockCost]:
    """Every backbone block's cost for one UNet call, by block name, in execution order."""
    cfg, geo = space.backbone.config, space.geometry
    return {b.name: backbone_block_cost(b, cfg, geo) for b in space.blocks if b.kind != "temporal"}


@dataclass(frozen=True)
class ArchCost:
    """Analytic cost of an arch: backbone plus temporal ops, per UNet call (one step)."""

    backbone_params: int
    temporal_params: int
    backbone_macs: int
    temporal_macs: int
    steps: int
    per_slot: dict[str, BlockCost]

    @property
    def params(self) -> int:
        return self.backbone_params + self.temporal_params

    @property
    def macs_per_step(self) -> int:
        return self.backbone_macs + self.temporal_macs

    @property
    def macs_per_video(self) -> int:
        return self.steps * self.macs_per_step


def arch_cost(space: SearchSpace, arch: Arch) -> ArchCost:
    bb = backbone_costs(space)
    per_slot = {
        s.name: temporal_op_cost(arch.choice(s.name), s, space.geometry) for s in space.slots
    }
    return ArchCost(
        backbone_params=sum(c.params for c in bb.values()),
        temporal_params=sum(c.params for c in per_slot.values()),
        backbone_macs=sum(c.macs for c in bb.values()),
        temporal_macs=sum(c.macs for c in per_slot.values()),
        steps=space.geometry.steps,
        per_slot=per_slot,
    )


def _pipeline_summary(space: SearchSpace) -> dict[str, Any] | None:
    """The text encoder and decoders around the UNet, as ``nas space`` shows them."""
    p = space.pipeline
    if p is None:
        return None
    geo = space.geometry

    def part(x: PipelinePart) -> dict[str, Any]:
        return {
            "name": x.name,
            "model": x.model,
            "family": x.family,
            "source": x.source,
            "weights": x.weights,
        }

    decoders = []
    for d in p.decoders:
        f = d.scale_factor
        decoders.append({**part(d), "pixels": [geo.latent_height * f, geo.latent_width * f]})
    return {
        "text_encoder": None if p.text_encoder is None else part(p.text_encoder),
        "decoders": decoders,
        "decode": [
            {
                "key": c.key,
                "decoder": c.decoder,
                "chunk": c.chunk,
                "calls": -(-geo.frames // c.chunk),
            }
            for c in p.decode
        ],
    }


def space_summary(space: SearchSpace) -> dict[str, Any]:
    """Everything ``nas space`` prints, as JSON-able data (exact integers)."""
    geo = space.geometry
    bb = backbone_costs(space)
    bb_params = sum(c.params for c in bb.values())
    bb_macs = sum(c.macs for c in bb.values())
    slots_out = []
    lo_p = hi_p = lo_m = hi_m = 0
    for s in space.slots:
        g = space.group_of(s.name)
        choices = g.choices if g else ()
        costs = [temporal_op_cost(c, s, geo) for c in choices] or [BlockCost(0, 0, 0, 0)]
        entry: dict[str, Any] = {
            "slot": s.name,
            "stage": s.stage,
            "level": s.level,
            "index": s.index,
            "shape": {"C": s.channels, "T": geo.frames, "H": s.height, "W": s.width},
            "group": g.name if g else None,
            "tied_with": [x for x in g.slots if x != s.name] if g else [],
            "choices": [c.key for c in choices] or ["none (fixed)"],
            "params": [min(c.params for c in costs), max(c.params for c in costs)],
            "macs": [min(c.macs for c in costs), max(c.macs for c in costs)],
            "peak_bytes": [min(c.peak_bytes for c in costs), max(c.peak_bytes for c in costs)],
        }
        slots_out.append(entry)
    for g in space.groups:  # tied slots count once for the choice, but every slot costs
        per_choice = [[temporal_op_cost(c, space.slot(s), geo) for s in g.slots] for c in g.choices]
        p = [sum(x.params for x in per) for per in per_choice]
        m = [sum(x.macs for x in per) for per in per_choice]
        lo_p, hi_p, lo_m, hi_m = lo_p + min(p), hi_p + max(p), lo_m + min(m), hi_m + max(m)
    refs = {}
    for op in ("none", "attn1d"):
        arch, hits = reference_arch(space, op)
        ac = arch_cost(space, arch)
        refs[f"all_{op}"] = {
            "arch_id": arch.arch_id,
            "slots_with_op": hits,
            "params": ac.params,
            "temporal_params": ac.temporal_params,
            "macs_per_step": ac.macs_per_step,
        }
    levels = []
    cfg = space.backbone.config
    for lv in range(cfg.levels):
        levels.append(
            {
                "level": lv,
                "channels": cfg.block_out_channels[lv],
                "latent": [geo.latent_height // 2**lv, geo.latent_width // 2**lv],
                "spatial_attention": {"down": cfg.cross_attn[lv], "up": cfg.cross_attn_up[lv]},
                "slots": [s.name for s in space.slots if s.level == lv],
            }
        )
    return {
        "space": {
            "name": space.name,
            "source": space.source,
            "hash": space.hash,
            "description": space.description,
        },
        "backbone": {
            "source": space.backbone.source,
            "weights": space.backbone.weights,
            "freeze_spatial": space.backbone.freeze_spatial,
            "block_out_channels": list(cfg.block_out_channels),
            "params": bb_params,
            "macs_per_step": bb_macs,
        },
        "geometry": {**geo.to_dict(), "effective_batch": geo.effective_batch},
        "levels": levels,
        "slots": slots_out,
        "ops": list(OPS),
        "size": space.size,
        "searchable_groups": len(space.groups),
        "ranges": {
            "temporal_params": [lo_p, hi_p],
            "params": [bb_params + lo_p, bb_params + hi_p],
            "macs_per_step": [bb_macs + lo_m, bb_macs + hi_m],
            "macs_per_video": [geo.steps * (bb_macs + lo_m), geo.steps * (bb_macs + hi_m)],
        },
        "reference_arches": refs,
        "pipeline": _pipeline_summary(space),
        "notes": "params exact; MACs count conv/linear/attention matmuls for one UNet call "
        "at the effective batch (elementwise ops and norms excluded); peak_bytes is "
        "the largest single tensor an op creates at the geometry's precision.",
    }
