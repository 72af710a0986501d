"""Analytic cost of the spatial backbone's blocks: parameters, MACs and tensor sizes.

Pure Python (no torch). Counts follow diffusers' ``UNet2DConditionModel`` module for module,
so parameter counts are exact; MACs follow ``torch.utils.flop_counter`` (its flops / 2): convs,
linears and the two attention matmuls, with norms and elementwise ops not counted.

Spatial blocks run on the frames folded into the batch, ``N = Geometry.spatial_batch``
(effective batch x frames); the time embedding runs once per video, at ``effective_batch``.
"""

from __future__ import annotations

from nas.cost._types import BlockCost
from nas.space import Block, Geometry, UNetConfig

__all__ = ["BlockCost", "backbone_block_cost"]

_FF_MULT = 4  # diffusers' FeedForward default inside BasicTransformerBlock


# ---------------------------------------------------------------------------------------------
# module parameter counts (diffusers / torch.nn conventions)
# ---------------------------------------------------------------------------------------------


def _conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def _linear_params(cin: int, cout: int, bias: bool = True) -> int:
    return cin * cout + (cout if bias else 0)


def _norm_params(channels: int) -> int:
    """GroupNorm / LayerNorm with an affine weight and bias."""
    return 2 * channels


def _conv_out_size(size: int, k: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    return (size + pad_lo + pad_hi - k) // stride + 1


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------


def _cost(params: int, macs: int, out_elems: int, peak_elems: int, bpe: int) -> BlockCost:
    return BlockCost(
        params=params,
        macs=macs,
        out_bytes=out_elems * bpe,
        peak_bytes=max(peak_elems, out_elems) * bpe,
    )


def _conv_in(block: Block, cfg: UNetConfig, n: int, bpe: int) -> BlockCost:
    k = cfg.conv_in_kernel
    cin, cout = block.in_channels, block.out_channels
    out = n * cout * block.out_height * block.out_width
    return _cost(_conv_params(cin, cout, k), out * cin * k * k, out, out, bpe)


def _time_embed(block: Block, cfg: UNetConfig, batch: int, bpe: int) -> BlockCost:
    # TimestepEmbedding: linear_1 (in -> ted), SiLU, linear_2 (ted -> ted); time_proj has none.
    cin, ted = block.in_channels, block.out_channels
    params = _linear_params(cin, ted) + _linear_params(ted, ted)
    macs = batch * (cin * ted + ted * ted)
    return _cost(params, macs, batch * ted, batch * max(cin, ted), bpe)


def _resnet(block: Block, cfg: UNetConfig, n: int, bpe: int) -> BlockCost:
    # ResnetBlock2D: norm1, conv1 3x3, time_emb_proj, norm2, conv2 3x3, [conv_shortcut 1x1].
    cin, cout = block.in_channels, block.out_channels
    hw = block.height * block.width
    shortcut = cin != cout
    params = (
        _norm_params(cin)
        + _conv_params(cin, cout, 3)
        + _linear_params(cfg.time_embed_dim, cout)
        + _norm_params(cout)
        + _conv_params(cout, cout, 3)
        + (_conv_params(cin, cout, 1) if shortcut else 0)
    )
    macs = n * hw * (cin * cout * 9 + cout * cout * 9 + (cin * cout if shortcut else 0))
    macs += n * cfg.time_embed_dim * cout
    out = n * cout * hw
    return _cost(params, macs, out, n * max(cin, cout) * hw, bpe)


def _attn(block: Block, cfg: UNetConfig, geometry: Geometry, n: int, bpe: int) -> BlockCost:
    # Transformer2DModel: GroupNorm, proj_in, `layers` x BasicTransformerBlock, proj_out.
    c = block.in_channels
    heads = block.heads
    if heads < 1 or c % heads:
        raise ValueError(f"{block.name}: {heads} heads do not divide {c} channels")
    head_dim = c // heads
    dim = heads * head_dim  # inner dim; equals c
    cross = cfg.cross_attention_dim
    ff = _FF_MULT * dim
    s = block.height * block.width  # image tokens
    lt = geometry.text_length  # text tokens
    proj_k = 1  # Linear or 1x1 Conv2d: the same weights and MACs either way

    layer_params = (
        3 * _norm_params(dim)
        # attn1: self-attention, to_q/k/v without bias, to_out with bias
        + 3 * _linear_params(dim, dim, bias=False)
        + _linear_params(dim, dim)
        # attn2: cross-attention to the text
        + _linear_params(dim, dim, bias=False)
        + 2 * _linear_params(cross, dim, bias=False)
        + _linear_params(dim, dim)
        # GEGLU FeedForward: proj to 2 x ff, then ff -> dim
        + _linear_params(dim, 2 * ff)
        + _linear_params(ff, dim)
    )
    params = (
        _norm_params(c)
        + _conv_params(c, dim, proj_k)
        + block.layers * layer_params
        + _conv_params(dim, c, proj_k)
    )

    layer_macs = (
        n * s * 4 * dim * dim  # attn1 q, k, v, out
        + 2 * n * heads * s * s * head_dim  # attn1 scores and weighted sum
        + n * s * 2 * dim * dim  # attn2 q, out
        + n * lt * 2 * cross * dim  # attn2 k, v
        + 2 * n * heads * s * lt * head_dim  # attn2 scores and weighted sum
        + n * s * (dim * 2 * ff + ff * dim)  # feed-forward
    )
    macs = n * s * c * dim + block.layers * layer_macs + n * s * dim * c

    peak = max(
        n * heads * s * s,  # self-attention scores, materialised by a non-fused kernel
        n * heads * s * lt,  # cross-attention scores
        n * s * 2 * ff,  # GEGLU projection
        n * s * max(c, dim),
    )
    return _cost(params, macs, n * c * s, peak, bpe)


def _downsample(block: Block, cfg: UNetConfig, n: int, bpe: int) -> BlockCost:
    # Downsample2D: Conv2d 3x3 stride 2; with padding 0 diffusers pads (0, 1, 0, 1) first.
    c, cout = block.in_channels, block.out_channels
    p = cfg.downsample_padding
    if p == 0:
        lo, hi = 0, 1
        peak = n * c * (block.height + 1) * (block.width + 1)
    else:
        lo, hi = p, p
        peak = 0
    oh = _conv_out_size(block.height, 3, 2, lo, hi)
    ow = _conv_out_size(block.width, 3, 2, lo, hi)
    out = n * cout * oh * ow
    return _cost(_conv_params(c, cout, 3), out * c * 9, out, peak, bpe)


def _upsample(block: Block, cfg: UNetConfig, n: int, bpe: int) -> BlockCost:
    # Upsample2D: nearest x2 (to the skip's size), then Conv2d 3x3 padding 1.
    c, cout = block.in_channels, block.out_channels
    ohw = block.out_height * block.out_width
    out = n * cout * ohw
    return _cost(_conv_params(c, cout, 3), out * c * 9, out, n * c * ohw, bpe)


def _conv_out(block: Block, cfg: UNetConfig, n: int, bpe: int) -> BlockCost:
    # conv_norm_out (GroupNorm), SiLU, conv_out.
    k = cfg.conv_out_kernel
    cin, cout = block.in_channels, block.out_channels
    hw = block.out_height * block.out_width
    out = n * cout * hw
    params = _norm_params(cin) + _conv_params(cin, cout, k)
    return _cost(params, out * cin * k * k, out, n * cin * block.height * block.width, bpe)


def backbone_block_cost(block: Block, cfg: UNetConfig, geometry: Geometry) -> BlockCost:
    """The cost of one non-temporal block of ``plan_blocks(cfg, ...)`` at ``geometry``.

    Raises ``ValueError`` for temporal slots (their cost depends on the chosen op) and for
    unknown block kinds.
    """
    bpe = geometry.bytes_per_element
    if block.kind == "time_embed":
        return _time_embed(block, cfg, geometry.effective_batch, bpe)
    n = geometry.spatial_batch
    if block.kind == "conv_in":
        return _conv_in(block, cfg, n, bpe)
    if block.kind == "resnet":
        return _resnet(block, cfg, n, bpe)
    if block.kind == "attn":
        return _attn(block, cfg, geometry, n, bpe)
    if block.kind == "downsample":
        return _downsample(block, cfg, n, bpe)
    if block.kind == "upsample":
        return _upsample(block, cfg, n, bpe)
    if block.kind == "conv_out":
        return _conv_out(block, cfg, n, bpe)
    if block.kind == "temporal":
        raise ValueError(f"{block.name} is a temporal slot; its cost depends on the chosen op")
    raise ValueError(f"{block.name}: unknown block kind {block.kind!r}")
