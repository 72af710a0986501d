"""The spatial backbone: a parsed diffusers ``UNet2DConditionModel`` config and its block plan.

Pure Python. The plan lists every block of one denoising step in execution order, with the
shapes it sees, and the temporal slots between them. ``nas.model.VideoUNet`` runs the same
order with real modules and ``nas.cost`` counts it, so the two can be checked against each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nas.errors import SpaceError

__all__ = ["Block", "UNetConfig", "parse_unet_config", "plan_blocks"]

_DOWN_TYPES = ("CrossAttnDownBlock2D", "DownBlock2D")
_UP_TYPES = ("CrossAttnUpBlock2D", "UpBlock2D")
_MID_TYPES = ("UNetMidBlock2DCrossAttn", None)

# diffusers options we do not model: they must keep diffusers' default value.
_MUST_BE_DEFAULT: dict[str, Any] = {
    "center_input_sample": False,
    "only_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "num_attention_heads": None,
    "dual_cross_attention": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "addition_time_embed_dim": None,
    "num_class_embeds": None,
    "resnet_time_scale_shift": "default",
    "resnet_skip_time_act": False,
    "time_embedding_type": "positional",
    "time_embedding_act_fn": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "projection_class_embeddings_input_dim": None,
    "attention_type": "default",
    "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None,
    "cross_attention_norm": None,
    "reverse_transformer_layers_per_block": None,
    "act_fn": "silu",
}
# Accepted and passed to diffusers, but with no effect on shapes or counts.
_IGNORED = {
    "sample_size",
    "dropout",
    "mid_block_scale_factor",
    "upcast_attention",
    "resnet_out_scale_factor",
    "addition_embed_type_num_heads",
}
_MODELLED = {
    "in_channels",
    "out_channels",
    "flip_sin_to_cos",
    "freq_shift",
    "down_block_types",
    "mid_block_type",
    "up_block_types",
    "block_out_channels",
    "layers_per_block",
    "downsample_padding",
    "norm_num_groups",
    "norm_eps",
    "cross_attention_dim",
    "transformer_layers_per_block",
    "attention_head_dim",
    "use_linear_projection",
    "time_embedding_dim",
    "conv_in_kernel",
    "conv_out_kernel",
}


@dataclass(frozen=True)
class UNetConfig:
    """The subset of a diffusers ``UNet2DConditionModel`` config that shapes the network.

    Levels are numbered from the highest resolution (0) to the lowest (``levels - 1``).
    """

    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]  # channels per level
    layers_per_block: tuple[int, ...]  # ResNet(+attention) pairs per down block, per level
    cross_attn: tuple[bool, ...]  # per level: does the down block have attention?
    cross_attn_up: tuple[bool, ...]  # per level: does the up block have attention?
    mid_block: bool
    heads: tuple[int, ...]  # spatial attention heads per level (diffusers' attention_head_dim)
    transformer_layers: tuple[int, ...]  # BasicTransformerBlocks per attention, per level
    cross_attention_dim: int
    norm_num_groups: int
    norm_eps: float
    use_linear_projection: bool
    flip_sin_to_cos: bool
    freq_shift: int
    downsample_padding: int
    time_embed_dim: int
    conv_in_kernel: int
    conv_out_kernel: int
    diffusers_json: str = field(repr=False)  # the full config, canonical JSON, for building

    @property
    def levels(self) -> int:
        return len(self.block_out_channels)

    @property
    def downsample_factor(self) -> int:
        """Latent H and W must be divisible by this (one halving per level but the last)."""
        return 1 << (self.levels - 1)

    def to_diffusers(self) -> dict[str, Any]:
        """The config to pass to ``UNet2DConditionModel.from_config``."""
        cfg: dict[str, Any] = json.loads(self.diffusers_json)
        return cfg

    def scaled(
        self, width_mult: float, cross_attention_dim: int | None = None, extra_divisor: int = 1
    ) -> UNetConfig:
        """The same topology with every level's channels multiplied by ``width_mult``.

        Channels are rounded to a multiple of ``norm_num_groups``, the level's heads and
        ``extra_divisor`` (e.g. temporal heads), at least one multiple, so every norm and
        attention stays valid.
        """
        cfg = self.to_diffusers()
        quantum = _lcm(self.norm_num_groups, extra_divisor)
        new = []
        for c, h in zip(self.block_out_channels, self.heads, strict=True):
            q = _lcm(quantum, h)
            new.append(max(q, round(c * width_mult / q) * q))
        cfg["block_out_channels"] = new
        if cross_attention_dim is not None:
            cfg["cross_attention_dim"] = cross_attention_dim
        if "time_embedding_dim" in cfg and cfg["time_embedding_dim"] is not None:
            cfg["time_embedding_dim"] = new[0] * 4
        return parse_unet_config(cfg, "backbone.config")


def _yaml_repr(v: Any) -> str:
    """A value as YAML writes it: null, true, 'text'."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def _lcm(a: int, b: int) -> int:
    from math import gcd

    return a * b // gcd(a, b)


