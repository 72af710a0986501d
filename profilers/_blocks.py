"""A runnable PyTorch module and example inputs for every table row.

Backbone rows are built from diffusers' own block classes with the row's parameters, temporal
rows from ``nas.model``'s op zoo, so a measured row runs exactly the code the VideoUNet runs.
Pipeline rows (text encoder, decoder) are the models ``nas.pipeline`` builds from the space's
``pipeline:`` parts (transformers' CLIPTextModel, diffusers' AutoencoderKL / AutoencoderTiny
decoders). Network rows: ``call`` is an empty network (one add on one element), ``glue`` what
``nas.model.VideoUNet.forward`` runs between its blocks (:class:`Glue`). Every wrapper takes
tensors only (ONNX export and Core ML tracing need that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nas.cost import RowSpec, backbone_digest, unet_row
from nas.errors import NasError
from nas.space import Arch, PipelinePart, SearchSpace, UNetConfig, plan_blocks

__all__ = [
    "Glue",
    "RowModule",
    "backbone_configs",
    "build_row_module",
    "glue_pairs",
    "pipeline_parts",
    "whole_network",
]


def whole_network(space: SearchSpace, arch: Arch | None = None) -> RowModule:
    """The whole VideoUNet of ``arch`` (every slot ``none`` without one) at the space's
    geometry, random weights (the temporal ops' zero projections given weights, as in their
    rows: a trained op is not the identity), on random latents, timesteps and text."""
    from nas.model import build_video_unet

    torch.manual_seed(0)
    model = build_video_unet(space, arch, load_weights=False).eval()
    for name, p in model.temporal.named_parameters():
        if name.endswith("weight") and torch.count_nonzero(p) == 0:
            nn.init.normal_(p, std=0.02)
    g = space.geometry
    b = g.effective_batch
    gen = torch.Generator().manual_seed(0)
    inputs = (
        torch.randn(b, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen),
        torch.full((b,), 500, dtype=torch.int64),
        torch.randn(b, g.text_length, g.text_dim, generator=gen),
    )
    return RowModule(model, inputs, ("sample", "timestep", "text"))


def backbone_configs(space: SearchSpace) -> dict[str, UNetConfig]:
    """The space's backbone config by the ``cfg`` its ``glue`` row names."""
    cfg = space.backbone.config
    return {backbone_digest(cfg): cfg}


