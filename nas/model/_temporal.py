"""The temporal op zoo: layers that mix information across frames.

Every op maps frame-folded features ``(B*T, C, H, W)`` to the same shape and starts as the
identity: its last projection is zero-initialised (AnimateDiff practice), so a pretrained image
backbone keeps its behaviour until the op learns. Ops are written for Core ML conversion:
tensors of rank <= 5, GroupNorm applied on a 4-D fold ``(B, C, T, H*W)``,
``F.scaled_dot_product_attention`` and no ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.space import OpChoice

__all__ = ["Attention", "TemporalAttention", "TemporalConv1d", "TemporalConv3d", "make_temporal_op"]


def _to_bcth(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H*W)."""
    n, c, h, w = x.shape
    return x.reshape(n // frames, frames, c, h * w).permute(0, 2, 1, 3)


def _from_bcth(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, C, T, H*W) -> (B*T, C, H, W)."""
    b, c, t, _ = x.shape
    return x.permute(0, 2, 1, 3).reshape(b * t, c, h, w)


def _zero(layer: nn.Module) -> None:
    """Zero a layer's weight and bias: the op then starts as the identity."""
    for p in layer.parameters():
        nn.init.zeros_(p)


def sinusoidal_table(frames: int, dim: int) -> torch.Tensor:
    """(frames, dim) sine/cosine positions over frame indices (Transformer style)."""
    pos = torch.arange(frames, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    table = torch.zeros(frames, dim)
    table[:, 0 : 2 * half : 2] = torch.sin(pos * freq)
    table[:, 1 : 2 * half : 2] = torch.cos(pos * freq)
    return table


class TemporalConv1d(nn.Module):
    """GroupNorm, SiLU, then a ``kernel`` x 1 convolution over (T, H*W): a 1-D conv along frames."""

    def __init__(
        self, channels: int, kernel: int, depthwise: bool, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.conv = nn.Conv2d(
            channels,
            channels,
            (kernel, 1),
            padding=(kernel // 2, 0),
            groups=channels if depthwise else 1,
        )
        _zero(self.conv)

    def forward(
        self, x: torch.Tensor, frames: int, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        _, _, h, w = x.shape
        x4 = _to_bcth(x, frames)
        out = x4 + self.conv(F.silu(self.norm(x4)))
        return _from_bcth(out, h, w)


class TemporalConv3d(nn.Module):
    """GroupNorm, SiLU, then a ``kernel_t`` x ``kernel_s`` x ``kernel_s`` 3-D convolution."""

    def __init__(
        self, channels: int, kernel_t: int, kernel_s: int, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.conv = nn.Conv3d(
            channels,
            channels,
            (kernel_t, kernel_s, kernel_s),
            padding=(kernel_t // 2, kernel_s // 2, kernel_s // 2),
        )
        _zero(self.conv)

    def forward(
        self, x: torch.Tensor, frames: int, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        x4 = _to_bcth(x, frames)
        y = F.silu(self.norm(x4)).reshape(n // frames, c, frames, h, w)
        out = x4 + self.conv(y).reshape(n // frames, c, frames, h * w)
        return _from_bcth(out, h, w)


class Attention(nn.Module):
    """Multi-head attention on (batch, tokens, dim) with ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if kv is None else kv
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(kv)), self._split(self.to_v(kv))
        o = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = o.shape
        out: torch.Tensor = self.to_out(o.transpose(1, 2).reshape(b, n, -1))
        return out


class TemporalAttention(nn.Module):
    """Transformer over frames (``tokens="frames"``, per pixel) or the whole video (``"video"``).

    GroupNorm (4-D fold), proj_in, positional encoding over frames, self-attention, optional
    cross-attention to the text, optional FFN (pre-LayerNorm residuals), then a zero-initialised
    proj_out added to the input.
    """

    def __init__(
        self,
        channels: int,
        frames: int,
        *,
        tokens: str,
        cross: bool,
        heads: int,
        ffn_ratio: int,
        pos: str,
        text_dim: int,
        groups: int,
        eps: float,
    ) -> None:
        super().__init__()
        if tokens not in ("frames", "video"):
            raise ValueError(f"tokens must be 'frames' or 'video', got {tokens!r}")
        self.tokens = tokens
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.proj_in = nn.Linear(channels, channels)
        self.pos_mode = pos
        if pos == "learned":
            self.pos = nn.Parameter(sinusoidal_table(frames, channels))
        elif pos == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(frames, channels), persistent=False)
        self.norm1 = nn.LayerNorm(channels)
        self.attn1 = Attention(channels, heads)
        self.norm2: nn.LayerNorm | None = nn.LayerNorm(channels) if cross else None
        self.attn2: Attention | None = (
            Attention(channels, heads, kv_dim=text_dim) if cross else None
        )
        self.norm3: nn.LayerNorm | None = None
        self.ff: nn.Sequential | None = None
        if ffn_ratio > 0:
            self.norm3 = nn.LayerNorm(channels)
            self.ff = nn.Sequential(
                nn.Linear(channels, channels * ffn_ratio),
                nn.GELU(),
                nn.Linear(channels * ffn_ratio, channels),
            )
        self.proj_out = nn.Linear(channels, channels)
        _zero(self.proj_out)

    def _positions(self, frames: int) -> torch.Tensor | None:
        if self.pos_mode == "none":
            return None
        table = getattr(self, "pos" if self.pos_mode == "learned" else "pos_table")
        assert isinstance(table, torch.Tensor)
        if table.shape[0] < frames:
            raise ValueError(f"built for {table.shape[0]} frames, got {frames}")
        return table[:frames]  # always a slice: an export traces it with frames dynamic

    def forward(
        self, x: torch.Tensor, frames: int, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        b, hw = n // frames, h * w
        x4 = _to_bcth(x, frames)  # (B, C, T, HW)
        y = self.proj_in(self.norm(x4).permute(0, 3, 2, 1))  # (B, HW, T, C)
        pos = self._positions(frames)
        if pos is not None:
            y = y + pos.to(y.dtype)  # (T, C) broadcasts over (B, HW, T, C)
        if self.tokens == "frames":
            seq = y.reshape(b * hw, frames, c)
        else:  # all T*H*W tokens of a video, frame-major
            seq = y.permute(0, 2, 1, 3).reshape(b, frames * hw, c)
        seq = seq + self.attn1(self.norm1(seq))
        if self.attn2 is not None and self.norm2 is not None:
            if context is None:
                raise ValueError("cross-attention needs the text embeddings (context)")
            # Keys do not depend on the pixel: attend every query of a video to its text at once.
            q = seq.reshape(b, -1, c)
            seq = seq + self.attn2(self.norm2(q), context).reshape(seq.shape)
        if self.ff is not None and self.norm3 is not None:
            seq = seq + self.ff(self.norm3(seq))
        out = self.proj_out(seq)
        if self.tokens == "frames":
            out4 = out.reshape(b, hw, frames, c).permute(0, 3, 2, 1)
        else:
            out4 = out.reshape(b, frames, hw, c).permute(0, 3, 1, 2)
        return _from_bcth(x4 + out4, h, w)


def make_temporal_op(
    choice: OpChoice, channels: int, frames: int, text_dim: int, groups: int, eps: float = 1e-5
) -> nn.Module | None:
    """The module for ``choice`` at a slot of ``channels``; ``None`` for ``none``."""
    op = choice.op
    if op == "none":
        return None
    if op == "conv1d":
        return TemporalConv1d(channels, choice.get("kernel"), choice.get("depthwise"), groups, eps)
    if op == "conv3d":
        return TemporalConv3d(channels, choice.get("kernel_t"), choice.get("kernel_s"), groups, eps)
    if op in ("attn1d", "attn3d", "xattn1d", "xattn3d"):
        return TemporalAttention(
            channels,
            frames,
            tokens="frames" if op.endswith("1d") else "video",
            cross=op.startswith("x"),
            heads=choice.get("heads"),
            ffn_ratio=choice.get("ffn_ratio"),
            pos=choice.get("pos"),
            text_dim=text_dim,
            groups=groups,
            eps=eps,
        )
    raise KeyError(f"no module for temporal op {op!r}")
