"""The temporal op zoo as data: names, options, allowed values and defaults.

This module is pure Python (no torch) so that spaces can be parsed and validated without
building any model. ``nas.model`` implements each op; ``nas.cost`` counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OPS", "OpSpec", "OptionSpec", "get_op", "list_ops"]

OptionValue = Any  # int | bool | str: option values are YAML scalars


@dataclass(frozen=True)
class OptionSpec:
    """One option of a temporal op: its allowed values and its default."""

    name: str
    allowed: tuple[OptionValue, ...]
    default: OptionValue
    doc: str


@dataclass(frozen=True)
class OpSpec:
    """A temporal op kind.

    ``tokens`` says what attention mixes: ``"frames"`` (per pixel, along T) or ``"video"``
    (all T*H*W tokens); ``cross`` adds cross-attention to the text embeddings.
    """

    name: str
    doc: str
    options: tuple[OptionSpec, ...] = ()
    attention: bool = False
    tokens: str = ""
    cross: bool = False

    def option(self, name: str) -> OptionSpec:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)


_HEADS = OptionSpec(
    "heads", (1, 2, 4, 8, 16), 8, "attention heads; must divide the slot's channels"
)
_FFN = OptionSpec(
    "ffn_ratio", (0, 1, 2, 4), 4, "hidden width of the feed-forward as a multiple of C; 0 = no FFN"
)
_POS = OptionSpec(
    "pos", ("none", "sinusoidal", "learned"), "sinusoidal", "positional encoding over frames"
)


def _attn(name: str, doc: str, tokens: str, cross: bool) -> OpSpec:
    return OpSpec(name, doc, (_HEADS, _FFN, _POS), attention=True, tokens=tokens, cross=cross)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("none", "no temporal layer: the slot stays a per-frame image layer"),
        OpSpec(
            "conv1d",
            "GroupNorm, SiLU and a convolution of `kernel` frames at each pixel",
            (
                OptionSpec("kernel", (3, 5, 7), 3, "temporal kernel size (frames)"),
                OptionSpec("depthwise", (False, True), False, "one filter per channel (groups=C)"),
            ),
        ),
        OpSpec(
            "conv3d",
            "GroupNorm, SiLU and a 3-D convolution kernel_t x kernel_s x kernel_s",
            (
                OptionSpec("kernel_t", (3, 5), 3, "temporal kernel size (frames)"),
                OptionSpec("kernel_s", (1, 3), 3, "spatial kernel size (pixels)"),
            ),
        ),
        _attn(
            "attn1d",
            "self-attention along frames at each pixel (AnimateDiff style)",
            "frames",
            False,
        ),
        _attn("attn3d", "self-attention over all T*H*W tokens of the video", "video", False),
        _attn("xattn1d", "attn1d plus cross-attention to the text embeddings", "frames", True),
        _attn("xattn3d", "attn3d plus cross-attention to the text embeddings", "video", True),
    )
}


def get_op(name: str) -> OpSpec:
    """The op called ``name``; a ``KeyError`` listing the valid names otherwise."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown temporal op {name!r}; valid ops: {', '.join(OPS)}") from None


def list_ops() -> list[str]:
    return list(OPS)
