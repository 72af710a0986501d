"""A proxy's noise: the seed-to-seed spread of its value, with where that figure comes from.

The search draws it as error bars on the quality axis, so a user sees which gaps in the front
are larger than what a proxy's own seed moves. Without torch (the search's outputs read it).

Where a figure comes from (``proxy.noise`` in a search config):

- ``auto`` (the default): the measured default shipped with nas (``nas/_data/proxy_noise.json``,
  written by ``benchmarks/proxy_noise.py``) for this proxy, space and settings; none when the
  proxy runs with other settings (another budget, other data) or on another space.
- a path to a ``nas validate proxy`` ``summary.json``: that validation's ``noise_std`` of the
  proxy (:func:`seed_noise` of its values under two proxy seeds, over the validated arches).
- a number: taken as given.
- ``none``: no error bars.

What the figure is (:func:`seed_noise`): the spread a proxy's seed puts on the *differences*
between arches. A seed can also shift every arch's value by the same amount (the training
proxy's seed 2 reads about 0.035 lower than seeds 0 and 1 on every arch); a search evaluates all
its arches with one seed, so such a shift moves the whole front and reorders nothing, and it is
taken out. Figures written before this (``pooled_std`` in the shipped file) kept it in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.quality._defaults import resolved_data

__all__ = ["ProxyNoise", "proxy_noise", "seed_noise", "shipped_noise"]

NOISE_FORMAT = "nas-proxy-noise/1"
# options that do not change what a seed-to-seed spread measures (where it runs included)
_SEED_OPTIONS = ("seed", "progress", "device")


@dataclass(frozen=True)
class ProxyNoise:
    """The seed-to-seed standard deviation of a proxy's value and its provenance."""

    std: float
    source: str


def seed_noise(values: Any) -> tuple[float, float]:
    """``(noise, pooled)`` of a proxy's values, an (arches x seeds) array, seeds >= 2.

    ``noise``: the residual std of ``value = arch + seed + residual`` (two-way, no
    interaction term; (arches - 1)(seeds - 1) degrees of freedom), the seed-to-seed spread
    that can reorder arches. ``pooled``: the plain pooled within-arch std, which also holds
    the seed's common shift. Arches with a non-finite value are left out; nan when fewer
    than two arches remain.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2:
        raise NasError(f"seed_noise needs an (arches x seeds>=2) array, got shape {v.shape}")
    v = v[np.isfinite(v).all(axis=1)]
    a, s = v.shape
    if a < 2:
        return math.nan, math.nan
    r = v - v.mean(axis=1, keepdims=True) - v.mean(axis=0, keepdims=True) + v.mean()
    noise = float(np.sqrt((r**2).sum() / ((a - 1) * (s - 1))))
    pooled = float(np.sqrt(np.mean(np.var(v, axis=1, ddof=1))))
    return noise, pooled


def _shipped_file() -> Path:
    return Path(str(resources.files("nas") / "_data" / "proxy_noise.json"))


def _settings(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in options.items() if k not in _SEED_OPTIONS}
    out.update(resolved_data(options))
    return out


def shipped_noise(
    proxy: str, options: Mapping[str, Any], space: str, *, path: Path | None = None
) -> ProxyNoise | None:
    """The shipped measurement for ``proxy`` with ``options`` on the space named ``space``:
    only when every setting but the seed is the one measured."""
    f = path or _shipped_file()
    if not f.is_file():
        return None
    raw = json.loads(f.read_text(encoding="utf-8"))
    if raw.get("format") != NOISE_FORMAT:
        return None
    want = _settings(options)
    for e in raw.get("entries", []):
        if e.get("proxy") == proxy and e.get("space") == space and e.get("settings") == want:
            return ProxyNoise(float(e["noise_std"]), str(e["source"]))
    return None


def proxy_noise(
    proxy: str, options: Mapping[str, Any], space: str, setting: Any = "auto"
) -> ProxyNoise | None:
    """The noise of the search's proxy under the ``proxy.noise`` setting (module docstring)."""
    if setting is None or setting == "none" or proxy == "none":
        return None
    if setting == "auto":
        return shipped_noise(proxy, options, space)
    if isinstance(setting, (int, float)) and not isinstance(setting, bool):
        if not (math.isfinite(float(setting)) and float(setting) >= 0):
            raise NasError(f"config: proxy.noise={setting!r} must be a number >= 0")
        return ProxyNoise(float(setting), "proxy.noise in the search config")
    path = Path(str(setting))
    if not path.is_file():
        raise NasError(
            f"config: proxy.noise={setting!r} is not auto, none, a number or a summary.json "
            "of nas validate proxy"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        std = float(summary["proxies"][proxy]["noise_std"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise NasError(
            f"config: proxy.noise: {path} has no noise_std for proxy {proxy!r} (a summary.json "
            "of nas validate proxy that validated it)"
        ) from None
    n = len(summary.get("arches", ())) or "?"
    return ProxyNoise(std, f"{path} (nas validate proxy: {n} arches x 2 proxy seeds)")
