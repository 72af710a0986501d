"""Quality: datasets, the trainer, and evaluation (validation loss, flicker, sampling).

A proxy trains an arch briefly and scores it::

    from nas.quality import ProceduralVideos, TrainConfig, train, validation_loss
    res = train(space, arch, TrainConfig(steps=200, width_mult=0.25,
                                         geometry={"frames": 8, "latent_height": 16,
                                                   "latent_width": 16}), out_dir=None)
    val = ProceduralVideos.for_geometry(res.model.geometry, split="val")
    losses = validation_loss(res.ema_model(), val)     # {200: ..., 500: ..., 800: ...}
"""

from nas.quality._data import (
    DIFFICULTIES,
    DIRECTIONS,
    SPEEDS,
    LatentsFolder,
    ObjectMotion,
    ProceduralVideos,
    ToyTextEncoder,
    VideoFolder,
    VideoItem,
    VideoSpec,
    open_dataset,
    write_latents,
)
from nas.quality._eval import (
    DEFAULT_TIMESTEP_WEIGHTS,
    flicker_score,
    sample_video,
    validation_loss,
    weighted_validation_loss,
)
from nas.quality._objective import OBJECTIVES, corrupt
from nas.quality._train import (
    TrainConfig,
    TrainResult,
    find_checkpoint,
    load_trained,
    train,
    train_geometry,
)

__all__ = [
    "DEFAULT_TIMESTEP_WEIGHTS",
    "DIFFICULTIES",
    "DIRECTIONS",
    "OBJECTIVES",
    "SPEEDS",
    "LatentsFolder",
    "ObjectMotion",
    "ProceduralVideos",
    "ToyTextEncoder",
    "TrainConfig",
    "TrainResult",
    "VideoFolder",
    "VideoItem",
    "VideoSpec",
    "corrupt",
    "find_checkpoint",
    "flicker_score",
    "load_trained",
    "open_dataset",
    "sample_video",
    "train",
    "train_geometry",
    "validation_loss",
    "weighted_validation_loss",
    "write_latents",
]
