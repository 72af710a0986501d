"""``nas.cost._backbone`` against real diffusers modules: parameters, MACs and output sizes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nas import backbone_config
from nas.cost import BlockCost, backbone_block_cost
from nas.space import Block, Geometry, UNetConfig, parse_unet_config, plan_blocks

# Three levels, linear projections, two transformer layers, an uneven layers_per_block, a
# custom time embedding width, odd kernels and downsample padding 0 (diffusers pads by hand).
SMALL: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel",
    "attention_head_dim": [2, 3, 4],
    "block_out_channels": [16, 24, 32],
    "cross_attention_dim": 12,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "in_channels": 4,
    "out_channels": 3,
    "layers_per_block": [1, 2, 1],
    "transformer_layers_per_block": 2,
    "use_linear_projection": True,
    "norm_num_groups": 8,
    "time_embedding_dim": 40,
    "conv_in_kernel": 5,
    "conv_out_kernel": 1,
    "downsample_padding": 0,
}

HEIGHT, WIDTH = 8, 12  # not square, so a swapped height and width shows


def _geometry(cfg: UNetConfig, precision: str = "fp32") -> Geometry:
    return Geometry(
        frames=3, latent_height=HEIGHT, latent_width=WIDTH, latent_channels=cfg.in_channels,
        text_length=5, text_dim=cfg.cross_attention_dim, batch=1, cfg=True, steps=1,
        precision=precision,
    )  # fmt: skip


def _config(name: str) -> UNetConfig:
    raw = SMALL if name == "small" else backbone_config(name)
    return parse_unet_config(raw)


def _build(cfg: UNetConfig, meta: bool = False) -> Any:  # a diffusers UNet2DConditionModel
    if meta:
        with torch.device("meta"):
            return UNet2DConditionModel.from_config(cfg.to_diffusers())
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(cfg.to_diffusers()).eval()


def _blocks(cfg: UNetConfig) -> list[Block]:
    return [b for b in plan_blocks(cfg, HEIGHT, WIDTH) if b.kind != "temporal"]


def _modules(unet: Any, cfg: UNetConfig, block: Block) -> list[nn.Module]:
    """The real submodule(s) a plan block stands for."""
    if block.kind == "conv_in":
        return [unet.conv_in]
    if block.kind == "time_embed":
        return [unet.time_embedding]
    if block.kind == "conv_out":
        return [unet.conv_norm_out, unet.conv_out]
    part = block.name.split(".")[-1]
    parent: Any
    if block.stage == "mid":
        parent = unet.mid_block
    elif block.stage == "down":
        parent = unet.down_blocks[block.level]
    else:
        parent = unet.up_blocks[cfg.levels - 1 - block.level]
    if part == "downsample":
        return [parent.downsamplers[0]]
    if part == "upsample":
        return [parent.upsamplers[0]]
    for prefix, attr in (("resnet", "resnets"), ("attn", "attentions")):
        if part.startswith(prefix):
            return [getattr(parent, attr)[int(part[len(prefix) :])]]
    raise AssertionError(f"no module for {block.name}")


def _params(modules: list[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _run(unet: Any, cfg: UNetConfig, block: Block, geometry: Geometry) -> tuple[int, torch.Tensor]:
    """Run the block's real module(s) on random inputs; return (counted MACs, output)."""
    n = geometry.effective_batch * geometry.frames
    x = torch.randn(n, block.in_channels, block.height, block.width)
    temb = torch.randn(n, cfg.time_embed_dim)
    text = torch.randn(n, geometry.text_length, geometry.text_dim)
    (mod,) = _modules(unet, cfg, block)[-1:]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        if block.kind == "time_embed":
            out = mod(torch.randn(geometry.effective_batch, block.in_channels))
        elif block.kind == "resnet":
            out = mod(x, temb)
        elif block.kind == "attn":
            out = mod(x, encoder_hidden_states=text, return_dict=False)[0]
        elif block.kind == "upsample":
            out = mod(x, output_size=(block.out_height, block.out_width))
        elif block.kind == "conv_out":
            out = mod(unet.conv_act(unet.conv_norm_out(x)))
        else:
            out = mod(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2, out


@pytest.fixture(scope="module", params=["tiny", "small"])
def model(request: pytest.FixtureRequest) -> tuple[UNetConfig, Any]:
    cfg = _config(request.param)
    return cfg, _build(cfg)


def test_block_params_match_diffusers(model: tuple[UNetConfig, Any]) -> None:
    cfg, unet = model
    geometry = _geometry(cfg)
    for block in _blocks(cfg):
        cost = backbone_block_cost(block, cfg, geometry)
        assert cost.params == _params(_modules(unet, cfg, block)), block.name


def test_block_macs_and_bytes_match_flop_counter(
    model: tuple[UNetConfig, Any],
) -> None:
    cfg, unet = model
    geometry = _geometry(cfg)
    kinds = set()
    for block in _blocks(cfg):
        cost = backbone_block_cost(block, cfg, geometry)
        macs, out = _run(unet, cfg, block, geometry)
        kinds.add(block.kind)
        assert cost.macs == macs, block.name
        assert cost.out_bytes == out.numel() * out.element_size(), block.name
        assert cost.peak_bytes >= cost.out_bytes, block.name
    assert kinds == {
        "conv_in", "time_embed", "resnet", "attn", "downsample", "upsample", "conv_out"
    }  # fmt: skip


def test_total_params_match_diffusers(model: tuple[UNetConfig, Any]) -> None:
    cfg, unet = model
    total = sum(backbone_block_cost(b, cfg, _geometry(cfg)).params for b in _blocks(cfg))
    assert total == sum(p.numel() for p in unet.parameters())


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [("sd15", 859_520_964), ("pruned", 336_555_332)])
def test_reference_totals(name: str, expected: int) -> None:
    cfg = _config(name)
    geometry = _geometry(cfg, "fp16")
    total = sum(backbone_block_cost(b, cfg, geometry).params for b in _blocks(cfg))
    assert total == expected
    assert total == sum(p.numel() for p in _build(cfg, meta=True).parameters())


def test_attention_peak_is_the_score_matrix() -> None:
    cfg = _config("sd15")
    geometry = _geometry(cfg, "fp16")
    n = geometry.effective_batch * geometry.frames
    (attn,) = [b for b in plan_blocks(cfg, 64, 64) if b.name == "down.0.attn0"]
    cost = backbone_block_cost(attn, cfg, geometry)
    s = 64 * 64
    assert cost.peak_bytes == n * attn.heads * s * s * 2  # fp16
    assert cost.out_bytes == n * attn.in_channels * s * 2


def test_precision_and_batch_scaling() -> None:
    cfg = _config("tiny")
    g32 = _geometry(cfg)
    g16 = _geometry(cfg, "fp16")
    for block in _blocks(cfg):
        a, b = backbone_block_cost(block, cfg, g32), backbone_block_cost(block, cfg, g16)
        assert (a.params, a.macs) == (b.params, b.macs)
        assert (a.out_bytes, a.peak_bytes) == (2 * b.out_bytes, 2 * b.peak_bytes)
    te = next(b for b in _blocks(cfg) if b.kind == "time_embed")
    cost: BlockCost = backbone_block_cost(te, cfg, g32)
    assert cost.out_bytes == g32.effective_batch * cfg.time_embed_dim * 4  # once per video


def test_temporal_slot_raises() -> None:
    cfg = _config("tiny")
    slot = next(b for b in plan_blocks(cfg, HEIGHT, WIDTH) if b.kind == "temporal")
    with pytest.raises(ValueError, match="temporal"):
        backbone_block_cost(slot, cfg, _geometry(cfg))
