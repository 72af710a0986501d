"""The default procedural data settings, without torch (the search's config reads them).

Issue 15: the defaults of ``nas train``, the proxies and ``nas validate proxy`` are data on
which the caption carries the motion: one digit (``easy``), digits brighter than the
background in every channel (``positive``) over the usual static background (0.15). There the
mean clip per caption explains 16x (15.7x at 16 x 16 latents, 15.6x at 8 x 8) the share its shuffled
captions explain; with the earlier defaults (``medium``, ``random`` colours) the caption
explains no more than the shuffled floor (``benchmarks/caption_information.py``,
docs/benchmarks.md). :data:`LEGACY_DATA` keeps the earlier settings reachable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "DATA_KEYS",
    "DEFAULT_BACKGROUND",
    "DEFAULT_COLOURS",
    "DEFAULT_DATA",
    "DEFAULT_DIFFICULTY",
    "LEGACY_DATA",
    "resolved_data",
]

DEFAULT_DIFFICULTY = "easy"
DEFAULT_BACKGROUND = 0.15  # amplitude of the procedural videos' static background
DEFAULT_COLOURS = "positive"
DATA_KEYS = ("difficulty", "background", "colours")
DEFAULT_DATA: Mapping[str, Any] = {
    "difficulty": DEFAULT_DIFFICULTY,
    "background": DEFAULT_BACKGROUND,
    "colours": DEFAULT_COLOURS,
}
# the defaults before issue 15: the caption explains no more of the mean clip than chance
LEGACY_DATA: Mapping[str, Any] = {"difficulty": "medium", "background": 0.15, "colours": "random"}


def resolved_data(options: Mapping[str, Any]) -> dict[str, Any]:
    """The procedural data settings a proxy built with ``options`` uses: the defaults, then
    the options' own ``difficulty``, ``background`` and ``colours``."""
    out = dict(DEFAULT_DATA)
    out.update({k: options[k] for k in DATA_KEYS if k in options})
    return out
