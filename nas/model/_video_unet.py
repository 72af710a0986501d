"""VideoUNet: a diffusers image UNet run per frame, with temporal ops at the chosen slots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import NasError
from nas.space import (
    Arch,
    Geometry,
    OpChoice,
    SearchSpace,
    UNetConfig,
    check_geometry,
    plan_blocks,
)

from ._temporal import make_temporal_op

__all__ = ["VideoUNet", "build_video_unet", "load_backbone_weights"]


def _module_key(slot: str) -> str:
    return slot.replace(".", "_")


class VideoUNet(nn.Module):
    """Spatial backbone (a diffusers ``UNet2DConditionModel``) plus temporal ops at slots.

    ``forward(sample, timestep, encoder_hidden_states)`` takes latents ``(B, C, T, H, W)``,
    timesteps ``(B,)`` (or a scalar) and text embeddings ``(B, L, D)`` and returns a tensor of
    the latents' shape. Frames are folded into the batch for the spatial blocks; each temporal
    op sees ``(B*T, C, H, W)`` and the number of frames.
    """

    def __init__(
        self,
        config: UNetConfig,
        geometry: Geometry,
        choices: Mapping[str, OpChoice],
        *,
        freeze_spatial: bool = True,
    ) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel

        check_geometry(geometry, config)
        self.config = config
        self.geometry = geometry
        self.unet = UNet2DConditionModel.from_config(config.to_diffusers())  # type: ignore[no-untyped-call]
        slots = {
            b.name: b
            for b in plan_blocks(config, geometry.latent_height, geometry.latent_width)
            if b.kind == "temporal"
        }
        unknown = set(choices) - set(slots)
        if unknown:
            raise NasError(f"no such slot(s) {sorted(unknown)}; slots: {', '.join(slots)}")
        self.choices = {s: choices.get(s, OpChoice("none")) for s in slots}
        self.temporal = nn.ModuleDict()
        for name, choice in self.choices.items():
            op = make_temporal_op(
                choice,
                slots[name].out_channels,
                geometry.frames,
                geometry.text_dim,
                config.norm_num_groups,
                config.norm_eps,
            )
            if op is not None:
                self.temporal[_module_key(name)] = op
        self.freeze_spatial(freeze_spatial)

    def freeze_spatial(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) every backbone parameter; temporal ones stay trainable."""
        for p in self.unet.parameters():
            p.requires_grad_(not frozen)

    def spatial_parameters(self) -> list[nn.Parameter]:
        return list(self.unet.parameters())

    def temporal_parameters(self) -> list[nn.Parameter]:
        return list(self.temporal.parameters())

    def _temporal(
        self, slot: str, h: torch.Tensor, frames: int, text: torch.Tensor
    ) -> torch.Tensor:
        key = _module_key(slot)
        if key in self.temporal:
            out: torch.Tensor = self.temporal[key](h, frames, text)
            return out
        return h

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
    ) -> torch.Tensor:
        u = self.unet
        b, _, t, h, w = _check_sample(sample)
        x, temb, ctx = self._inputs(sample, timestep, encoder_hidden_states)
        hs, skips, _ = self._encode(x, temb, ctx, t, encoder_hidden_states)
        levels = len(u.down_blocks)
        for i, blk in enumerate(u.up_blocks):
            lv = levels - 1 - i
            attns = getattr(blk, "attentions", None)
            for j, res in enumerate(blk.resnets):
                hs = res(torch.cat([hs, skips.pop()], dim=1), temb)
                if attns is not None:
                    hs = attns[j](hs, encoder_hidden_states=ctx, return_dict=False)[0]
                hs = self._temporal(f"up.{lv}.{j}", hs, t, encoder_hidden_states)
            if blk.upsamplers is not None:
                for up in blk.upsamplers:
                    hs = up(hs)
        hs = u.conv_out(u.conv_act(u.conv_norm_out(hs)))
        out: torch.Tensor = hs.reshape(b, t, -1, h, w).permute(0, 2, 1, 3, 4)
        return out

    def encoder_features(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
    ) -> list[torch.Tensor]:
        """The encoder's features: the output of each down block (after its downsampler) and
        of the mid block, each ``(B*T, C, h, w)`` with frames folded into the batch. The
        adversarial stage's discriminator reads them (a frozen teacher's encoder)."""
        t = _check_sample(sample)[2]
        x, temb, ctx = self._inputs(sample, timestep, encoder_hidden_states)
        return self._encode(x, temb, ctx, t, encoder_hidden_states)[2]

    def _inputs(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames folded into the batch, the time embedding and the text, per frame."""
        u = self.unet
        b, c, t, h, w = sample.shape
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        # a tensor stays an input when traced (as_tensor would bake it in as a constant)
        if isinstance(timestep, torch.Tensor):
            ts = timestep.to(sample.device)
        else:
            ts = torch.tensor(timestep, device=sample.device)
        if ts.ndim == 0:
            ts = ts.expand(b)
        temb = u.time_embedding(u.time_proj(ts).to(sample.dtype))  # once per video
        temb = temb.repeat_interleave(t, dim=0)
        ctx = encoder_hidden_states.repeat_interleave(t, dim=0)  # per frame, for spatial attn
        return x, temb, ctx

    def _encode(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        ctx: torch.Tensor,
        t: int,
        text: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Down blocks and mid block: the mid output, the skips, each block's output."""
        u = self.unet
        levels = len(u.down_blocks)
        hs = u.conv_in(x)
        skips = [hs]
        blocks: list[torch.Tensor] = []
        for lv, blk in enumerate(u.down_blocks):
            attns = getattr(blk, "attentions", None)
            for j, res in enumerate(blk.resnets):
                hs = res(hs, temb)
                if attns is not None:
                    hs = attns[j](hs, encoder_hidden_states=ctx, return_dict=False)[0]
                hs = self._temporal(f"down.{lv}.{j}", hs, t, text)
                skips.append(hs)
            if blk.downsamplers is not None:
                for down in blk.downsamplers:
                    hs = down(hs)
                skips.append(hs)
            blocks.append(hs)
        if u.mid_block is not None:
            mid = u.mid_block
            hs = mid.resnets[0](hs, temb)
            for j, (attn, res) in enumerate(zip(mid.attentions, mid.resnets[1:], strict=True)):
                hs = attn(hs, encoder_hidden_states=ctx, return_dict=False)[0]
                hs = self._temporal(f"mid.{levels - 1}.{j}", hs, t, text)
                hs = res(hs, temb)
            blocks.append(hs)
        return hs, skips, blocks


def _check_sample(sample: torch.Tensor) -> tuple[int, ...]:
    if sample.ndim != 5:
        raise ValueError(f"sample must be (B, C, T, H, W), got shape {tuple(sample.shape)}")
    return tuple(sample.shape)


def load_backbone_weights(model: VideoUNet, weights: str | Path) -> None:
    """Load local spatial weights: a diffusers UNet folder or a ``.safetensors`` file.

    Never downloads. A shape or key mismatch is a ``NasError`` naming the first offenders.
    """
    from safetensors.torch import load_file

    p = Path(weights)
    if p.is_dir():
        p = p / "diffusion_pytorch_model.safetensors"
    if not p.is_file():
        raise NasError(f"backbone weights not found: {p} (nas never downloads; give a local file)")
    state = load_file(str(p))
    own = model.unet.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if bad:
            parts.append(
                f"{len(bad)} with another shape (e.g. {bad[0]}: file "
                f"{tuple(state[bad[0]].shape)} vs model {tuple(own[bad[0]].shape)})"
            )
        raise NasError(f"{p} does not fit the backbone config: " + "; ".join(parts))
    model.unet.load_state_dict(state)


def build_video_unet(
    space: SearchSpace,
    arch: Arch | None = None,
    *,
    width_mult: float = 1.0,
    geometry: Geometry | None = None,
    load_weights: bool = True,
    **geometry_overrides: Any,
) -> VideoUNet:
    """The VideoUNet for ``arch`` (all ``none`` if omitted) on ``space``'s backbone.

    ``width_mult`` and ``geometry`` (or keyword overrides such as ``frames=4``) build the
    proxy-scale model: the same topology, narrower channels, smaller video. Pretrained weights
    are loaded only at full width (``load_weights`` and the space names some).
    """
    geo = geometry or space.geometry
    if geometry_overrides:
        geo = replace(geo, **geometry_overrides)
    cfg = space.backbone.config
    choices = arch.as_dict() if arch is not None else {}
    if width_mult != 1.0 or geo.text_dim != cfg.cross_attention_dim:
        heads = [
            c.get("heads")
            for c in choices.values()
            if c.op.endswith(("1d", "3d")) and "attn" in c.op
        ]
        cfg = cfg.scaled(
            width_mult, cross_attention_dim=geo.text_dim, extra_divisor=max(heads, default=1)
        )
    model = VideoUNet(cfg, geo, choices, freeze_spatial=space.backbone.freeze_spatial)
    if load_weights and space.backbone.weights and cfg == space.backbone.config:
        load_backbone_weights(model, space.backbone.weights)
    return model
