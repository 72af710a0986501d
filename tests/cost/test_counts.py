"""Analytic counts against real instantiations and a real counting pass."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nas.cost import arch_cost, space_summary, temporal_op_cost
from nas.model import build_video_unet, make_temporal_op
from nas.space import (
    OPS,
    OpChoice,
    Slot,
    load_space,
    parse_space_text,
    reference_arch,
    sample_arch,
)

TINY_CFG = """
name: counts
backbone: {ref: tiny}
geometry: {frames: 3, latent_height: 8, latent_width: 8, text_length: 5, cfg: true,
           precision: fp32}
op_sets:
  every:
    - none
    - {op: conv1d, kernel: [3, 5], depthwise: [true, false]}
    - {op: conv3d, kernel_t: [3, 5], kernel_s: [1, 3]}
    - {op: attn1d, heads: [1, 2], ffn_ratio: [0, 2], pos: [none, learned]}
    - {op: attn3d, heads: 2, ffn_ratio: [0, 4]}
    - {op: xattn1d, heads: 2, ffn_ratio: 2, pos: learned}
    - {op: xattn3d, heads: 2, ffn_ratio: 1}
slots: {down: [{ops: every}], mid: [{ops: every}], up: [{ops: every}]}
"""


def _macs(model, space) -> int:  # type: ignore[no-untyped-def]
    g = space.geometry
    x = torch.randn(g.batch, g.latent_channels, g.frames, g.latent_height, g.latent_width)
    ctx = torch.randn(g.batch, g.text_length, g.text_dim)
    t = torch.full((g.batch,), 3)
    if g.cfg:  # the UNet runs conditional and unconditional halves in one batch
        x, ctx, t = torch.cat([x, x]), torch.cat([ctx, ctx]), torch.cat([t, t])
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(x, t, ctx)
    return int(fc.get_total_flops()) // 2


def test_every_op_variant_matches_its_module() -> None:
    geo = replace(load_space("search_spaces/tiny.yaml").geometry, cfg=True, frames=3, text_dim=12)
    slot = Slot("x", "down", 0, 0, 16, 4, 6)
    checked = 0
    for op, spec in OPS.items():
        for combo in itertools.product(*[o.allowed for o in spec.options]):
            choice = OpChoice(op, tuple(sorted(zip(spec.option_names, combo, strict=True))))
            if "heads" in spec.option_names and 16 % choice.get("heads"):
                continue
            cost = temporal_op_cost(choice, slot, replace(geo, text_length=5))
            module = make_temporal_op(choice, 16, 3, 12, 8)
            if module is None:
                assert cost.params == cost.macs == 0
                continue
            x = torch.randn(geo.effective_batch * 3, 16, 4, 6)
            ctx = torch.randn(geo.effective_batch, 5, 12)
            with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
                y = module(x, 3, ctx)
            assert cost.params == sum(p.numel() for p in module.parameters()), choice.key
            assert cost.macs == fc.get_total_flops() // 2, choice.key
            assert cost.out_bytes == y.numel() * 4
            checked += 1
    assert checked == 6 + 4 + 4 * 5 * 4 * 3  # every conv variant, every attention variant


def test_whole_network_params_and_macs_on_tiny() -> None:
    space = parse_space_text(TINY_CFG)
    rng = np.random.default_rng(0)
    archs = [reference_arch(space, op)[0] for op in OPS] + [
        sample_arch(space, rng) for _ in range(6)
    ]
    for arch in archs:
        model = build_video_unet(space, arch)
        cost = arch_cost(space, arch)
        assert cost.params == sum(p.numel() for p in model.parameters()), arch.describe()
        assert cost.temporal_params == sum(p.numel() for p in model.temporal.parameters())
        for slot, c in cost.per_slot.items():
            key = slot.replace(".", "_")
            real = sum(p.numel() for p in model.temporal[key].parameters()) if c.params else 0
            assert c.params == real, slot
        assert cost.macs_per_step == _macs(model, space), arch.describe()


def test_summary_ranges_bracket_every_arch() -> None:
    space = parse_space_text(TINY_CFG)
    s = space_summary(space)
    rng = np.random.default_rng(1)
    for _ in range(50):
        c = arch_cost(space, sample_arch(space, rng))
        assert s["ranges"]["params"][0] <= c.params <= s["ranges"]["params"][1]
        assert s["ranges"]["macs_per_step"][0] <= c.macs_per_step <= s["ranges"]["macs_per_step"][1]
    assert s["size"] == space.size
    assert s["reference_arches"]["all_none"]["params"] == s["backbone"]["params"]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["sd15", "pruned"])
def test_full_size_counts_on_the_meta_device(backbone: str) -> None:
    """Build the real SD-1.5 and pruned video UNets without memory and compare every count."""
    text = f"""
name: full
backbone: {{ref: {backbone}}}
geometry: {{frames: 16, latent_height: 64, latent_width: 64}}
op_sets:
  all: [none, conv1d, conv3d, {{op: attn1d, ffn_ratio: [0, 4], pos: [sinusoidal, learned]}},
        attn3d, xattn1d, xattn3d]
slots: {{down: [{{ops: all}}], mid: [{{ops: all}}], up: [{{ops: all}}]}}
"""
    space = parse_space_text(text)
    rng = np.random.default_rng(0)
    archs = [reference_arch(space, "none")[0], reference_arch(space, "attn1d")[0]]
    archs += [sample_arch(space, rng) for _ in range(3)]
    for arch in archs:
        with torch.device("meta"):
            model = build_video_unet(space, arch)
        cost = arch_cost(space, arch)
        assert cost.backbone_params == sum(p.numel() for p in model.unet.parameters())
        assert cost.temporal_params == sum(p.numel() for p in model.temporal.parameters())
        for slot, c in cost.per_slot.items():
            key = slot.replace(".", "_")
            real = sum(p.numel() for p in model.temporal[key].parameters()) if c.params else 0
            assert c.params == real, slot
    expected = {"sd15": 859_520_964, "pruned": 336_555_332}[backbone]
    assert arch_cost(space, archs[0]).params == expected