def _per_level(value: Any, levels: int, where: str, what: str) -> tuple[int, ...]:
    if isinstance(value, bool) or value is None:
        raise SpaceError(where, f"{value!r} is not {what}")
    if isinstance(value, int):
        if value < 1:
            raise SpaceError(where, f"{value} must be >= 1")
        return (value,) * levels
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise SpaceError(
                where, f"has {len(value)} entries but block_out_channels has {levels} levels"
            )
        out = []
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceError(f"{where}[{i}]", f"{v!r} is not {what}")
            out.append(v)
        return tuple(out)
    raise SpaceError(where, f"{value!r} is not {what} or a list of them per level")


def parse_unet_config(raw: Any, where: str = "backbone.config") -> UNetConfig:
    """Validate a diffusers ``UNet2DConditionModel`` config dict; errors name ``where.key``."""
    _check_config_keys(raw, where)

    def int_field(key: str, default: int, minimum: int = 1) -> int:
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise SpaceError(f"{where}.{key}", f"{v!r} is not an integer >= {minimum}")
        return v

    boc_raw = raw.get("block_out_channels", [320, 640, 1280, 1280])
    if not isinstance(boc_raw, (list, tuple)) or not boc_raw:
        raise SpaceError(f"{where}.block_out_channels", f"{boc_raw!r} is not a non-empty list")
    boc = _per_level(list(boc_raw), len(boc_raw), f"{where}.block_out_channels", "a channel count")
    levels = len(boc)
    down, up, mid = _block_types(raw, levels, where)
    cross_dim = raw.get("cross_attention_dim", 1280)
    if isinstance(cross_dim, bool) or not isinstance(cross_dim, int) or cross_dim < 1:
        raise SpaceError(f"{where}.cross_attention_dim", f"{cross_dim!r} is not one integer >= 1")
    groups = int_field("norm_num_groups", 32)
    heads = _per_level(
        raw.get("attention_head_dim", 8), levels, f"{where}.attention_head_dim", "a head count"
    )
    tlayers = _per_level(
        raw.get("transformer_layers_per_block", 1),
        levels,
        f"{where}.transformer_layers_per_block",
        "a layer count",
    )
    lpb = _per_level(
        raw.get("layers_per_block", 2), levels, f"{where}.layers_per_block", "a layer count"
    )
    eps = _norm_eps(raw.get("norm_eps", 1e-5), f"{where}.norm_eps")
    ted = raw.get("time_embedding_dim", None)
    time_embed_dim = boc[0] * 4 if ted is None else int_field("time_embedding_dim", 0)
    for key in ("conv_in_kernel", "conv_out_kernel"):
        k = int_field(key, 3)
        if k % 2 == 0:
            raise SpaceError(f"{where}.{key}", f"{k} must be odd")
    cross = tuple(t == "CrossAttnDownBlock2D" for t in down)
    cross_up = tuple(t == "CrossAttnUpBlock2D" for t in reversed(up))
    _check_divisible(boc, groups, heads, cross, cross_up, mid is not None, where)
    for flag in ("use_linear_projection", "flip_sin_to_cos"):
        if not isinstance(raw.get(flag, flag == "flip_sin_to_cos"), bool):
            raise SpaceError(f"{where}.{flag}", f"{raw.get(flag, None)!r} is not true or false")
    full = {k: v for k, v in raw.items() if not k.startswith("_")}
    return UNetConfig(
        in_channels=int_field("in_channels", 4),
        out_channels=int_field("out_channels", 4),
        block_out_channels=boc,
        layers_per_block=lpb,
        cross_attn=cross,
        cross_attn_up=cross_up,
        mid_block=mid is not None,
        heads=heads,
        transformer_layers=tlayers,
        cross_attention_dim=cross_dim,
        norm_num_groups=groups,
        norm_eps=eps,
        use_linear_projection=bool(raw.get("use_linear_projection", False)),
        flip_sin_to_cos=bool(raw.get("flip_sin_to_cos", True)),
        freq_shift=int_field("freq_shift", 0, minimum=0),
        downsample_padding=int_field("downsample_padding", 1, minimum=0),
        time_embed_dim=time_embed_dim,
        conv_in_kernel=int(raw.get("conv_in_kernel", 3)),
        conv_out_kernel=int(raw.get("conv_out_kernel", 3)),
        diffusers_json=json.dumps(full, sort_keys=True),
    )