def glue_pairs(cfg: UNetConfig, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """``(hidden channels, skip channels, h, w)`` of each skip concatenation of the up path, in
    execution order: the skips are pushed after ``conv_in``, after each down pair (its temporal
    slot ends it) and after each downsampler, and each up ResNet pops one (as
    ``VideoUNet.forward`` does)."""
    skips: list[int] = []
    pairs: list[tuple[int, int, int, int]] = []
    for b in plan_blocks(cfg, height, width):
        if b.kind in ("conv_in", "downsample") or (b.kind == "temporal" and b.stage == "down"):
            skips.append(b.out_channels)
        elif b.kind == "resnet" and b.stage == "up":
            skip = skips.pop()
            pairs.append((b.in_channels - skip, skip, b.height, b.width))
    return pairs


class Glue(nn.Module):
    """What a VideoUNet step runs outside its blocks, with the UNet's inputs and output.

    Folds the frames of ``sample`` (B, C, T, H, W) into the batch, repeats the per-video time
    embedding and text per frame, concatenates each (hidden, skip) pair of the up path, and
    unfolds ``final`` (the last block's output, frames in the batch) to (B, C, T, H, W). Every
    result is an output, so a runtime cannot drop it; ONNX Runtime returns outputs without a
    copy. The time embedding's own MLP is the ``time_embed`` row's, not glue.
    """

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(
        self,
        sample: torch.Tensor,
        temb: torch.Tensor,
        text: torch.Tensor,
        final: torch.Tensor,
        *pairs: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        b, c, t, h, w = sample.shape
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        temb_t = temb.repeat_interleave(t, dim=0)
        ctx = text.repeat_interleave(t, dim=0)
        cats = [torch.cat([pairs[i], pairs[i + 1]], dim=1) for i in range(0, len(pairs), 2)]
        out = final.reshape(b, t, -1, h, w).permute(0, 2, 1, 3, 4)
        return (out, x, temb_t, ctx, *cats)


class _Call(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


def _network_module(
    row: RowSpec, backbones: Mapping[str, UNetConfig], gen: torch.Generator
) -> RowModule:
    """The ``call`` or ``glue`` row's module and inputs."""
    if row.op == "call":
        return RowModule(_Call(), (torch.randn(1, 1, 1, 1, generator=gen),), ("x",))
    o = row.option_dict()
    cfg = backbones.get(o.get("cfg", ""))
    if cfg is None:
        raise NasError(
            f"{row.key}: no backbone with config {o.get('cfg')} in the space being profiled "
            "(profile the space whose glue row this is)"
        )
    text_len, text_dim = _text(o)
    b, t, h, w = row.batch, row.frames, row.height, row.width
    n = b * t
    inputs = [
        torch.randn(b, row.channels, t, h, w, generator=gen),
        torch.randn(b, cfg.time_embed_dim, generator=gen),
        torch.randn(b, text_len, text_dim, generator=gen),
        torch.randn(n, cfg.out_channels, h, w, generator=gen),
    ]
    names = ["sample", "temb", "text", "final"]
    for i, (hc, sc, ph, pw) in enumerate(glue_pairs(cfg, h, w)):
        inputs.append(torch.randn(n, hc, ph, pw, generator=gen))
        inputs.append(torch.randn(n, sc, ph, pw, generator=gen))
        names += [f"hidden{i}", f"skip{i}"]
    return RowModule(Glue(t), tuple(inputs), tuple(names))


def pipeline_parts(space: SearchSpace) -> dict[str, PipelinePart]:
    """The space's pipeline models by the ``model:cfg`` their table rows name."""
    p = space.pipeline
    if p is None:
        return {}
    parts = [*([p.text_encoder] if p.text_encoder else []), *p.decoders]
    return {f"{x.model}:{x.digest}": x for x in parts}


def _pipeline_module(row: RowSpec, parts: Mapping[str, PipelinePart], seed: int) -> RowModule:
    """A text encoder on random token ids, or a decoder on random latents, of the row's shape
    (random weights: a row times the architecture, not the weights)."""
    from nas.pipeline import build_decoder, build_text_encoder

    o = row.option_dict()
    part = parts.get(f"{o.get('model')}:{o.get('cfg')}")
    if part is None:
        raise NasError(
            f"{row.key}: no pipeline model {o.get('model')!r} with config {o.get('cfg')} in the "
            "space being profiled (profile the space whose pipeline: names it)"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if row.op == "text_encoder":
        text = build_text_encoder(part, load_weights=False).eval()
        vocab = int(part.config["vocab_size"])
        ids = torch.randint(0, vocab, (row.batch, row.height), generator=gen)
        return RowModule(text, (ids,), ("input_ids",))
    decoder = build_decoder(part, load_weights=False).eval()
    latents = torch.randn(
        row.batch * row.frames, row.channels, row.height, row.width, generator=gen
    )
    return RowModule(decoder, (latents,), ("latents",))


@dataclass
class RowModule:
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]


class _Temporal(nn.Module):
    def __init__(self, op: nn.Module, frames: int) -> None:
        super().__init__()
        self.op, self.frames = op, frames

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = self.op(x, self.frames, context)
        return out


class _Resnet(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x, temb)
        return out


class _Attn(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x, encoder_hidden_states=context, return_dict=False)[0]
        return out


class _TimeEmbed(nn.Module):
    def __init__(self, proj: nn.Module, embed: nn.Module) -> None:
        super().__init__()
        self.proj, self.embed = proj, embed

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Timesteps computes in fp32; cast to the embedding's dtype (fp16 on a GPU)
        emb = self.proj(t).to(next(self.embed.parameters()).dtype)
        out: torch.Tensor = self.embed(emb)
        return out


def _text(opts: dict[str, str]) -> tuple[int, int]:
    length, dim = opts["text"].split("x")
    return int(length), int(dim)


def build_row_module(
    row: RowSpec,
    *,
    seed: int = 0,
    groups: int = 32,
    parts: Mapping[str, PipelinePart] | None = None,
    backbones: Mapping[str, UNetConfig] | None = None,
    space: SearchSpace | None = None,
) -> RowModule:
    """The module a row measures, with random weights and inputs of the row's shape (fp32).

    ``groups`` is the GroupNorm group count for temporal rows that do not record one;
    ``parts`` (:func:`pipeline_parts`) the pipeline models a pipeline row may name;
    ``backbones`` (:func:`backbone_configs`) the backbone a ``glue`` row names; ``space`` the
    space being profiled, whose backbone a ``unet`` row runs.
    """
    if row.is_pipeline:
        return _pipeline_module(row, parts or {}, seed)
    if row.op == "unet":
        if space is None or row != unet_row(space, row.precision):
            raise NasError(f"{row.key}: profile it with the space it names (nas profile --space)")
        return whole_network(space)
    if row.is_network:
        return _network_module(row, backbones or {}, torch.Generator().manual_seed(seed))
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from diffusers.models.upsampling import Upsample2D

    from nas.model import make_temporal_op

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    o = row.option_dict()
    n = row.spatial_batch
    c, h, w = row.channels, row.height, row.width

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    if row.is_temporal:
        choice = row.choice()
        text_len, text_dim = _text(o) if "text" in o else (1, 1)
        op = make_temporal_op(choice, c, row.frames, text_dim, int(o.get("groups", groups)))
        if op is None:
            raise ValueError("a 'none' op has no row")
        # a trained op is not the identity: give the zero-initialised projections weights
        for name, p in op.named_parameters():
            if torch.count_nonzero(p) == 0 and name.endswith("weight"):
                nn.init.normal_(p, std=0.02)
        x = rand(n, c, h, w)
        if choice.op.startswith("x"):
            return RowModule(
                _Temporal(op, row.frames),
                (x, rand(row.batch, text_len, text_dim)),
                ("x", "context"),
            )
        return RowModule(_Temporal(op, row.frames), (x,), ("x",))
    kind = row.op
    g = int(o.get("groups", 32))
    if kind == "conv_in":
        k, cin = int(o["k"]), int(o["cin"])
        return RowModule(nn.Conv2d(cin, c, k, padding=k // 2), (rand(n, cin, h, w),), ("x",))
    if kind == "time_embed":
        cin = int(o["cin"])
        proj = Timesteps(cin, o["flip"] == "true", int(o["shift"]))
        t = torch.randint(0, 1000, (row.batch,), generator=gen).float()
        return RowModule(_TimeEmbed(proj, TimestepEmbedding(cin, c)), (t,), ("t",))
    if kind == "resnet":
        cin, temb = int(o["cin"]), int(o["temb"])
        block = ResnetBlock2D(in_channels=cin, out_channels=c, temb_channels=temb, groups=g)
        return RowModule(_Resnet(block), (rand(n, cin, h, w), rand(n, temb)), ("x", "temb"))
    if kind == "attn":
        heads, layers = int(o["heads"]), int(o["layers"])
        text_len, text_dim = _text(o)
        block = Transformer2DModel(
            num_attention_heads=heads,
            attention_head_dim=c // heads,
            in_channels=c,
            num_layers=layers,
            cross_attention_dim=text_dim,
            norm_num_groups=g,
            use_linear_projection=o["linear"] == "true",
        )
        return RowModule(
            _Attn(block), (rand(n, c, h, w), rand(n, text_len, text_dim)), ("x", "context")
        )
    if kind == "downsample":
        down = Downsample2D(c, use_conv=True, out_channels=c, padding=int(o["pad"]), name="op")
        return RowModule(down, (rand(n, c, h, w),), ("x",))
    if kind == "upsample":
        return RowModule(Upsample2D(c, use_conv=True, out_channels=c), (rand(n, c, h, w),), ("x",))
    if kind == "conv_out":
        cin, k = int(o["cin"]), int(o["k"])
        seq = nn.Sequential(nn.GroupNorm(g, cin), nn.SiLU(), nn.Conv2d(cin, c, k, padding=k // 2))
        return RowModule(seq, (rand(n, cin, h, w),), ("x",))
    raise ValueError(f"no module for row op {row.op!r}")
