"""Optional dependencies: which pip extra installs a module, and one error line when it is missing.

The core install (``pip install nas-video``) reads spaces and tables, prices arches, runs a
cost-only search and draws its dashboard. Everything that builds a model is in an extra::

    train     torch, diffusers, safetensors, scikit-learn, scipy: nas train, the search's quality
              proxies, nas validate proxy, the GP sampler
    onnx      train + onnx, onnxruntime, onnxscript: nas export --format onnx, the cpu-ort device
    coreml    train + coremltools: nas export --format coreml, Core ML estimates
    video     train + av: training on a folder of video files
    postgres  psycopg2-binary: search.storage=postgresql://...
    pipeline  train + transformers: the CLIP text encoder of a space's pipeline
    all       all of the above

Code that needs one calls ``require(module, extra=..., purpose=...)`` before using it; the CLI
also turns any other missing module of an extra into the same line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nas.errors import NasError

__all__ = [
    "EXTRAS",
    "MissingExtra",
    "install_command",
    "missing_extra",
    "require",
]

# top-level module -> (the extra that installs it, its distribution name on PyPI)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("train", "torch"),
    "diffusers": ("train", "diffusers"),
    "safetensors": ("train", "safetensors"),
    "sklearn": ("train", "scikit-learn"),
    "scipy": ("train", "scipy"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "onnxscript": ("onnx", "onnxscript"),
    "coremltools": ("coreml", "coremltools"),
    "av": ("video", "av"),
    "psycopg2": ("postgres", "psycopg2-binary"),
    "transformers": ("pipeline", "transformers"),
}


class MissingExtra(NasError):
    """An optional dependency is not installed; the message names the pip command."""


def install_command(extra: str) -> str:
    """The pip command that installs ``extra`` (from PyPI, and from a checkout)."""
    return f"pip install 'nas-video[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


def _message(module: str, extra: str, purpose: str) -> str:
    dist = EXTRAS.get(module, (extra, module))[1]
    what = f"{purpose} needs {dist}" if purpose else f"{dist} is needed here"
    return f"{what}, which is not installed: {install_command(extra)}"


def require(module: str, *, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming the pip command of its extra
    (``extra`` defaults to the one :data:`EXTRAS` lists for its top-level package)."""
    top = module.split(".")[0]
    if extra is None:
        if top not in EXTRAS:
            raise ValueError(f"require({module!r}): not a module of an extra; pass extra=")
        extra = EXTRAS[top][0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing and missing != top and missing not in EXTRAS:
            raise  # the module is there but broken: not a missing extra
        raise MissingExtra(_message(missing or top, extra, purpose)) from None


def missing_extra(error: ImportError, purpose: str = "") -> MissingExtra | None:
    """The one-line error for an ImportError of a module an extra installs, else None."""
    top = (error.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    return MissingExtra(_message(top, EXTRAS[top][0], purpose))
