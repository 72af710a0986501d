"""The PyTorch model: VideoUNet (backbone + temporal ops) and the temporal op zoo."""

from nas.model._temporal import (
    Attention,
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    make_temporal_op,
    sinusoidal_table,
)
from nas.model._video_unet import VideoUNet, build_video_unet, load_backbone_weights

__all__ = [
    "Attention",
    "TemporalAttention",
    "TemporalConv1d",
    "TemporalConv3d",
    "VideoUNet",
    "build_video_unet",
    "load_backbone_weights",
    "make_temporal_op",
    "sinusoidal_table",
]
