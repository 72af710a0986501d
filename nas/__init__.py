"""nas: hardware-aware neural architecture search for mobile video diffusion.

``import nas`` is light: no torch, coremltools or plotly. Import ``nas.model`` for the PyTorch
model, ``nas.space`` for search spaces and arches, ``nas.cost`` for analytic costs.
"""

from nas.errors import NasError, SpaceError

__version__ = "0.1.0"
__all__ = ["NasError", "SpaceError", "__version__"]
