"""Table rows a space needs: one per unique (op, options, shape, batch, precision).

Pure Python. A row is either a temporal op at a slot shape or a backbone block at its shape;
its ``key`` is the canonical text the tables are indexed by.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property

from nas.space import OPS, Arch, Block, DecodeChoice, OpChoice, SearchSpace, Slot, UNetConfig

__all__ = [
    "NETWORK_KINDS",
    "PIPELINE_KINDS",
    "RowOption",
    "RowSpec",
    "arch_rows",
    "backbone_digest",
    "backbone_row",
    "call_row",
    "decoder_row",
    "glue_row",
    "network_rows",
    "pipeline_rows",
    "rows_for_space",
    "temporal_row",
    "text_encoder_row",
    "unet_row",
]

BACKBONE_KINDS = ("conv_in", "time_embed", "resnet", "attn", "downsample", "upsample", "conv_out")
# the stages around the UNet: once per video (text encoder), per chunk of frames (decoder)
PIPELINE_KINDS = ("text_encoder", "decoder")
# what a whole network runs that no block row covers (docs/profiling.md#network-rows): ``call``
# an empty network (the runtime's per-call time and per-session memory), ``glue`` the UNet's
# own glue (folding frames into the batch, the time embedding and text repeated per frame,
# the up path's skip concatenations, unfolding the output) with the UNet's inputs and outputs;
# ``unet`` the backbone alone as one network (a reference for whole-network memory)
NETWORK_KINDS = ("call", "glue", "unet")

# An option value of a row: an int, a flag, a word, or a text shape (length, width) "LxD".
RowOption = int | bool | str | tuple[int, int]
# The type of every option that is not a temporal op's own (those are typed by nas.space.OPS):
# backbone block parameters, and the module details a temporal row records.
_OPTION_TYPES: dict[str, type] = {
    "cin": int,  # input channels
    "k": int,  # kernel size
    "flip": bool,  # time embedding: flip_sin_to_cos
    "shift": int,  # time embedding: freq_shift
    "temb": int,  # time-embedding width
    "groups": int,  # GroupNorm groups
    "heads": int,
    "layers": int,  # transformer layers
    "text": tuple,  # the text embeddings' shape, "LxD"
    "linear": bool,  # use_linear_projection
    "pad": int,  # downsample padding
    "model": str,  # pipeline: the bundled name or the space's name for the model
    "family": str,  # pipeline: clip_text | autoencoder_kl | autoencoder_tiny
    "cfg": str,  # pipeline: 8 hex characters of the model's config
    "scale": int,  # decoder: pixels per latent pixel along each side
}
_MODULE_DETAILS = ("groups", "text")  # recorded on temporal rows; not op options


@dataclass(frozen=True)
class RowSpec:
    """One thing to measure: an op or block at one shape, batch and precision.

    ``channels`` is the block's output channels; ``height``/``width`` its input size; ``batch``
    the effective batch (spatial blocks run at :attr:`spatial_batch`). ``options`` is the
    canonical ``k=v,...`` text (as in the key and the CSV): a temporal op's options, or a
    backbone block's parameters; :attr:`params` holds them typed.
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
        return self.op not in BACKBONE_KINDS + PIPELINE_KINDS + NETWORK_KINDS

    @property
    def is_network(self) -> bool:
        """A whole-network row (``call`` or ``glue``): counted once per UNet call."""
        return self.op in NETWORK_KINDS

    @property
    def is_pipeline(self) -> bool:
        """A text encoder (``height`` = tokens, ``channels`` = width) or a decoder (``frames``
        = latent frames per call, ``channels`` = latent channels, ``height``/``width`` the
        latent size)."""
        return self.op in PIPELINE_KINDS

    @property
    def spatial_batch(self) -> int:
        """The batch a spatial block runs at: ``batch * frames`` (frames folded into it)."""
        return self.batch * self.frames

    def option_dict(self) -> dict[str, str]:
        """The options as written: ``{"kernel": "3", ...}``; :attr:`params` has them typed."""
        if not self.options:
            return {}
        return dict(kv.split("=", 1) for kv in self.options.split(","))

    @cached_property
    def params(self) -> dict[str, RowOption]:
        """The options typed: a temporal op's by its allowed values (``nas.space.OPS``), the
        rest by their known kinds. Parsed once; a ``ValueError`` names a malformed option."""
        spec = OPS.get(self.op) if self.is_temporal else None
        out: dict[str, RowOption] = {}
        for name, text in self.option_dict().items():
            if spec is not None and name in spec.option_names:
                allowed = spec.option(name).allowed
                typed = [a for a in allowed if _text(a) == text]
                if not typed:
                    shown = ", ".join(_text(a) for a in allowed)
                    raise ValueError(f"{self.key}: {name}={text} is not one of [{shown}]")
                out[name] = typed[0]
            else:
                out[name] = _typed(self.key, name, text)
        return out

    def choice(self) -> OpChoice:
        """The temporal op choice of a temporal row."""
        if not self.is_temporal:
            raise ValueError(f"{self.op} is a backbone block, not a temporal op")
        opts = {k: v for k, v in self.params.items() if k not in _MODULE_DETAILS}
        return OpChoice.make(self.op, **opts)

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_cells(cls, cells: Mapping[str, str | None]) -> RowSpec:
        """A spec from the text of its CSV cells (``op``, ``options``, ``channels``, ...,
        ``precision``); a missing or malformed cell is a ``ValueError`` naming the column."""

        def text(col: str) -> str:
            v = (cells.get(col) or "").strip()
            if not v and col != "options":
                raise ValueError(f"{col}: is required")
            return v

        def size(col: str) -> int:
            v = text(col)
            if not re.fullmatch(r"\d+", v) or int(v) < 1:
                raise ValueError(f"{col}: {v!r} is not a whole number >= 1")
            return int(v)

        return cls(
            op=text("op"),
            options=text("options"),
            channels=size("channels"),
            frames=size("frames"),
            height=size("height"),
            width=size("width"),
            batch=size("batch"),
            precision=text("precision"),
        )


