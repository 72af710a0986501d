"""The fixed box a run's hypervolume is measured in.

A hypervolume normalised over the range of the trials seen so far drops whenever a new trial
widens that range. A run instead fixes its box once: per objective an ideal ``lower`` value and
a reference point ``upper`` (both minimised: a maximised objective's values are negated), taken
from what the run knows before it starts, and from its first proxy result:

- a cost objective (latency, memory): ``lower`` is the cheapest reference arch's cost (the
  all-none arch: temporal layers only add cost), ``upper`` the budget on the same column, or
  without one the costliest reference arch's cost;
- the quality objective: ``upper`` is the first proxy result of the run (the all-none arch's,
  which every search tries first), ``lower`` is 0 for a positive reference (a loss cannot go
  below it), else ``upper - max(1, |upper|)`` (a score that is not a loss: naswot, params).

The box is recorded in ``run.json`` (:class:`nas.results.RunInfo` ``box``), so the progress bar,
the final summary and the dashboard all measure in it and the hypervolume never decreases.
Its value is the fraction of the box the front dominates, 0 to 1 (a value beyond ``lower``, a
score better than the ideal, counts as the ideal). Nothing here imports Optuna or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HypervolumeBox"]


@dataclass(frozen=True)
class HypervolumeBox:
    """Per objective (in the run's objectives' order, minimised values): the ideal ``lower``,
    the reference point ``upper`` (None until known: the quality before its first proxy
    result), and a few words on where each came from."""

    columns: tuple[str, ...]  # the objectives' metric columns
    lower: tuple[float | None, ...]
    upper: tuple[float | None, ...]
    sources: tuple[str, ...]  # e.g. "budget latency_s", "the all-none arch's proxy result"

    def __post_init__(self) -> None:
        n = len(self.columns)
        if not (len(self.lower) == len(self.upper) == len(self.sources) == n):
            raise ValueError(f"hypervolume box: {n} columns but bounds of other lengths")

    @property
    def complete(self) -> bool:
        """Whether every bound is known (only then does it measure anything)."""
        return all(v is not None for v in (*self.lower, *self.upper))

    def fill(self, values: Sequence[float]) -> HypervolumeBox:
        """The box with its unknown bounds taken from one trial's (minimised) objective values,
        the run's first with a proxy result; unchanged when those values are not finite."""
        if self.complete:
            return self
        pending = [i for i, u in enumerate(self.upper) if u is None]
        if not all(math.isfinite(float(values[i])) for i in pending):
            return self
        lower, upper = list(self.lower), list(self.upper)
        for i in pending:
            ref = float(values[i])
            upper[i] = ref
            lower[i] = 0.0 if ref > 0 else ref - max(1.0, abs(ref))
        return HypervolumeBox(self.columns, tuple(lower), tuple(upper), self.sources)

    def bounds(self) -> tuple[list[float], list[float]]:
        """``(lower, upper)`` of a complete box."""
        if not self.complete:
            raise ValueError("hypervolume box: bounds not known yet")
        return [float(v) for v in self.lower if v is not None], [
            float(v) for v in self.upper if v is not None
        ]

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Minimised values in the unit box of a complete box (beyond ``lower`` counts as 0;
        beyond ``upper`` stays above 1, outside the box)."""
        lower, upper = (np.asarray(b, dtype=float) for b in self.bounds())
        span = np.where(upper > lower, upper - lower, np.nan)  # an empty box: no volume
        out: np.ndarray = np.maximum((np.asarray(values, dtype=float) - lower) / span, 0.0)
        return out

    def describe(self) -> str:
        """One line: ``latency_s_video in [2.76, 4] (budget latency_s); ...``."""
        parts = []
        for c, lo, hi, src in zip(self.columns, self.lower, self.upper, self.sources, strict=True):
            rng = f"[{_g(lo)}, {_g(hi)}]"
            parts.append(f"{c} in {rng} ({src})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "lower": list(self.lower),
            "upper": list(self.upper),
            "sources": list(self.sources),
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> HypervolumeBox:
        def num(v: Any) -> float | None:
            return None if v is None else float(v)

        return HypervolumeBox(
            tuple(str(c) for c in raw["columns"]),
            tuple(num(v) for v in raw["lower"]),
            tuple(num(v) for v in raw["upper"]),
            tuple(str(s) for s in raw["sources"]),
        )


def _g(v: float | None) -> str:
    return "?" if v is None else f"{v:.4g}"
