"""nas: hardware-aware neural architecture search for mobile video diffusion.

``import nas`` is light: no torch, coremltools or plotly. Import ``nas.model`` for the PyTorch
model, ``nas.space`` for search spaces and arches, ``nas.cost`` for analytic costs. The files
shipped inside the package (reference backbones, bundled search spaces) are listed and found here.
"""

from nas._resources import (
    backbone_config,
    list_backbones,
    list_pipeline_models,
    list_spaces,
    pipeline_config,
    resolve_space,
)
from nas.errors import NasError, SpaceError

__version__ = "0.1.0"
__all__ = [
    "NasError",
    "SpaceError",
    "__version__",
    "backbone_config",
    "list_backbones",
    "list_pipeline_models",
    "list_spaces",
    "pipeline_config",
    "resolve_space",
]
