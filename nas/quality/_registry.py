"""The proxy registry and protocol, without torch: what the search's config and driver need.

``PROXIES`` maps each proxy's name to where it lives (``module:attribute``); the class is
imported on first use (:func:`proxy_class`), so validating ``proxy=train`` in a config, or
reading a run, loads neither torch nor the proxies' code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from nas.errors import NasError

__all__ = ["PROXIES", "PROXY_UNITS", "Proxy", "ProxyPruned", "list_proxies", "proxy_class"]

PROXIES: dict[str, str] = {
    "naswot": "nas.quality._proxies:NaswotProxy",
    "synflow": "nas.quality._proxies:SynflowProxy",
    "params": "nas.quality._proxies:ParamsProxy",
    "train": "nas.quality._proxies:TrainingProxy",
    "generate": "nas.quality._generated:GenerationProxy",
}
# what each proxy's value is: the unit of the search's quality objective ("quality (proxy
# loss)" on the study's axis). Every one is lower-is-better; only train's is a loss
PROXY_UNITS: dict[str, str] = {
    "naswot": "-log|K_H|",
    "synflow": "-log(1+SynFlow)",
    "params": "-log(1+temporal params)",
    "train": "proxy loss",
    "generate": "generated-video score",
}


@runtime_checkable
class Proxy(Protocol):
    """An estimate of an arch's trained quality: ``evaluate(arch)``, lower is better."""

    name: str

    def evaluate(self, arch: Any) -> float: ...


class ProxyPruned(Exception):
    """A proxy stopped early because its ``report`` callback said so (a pruner's verdict).

    A plain exception: the search turns it into Optuna's ``TrialPruned`` itself.
    """

    def __init__(self, arch_id: str, step: int, value: float) -> None:
        super().__init__(f"arch {arch_id} pruned at step {step} (value {value:.6g})")
        self.arch_id = arch_id
        self.step = step
        self.value = value


def list_proxies() -> list[str]:
    return list(PROXIES)


def proxy_class(name: str) -> Callable[..., Proxy]:
    """The class (factory) of the proxy ``name``; imports its module (and torch)."""
    if name not in PROXIES:
        raise NasError(f"unknown proxy {name!r}; proxies: {', '.join(PROXIES)}")
    module, attr = PROXIES[name].split(":")
    factory: Callable[..., Proxy] = getattr(importlib.import_module(module), attr)
    return factory
