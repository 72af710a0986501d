"""Table rows a space needs: one per unique (op, options, shape, batch, precision).

Pure Python. A row is either a temporal op at a slot shape or a backbone block at its shape;
its ``key`` is the canonical text the tables are indexed by.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.space import Arch, Block, OpChoice, SearchSpace, Slot

__all__ = ["RowSpec", "arch_rows", "backbone_row", "rows_for_space", "temporal_row"]

BACKBONE_KINDS = ("conv_in", "time_embed", "resnet", "attn", "downsample", "upsample", "conv_out")


@dataclass(frozen=True)
class RowSpec:
    """One thing to measure: an op or block at one shape, batch and precision.

    ``channels`` is the block's output channels; ``height``/``width`` its input size; ``batch``
    the effective batch (spatial blocks run at ``batch * frames``). ``options`` holds the
    canonical ``k=v`` options: a temporal op's options, or a backbone block's parameters.
    """

    op: str
    options: str
    channels: int
    frames: int
    height: int
    width: int
    batch: int
    precision: str

    @property
    def key(self) -> str:
        return (
            f"{self.op}[{self.options}]@{self.channels}x{self.frames}x{self.height}x{self.width}"
            f"/b{self.batch}/{self.precision}"
        )

    @property
    def is_temporal(self) -> bool:
        return self.op not in BACKBONE_KINDS

    def option_dict(self) -> dict[str, str]:
        if not self.options:
            return {}
        return dict(kv.split("=", 1) for kv in self.options.split(","))

    def choice(self) -> OpChoice:
        """The temporal op choice of a temporal row (option values typed back)."""
        if not self.is_temporal:
            raise ValueError(f"{self.op} is a backbone block, not a temporal op")
        opts: dict[str, object] = {}
        for k, v in self.option_dict().items():
            if k in ("text", "groups"):  # module details, not op options
                continue
            opts[k] = v == "true" if v in ("true", "false") else int(v) if v.isdigit() else v
        return OpChoice.make(self.op, **opts)

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _opts(**kw: object) -> str:
    return ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in kw.items())


def temporal_row(choice: OpChoice, slot: Slot, space: SearchSpace, precision: str) -> RowSpec:
    g = space.geometry
    opts = choice.key[len(choice.op) + 1 : -1] if choice.options else ""
    # the GroupNorm groups, and for cross-attention the text shape, complete the module
    opts = f"{opts},groups={space.backbone.config.norm_num_groups}"
    if choice.op.startswith("x"):
        opts = f"{opts},text={g.text_length}x{g.text_dim}"
    return RowSpec(
        choice.op,
        opts,
        slot.channels,
        g.frames,
        slot.height,
        slot.width,
        g.effective_batch,
        precision,
    )


def backbone_row(block: Block, space: SearchSpace, precision: str) -> RowSpec:
    cfg, g = space.backbone.config, space.geometry
    kind = block.kind
    if kind == "conv_in":
        opts = _opts(cin=block.in_channels, k=cfg.conv_in_kernel)
    elif kind == "time_embed":
        opts = _opts(cin=block.in_channels, flip=cfg.flip_sin_to_cos, shift=cfg.freq_shift)
    elif kind == "resnet":
        opts = _opts(cin=block.in_channels, temb=cfg.time_embed_dim, groups=cfg.norm_num_groups)
    elif kind == "attn":
        opts = _opts(
            heads=block.heads,
            layers=block.layers,
            groups=cfg.norm_num_groups,
            text=f"{g.text_length}x{g.text_dim}",
            linear=cfg.use_linear_projection,
        )
    elif kind == "downsample":
        opts = _opts(pad=cfg.downsample_padding)
    elif kind == "upsample":
        opts = ""
    elif kind == "conv_out":
        opts = _opts(cin=block.in_channels, k=cfg.conv_out_kernel, groups=cfg.norm_num_groups)
    else:
        raise ValueError(f"not a backbone block: {block.kind}")
    return RowSpec(
        kind,
        opts,
        block.out_channels,
        g.frames,
        block.height,
        block.width,
        g.effective_batch,
        precision,
    )


def rows_for_space(space: SearchSpace, precision: str | None = None) -> list[RowSpec]:
    """Every unique row the cost model needs for any arch of ``space``, backbone first."""
    prec = precision or space.geometry.precision
    out: dict[str, RowSpec] = {}
    for b in space.blocks:
        if b.kind != "temporal":
            r = backbone_row(b, space, prec)
            out.setdefault(r.key, r)
    for s in space.slots:
        g = space.group_of(s.name)
        for c in g.choices if g else ():
            if c.op != "none":
                r = temporal_row(c, s, space, prec)
                out.setdefault(r.key, r)
    return list(out.values())


def arch_rows(space: SearchSpace, arch: Arch, precision: str | None = None) -> list[RowSpec]:
    """The rows one arch runs through in one step, in execution order (repeats included)."""
    prec = precision or space.geometry.precision
    rows = []
    for b in space.blocks:
        if b.kind != "temporal":
            rows.append(backbone_row(b, space, prec))
        else:
            c = arch.choice(b.name)
            if c.op != "none":
                rows.append(temporal_row(c, space.slot(b.name), space, prec))
    return rows