def _check_config_keys(raw: Any, where: str) -> None:
    """A mapping for UNet2DConditionModel whose every key is modelled, ignored or at default."""
    if not isinstance(raw, dict):
        raise SpaceError(
            where, f"expected a mapping (a diffusers config), got {type(raw).__name__}"
        )
    cls = raw.get("_class_name", "UNet2DConditionModel")
    if cls != "UNet2DConditionModel":
        raise SpaceError(
            f"{where}._class_name", f"{cls!r} is not supported; only UNet2DConditionModel"
        )
    for key, value in raw.items():
        if key.startswith("_") or key in _MODELLED or key in _IGNORED:
            continue
        if key in _MUST_BE_DEFAULT:
            if value != _MUST_BE_DEFAULT[key]:
                raise SpaceError(
                    f"{where}.{key}",
                    f"{_yaml_repr(value)} is not supported; nas models only "
                    f"{_yaml_repr(_MUST_BE_DEFAULT[key])}",
                )
            continue
        raise SpaceError(f"{where}.{key}", "unknown UNet2DConditionModel config key")


def _block_types(raw: dict[str, Any], levels: int, where: str) -> tuple[Any, Any, Any]:
    """The down and up block types (one per level) and the mid block type (or None)."""
    down = raw.get("down_block_types", ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"])
    up = raw.get("up_block_types", ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
    for key, types, allowed in (
        ("down_block_types", down, _DOWN_TYPES),
        ("up_block_types", up, _UP_TYPES),
    ):
        if not isinstance(types, (list, tuple)) or len(types) != levels:
            raise SpaceError(
                f"{where}.{key}", f"must be a list of {levels} block types (one per level)"
            )
        for i, t in enumerate(types):
            if t not in allowed:
                raise SpaceError(f"{where}.{key}[{i}]", f"{t!r} is not one of {list(allowed)}")
    mid = raw.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid not in _MID_TYPES:
        raise SpaceError(f"{where}.mid_block_type", f"{mid!r} is not one of {list(_MID_TYPES)}")
    return down, up, mid


def _norm_eps(eps: Any, where: str) -> float:
    if isinstance(eps, str):  # PyYAML reads 1e-5 (no dot) as a string
        try:
            eps = float(eps)
        except ValueError:
            raise SpaceError(where, f"{eps!r} is not a number") from None
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise SpaceError(where, f"{eps!r} is not a positive number")
    return float(eps)


def _check_divisible(
    boc: tuple[int, ...],
    groups: int,
    heads: tuple[int, ...],
    cross: tuple[bool, ...],
    cross_up: tuple[bool, ...],
    mid: bool,
    where: str,
) -> None:
    """Every level's channels split into its norm groups and, where it attends, its heads."""
    for i, c in enumerate(boc):
        if c % groups:
            raise SpaceError(
                f"{where}.block_out_channels[{i}]",
                f"{c} is not divisible by norm_num_groups {groups}",
            )
    levels = len(boc)
    for i in range(levels):
        if (cross[i] or cross_up[i] or (i == levels - 1 and mid)) and boc[i] % heads[i]:
            raise SpaceError(
                f"{where}.attention_head_dim",
                f"{heads[i]} heads do not divide level {i}'s {boc[i]} channels",
            )


@dataclass(frozen=True)
class Block:
    """One block of the per-step plan, or a temporal slot (``kind == "temporal"``).

    ``height``/``width`` are the spatial size of the block's input; ``out_*`` of its output.
    ``batch`` is the batch the block runs at: frames x effective batch for spatial blocks,
    the effective batch for the time embedding.
    """

    name: str
    kind: str  # conv_in | time_embed | resnet | attn | downsample | upsample | conv_out | temporal
    stage: str  # "in" | "down" | "mid" | "up" | "out"
    level: int
    index: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    out_height: int
    out_width: int
    heads: int = 0
    layers: int = 0


def plan_blocks(cfg: UNetConfig, height: int, width: int) -> tuple[Block, ...]:
    """Every block of one denoising step in execution order, temporal slots included.

    The order and channel bookkeeping follow diffusers' ``UNet2DConditionModel``; a slot
    follows each ResNet(+attention) pair of the down, mid and up blocks (AnimateDiff's places).
    """
    boc = cfg.block_out_channels
    plan = _Plan(cfg, height, width)
    plan.add("conv_in", "conv_in", "in", 0, 0, cfg.in_channels, boc[0], height, width)
    plan.add("time_embed", "time_embed", "in", 0, 0, boc[0], cfg.time_embed_dim, 1, 1)
    ch = _plan_down(plan)
    if cfg.mid_block:
        _plan_mid(plan, ch)
    _plan_up(plan, ch)
    plan.add("conv_out", "conv_out", "out", 0, 0, boc[0], cfg.out_channels, height, width)
    return tuple(plan.blocks)


@dataclass
class _Plan:
    """The blocks planned so far, for :func:`plan_blocks` and its per-stage helpers."""

    cfg: UNetConfig
    height: int
    width: int
    blocks: list[Block] = field(default_factory=list)

    def hw(self, level: int) -> tuple[int, int]:
        return self.height // 2**level, self.width // 2**level

    def add(
        self,
        name: str,
        kind: str,
        stage: str,
        level: int,
        index: int,
        cin: int,
        cout: int,
        h: int,
        w: int,
        oh: int | None = None,
        ow: int | None = None,
        heads: int = 0,
        layers: int = 0,
    ) -> None:
        oh = h if oh is None else oh
        ow = w if ow is None else ow
        self.blocks.append(
            Block(name, kind, stage, level, index, cin, cout, h, w, oh, ow, heads, layers)
        )

    def attn(self, name: str, stage: str, level: int, index: int, ch: int) -> None:
        """A spatial transformer at ``level``: its heads and layers from the config."""
        h, w = self.hw(level)
        heads, layers = self.cfg.heads[level], self.cfg.transformer_layers[level]
        self.add(name, "attn", stage, level, index, ch, ch, h, w, heads=heads, layers=layers)


def _plan_down(plan: _Plan) -> int:
    """The down blocks; returns the channels they end with."""
    cfg = plan.cfg
    boc = cfg.block_out_channels
    ch = boc[0]
    for lv in range(cfg.levels):
        h, w = plan.hw(lv)
        for j in range(cfg.layers_per_block[lv]):
            plan.add(f"down.{lv}.resnet{j}", "resnet", "down", lv, j, ch, boc[lv], h, w)
            ch = boc[lv]
            if cfg.cross_attn[lv]:
                plan.attn(f"down.{lv}.attn{j}", "down", lv, j, ch)
            plan.add(f"down.{lv}.{j}", "temporal", "down", lv, j, ch, ch, h, w)
        if lv < cfg.levels - 1:
            plan.add(
                f"down.{lv}.downsample", "downsample", "down", lv, 0, ch, ch, h, w, h // 2, w // 2
            )
    return ch


def _plan_mid(plan: _Plan, ch: int) -> None:
    lv = plan.cfg.levels - 1
    h, w = plan.hw(lv)
    plan.add("mid.resnet0", "resnet", "mid", lv, 0, ch, ch, h, w)
    plan.attn("mid.attn0", "mid", lv, 0, ch)
    plan.add(f"mid.{lv}.0", "temporal", "mid", lv, 0, ch, ch, h, w)
    plan.add("mid.resnet1", "resnet", "mid", lv, 1, ch, ch, h, w)


def _plan_up(plan: _Plan, prev: int) -> None:
    """The up blocks, each ResNet taking its skip connection from the down path."""
    cfg = plan.cfg
    boc = cfg.block_out_channels
    for lv in reversed(range(cfg.levels)):
        h, w = plan.hw(lv)
        n = cfg.layers_per_block[lv] + 1
        for j in range(n):
            skip = boc[lv] if j < n - 1 else boc[max(lv - 1, 0)]
            plan.add(f"up.{lv}.resnet{j}", "resnet", "up", lv, j, prev + skip, boc[lv], h, w)
            prev = boc[lv]
            if cfg.cross_attn_up[lv]:
                plan.attn(f"up.{lv}.attn{j}", "up", lv, j, prev)
            plan.add(f"up.{lv}.{j}", "temporal", "up", lv, j, prev, prev, h, w)
        if lv > 0:
            plan.add(f"up.{lv}.upsample", "upsample", "up", lv, 0, prev, prev, h, w, h * 2, w * 2)
