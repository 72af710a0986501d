"""Files shipped inside the package: reference backbones, pipeline model configs and bundled
search spaces.

Found through ``importlib.resources`` so they work from an installed wheel, not only a checkout.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from nas.errors import NasError


def _data() -> Path:
    return Path(str(resources.files("nas") / "_data"))


def list_backbones() -> list[str]:
    return sorted(p.stem for p in (_data() / "backbones").glob("*.json"))


def backbone_config(name: str) -> dict[str, Any]:
    """The diffusers config of a reference backbone (``sd15``, ``pruned``, ``tiny``)."""
    path = _data() / "backbones" / f"{name}.json"
    if not path.is_file():
        raise NasError(f"unknown backbone {name!r}; bundled: {', '.join(list_backbones())}")
    cfg: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return cfg


def list_pipeline_models() -> list[str]:
    """Bundled text-encoder and decoder configs (``clip_l14``, ``sd_vae``, ``taesd``, ...)."""
    return sorted(p.stem for p in (_data() / "pipeline").glob("*.json"))


def pipeline_config(name: str) -> dict[str, Any]:
    """The config of a bundled pipeline model (architecture only: no weights ship)."""
    path = _data() / "pipeline" / f"{name}.json"
    if not path.is_file():
        raise NasError(
            f"unknown pipeline model {name!r}; bundled: {', '.join(list_pipeline_models())}"
        )
    cfg: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return cfg


def list_spaces() -> list[str]:
    return sorted(p.stem for p in (_data() / "search_spaces").glob("*.yaml"))


def resolve_space(arg: str) -> Path:
    """A space argument -> a file: the path itself if it exists (or is absolute), else for a
    relative path the bundled space of the same file name, if any."""
    p = Path(arg).expanduser()
    if p.exists() or p.is_absolute():
        return p
    bundled = _data() / "search_spaces" / (p.name if p.suffix else f"{p.name}.yaml")
    if bundled.is_file():
        return bundled
    return p  # the loader reports "file not found" with the path the user gave