def _text(value: RowOption) -> str:
    """An option value as a row key writes it: ``true``, ``3``, ``77x768``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def _typed(key: str, name: str, text: str) -> RowOption:
    kind = _OPTION_TYPES.get(name)
    if kind is None:
        raise ValueError(f"{key}: unknown option {name!r}")
    if kind is bool and text in ("true", "false"):
        return text == "true"
    if kind is int and re.fullmatch(r"-?\d+", text):
        return int(text)
    if kind is tuple and re.fullmatch(r"\d+x\d+", text):
        length, width = text.split("x")
        return int(length), int(width)
    if kind is str and re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        return text
    wanted = {bool: "true or false", int: "an integer", tuple: "a shape LxD", str: "a word"}[kind]
    raise ValueError(f"{key}: {name}={text} is not {wanted}")


def _opts(**kw: RowOption) -> str:
    return ",".join(f"{k}={_text(v)}" for k, v in kw.items())


def temporal_row(choice: OpChoice, slot: Slot, space: SearchSpace, precision: str) -> RowSpec:
    g = space.geometry
    # the GroupNorm groups, and for cross-attention the text shape, complete the module
    details: dict[str, RowOption] = {"groups": space.backbone.config.norm_num_groups}
    if choice.op.startswith("x"):
        details["text"] = (g.text_length, g.text_dim)
    return RowSpec(
        choice.op,
        _opts(**dict(choice.options), **details),
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
            text=(g.text_length, g.text_dim),
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


def text_encoder_row(space: SearchSpace, precision: str) -> RowSpec | None:
    """The text encoder's row (once per video; the empty prompt too with guidance), if any."""
    part = space.pipeline.text_encoder if space.pipeline else None
    if part is None:
        return None
    g = space.geometry
    opts = _opts(model=part.model, family=part.family, cfg=part.digest)
    return RowSpec(
        "text_encoder", opts, part.width, 1, g.text_length, 1, g.effective_batch, precision
    )


def decoder_row(choice: DecodeChoice, space: SearchSpace, precision: str) -> RowSpec:
    """One decoder call: ``choice.chunk`` latent frames of every video of the batch."""
    assert space.pipeline is not None
    part = space.pipeline.decoder(choice.decoder)
    g = space.geometry
    opts = _opts(model=part.model, family=part.family, cfg=part.digest, scale=part.scale_factor)
    return RowSpec(
        "decoder",
        opts,
        g.latent_channels,
        choice.chunk,
        g.latent_height,
        g.latent_width,
        g.batch,
        precision,
    )


def backbone_digest(config: UNetConfig) -> str:
    """8 hex characters of a backbone config: the ``cfg`` option of its ``glue`` row."""
    return hashlib.sha256(config.diffusers_json.encode()).hexdigest()[:8]


def call_row(precision: str) -> RowSpec:
    """The empty network: one call of the runtime on a one-element tensor. Its latency is the
    fixed cost of a call (each measured row pays it once; a whole UNet pays it once), its
    peak memory what a session costs before any weight or activation."""
    return RowSpec("call", "", 1, 1, 1, 1, 1, precision)


def glue_row(space: SearchSpace, precision: str) -> RowSpec:
    """The UNet's glue at the space's geometry (``channels`` = the latent channels)."""
    g, cfg = space.geometry, space.backbone.config
    opts = _opts(cfg=backbone_digest(cfg), text=(g.text_length, g.text_dim))
    return RowSpec(
        "glue",
        opts,
        cfg.in_channels,
        g.frames,
        g.latent_height,
        g.latent_width,
        g.effective_batch,
        precision,
    )


def unet_row(space: SearchSpace, precision: str) -> RowSpec:
    """The backbone alone as one network (every slot ``none``), at the space's geometry: its
    measured peak memory, against the sum of its rows, is the runtime's memory for a whole
    network that no block shows alone; its latency a check of the sum. Profiled where memory
    is measured (ONNX Runtime, PyTorch), not estimated; optional like the other network rows."""
    return replace(glue_row(space, precision), op="unet")


def network_rows(space: SearchSpace, precision: str | None = None) -> list[RowSpec]:
    """The whole-network rows of ``space``: its ``glue`` and the device's ``call``."""
    prec = precision or space.geometry.precision
    return [glue_row(space, prec), call_row(prec)]


def pipeline_rows(space: SearchSpace, precision: str | None = None) -> list[RowSpec]:
    """The rows of the stages around the UNet: the text encoder and each decode choice."""
    prec = precision or space.geometry.precision
    text = text_encoder_row(space, prec)
    out = [] if text is None else [text]
    seen = {r.key for r in out}
    for c in space.decode:
        r = decoder_row(c, space, prec)
        if r.key not in seen:
            seen.add(r.key)
            out.append(r)
    return out


def rows_for_space(space: SearchSpace, precision: str | None = None) -> list[RowSpec]:
    """Every unique row the cost model needs for any arch of ``space``: backbone, temporal
    ops, the pipeline's text encoder and decoders, then the network rows (``glue``, ``call``;
    a table without them still loads: :class:`nas.cost.CostModel` notes what it leaves out)."""
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
    for r in pipeline_rows(space, prec) + network_rows(space, prec):
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
