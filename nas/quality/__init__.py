"""Quality: datasets, the trainer, and evaluation (validation loss, flicker, sampling).

A proxy trains an arch briefly and scores it::

    from nas.quality import ProceduralVideos, TrainConfig, train, validation_loss
    res = train(space, arch, TrainConfig(steps=200, width_mult=0.25,
                                         geometry={"frames": 8, "latent_height": 16,
                                                   "latent_width": 16}), out_dir=None)
    val = ProceduralVideos.for_geometry(res.model.geometry, split="val")
    losses = validation_loss(res.ema_model(), val)     # {200: ..., 500: ..., 800: ...}

Proxies estimate that quality cheaply (lower is better) and ``validate_proxies`` (``nas
validate proxy``) measures how well they rank arches::

    proxy = make_proxy("naswot", space)                 # or "train", "synflow", "params"
    score = proxy.evaluate(arch)
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
from nas.quality._evaluator import (
    DEFAULT_EVALUATOR_CACHE,
    EvaluatorConfig,
    MotionPrediction,
    VideoEvaluator,
    evaluate_generation,
    frechet_distance,
    shuffle_frames,
    track_motion,
    train_video_evaluator,
)
from nas.quality._objective import OBJECTIVES, corrupt
from nas.quality._proxies import (
    DEFAULT_PROXY_GEOMETRY,
    DEFAULT_PROXY_WIDTH_MULT,
    PROXIES,
    NaswotProxy,
    ParamsProxy,
    ProbeBatch,
    Proxy,
    ProxyPruned,
    Rung,
    SynflowProxy,
    TrainingProxy,
    list_proxies,
    make_proxy,
    naswot_score,
    probe_batch,
    proxy_geometry,
    synflow_score,
    unzeroed_outputs,
)
from nas.quality._train import (
    TrainConfig,
    TrainResult,
    find_checkpoint,
    load_trained,
    train,
    train_geometry,
)
from nas.quality._validate_proxy import (
    QUALITY_DEFINITIONS,
    ProxyValidation,
    ProxyValidationConfig,
    pick_diverse_arches,
    rank_stats,
    render_proxy_validation_html,
    validate_proxies,
)

__all__ = [
    "DEFAULT_EVALUATOR_CACHE",
    "DEFAULT_PROXY_GEOMETRY",
    "DEFAULT_PROXY_WIDTH_MULT",
    "DEFAULT_TIMESTEP_WEIGHTS",
    "DIFFICULTIES",
    "DIRECTIONS",
    "OBJECTIVES",
    "PROXIES",
    "QUALITY_DEFINITIONS",
    "SPEEDS",
    "EvaluatorConfig",
    "LatentsFolder",
    "MotionPrediction",
    "NaswotProxy",
    "ObjectMotion",
    "ParamsProxy",
    "ProbeBatch",
    "ProceduralVideos",
    "Proxy",
    "ProxyPruned",
    "ProxyValidation",
    "ProxyValidationConfig",
    "Rung",
    "SynflowProxy",
    "ToyTextEncoder",
    "TrainConfig",
    "TrainResult",
    "TrainingProxy",
    "VideoEvaluator",
    "VideoFolder",
    "VideoItem",
    "VideoSpec",
    "corrupt",
    "evaluate_generation",
    "find_checkpoint",
    "flicker_score",
    "frechet_distance",
    "list_proxies",
    "load_trained",
    "make_proxy",
    "naswot_score",
    "open_dataset",
    "pick_diverse_arches",
    "probe_batch",
    "proxy_geometry",
    "rank_stats",
    "render_proxy_validation_html",
    "sample_video",
    "shuffle_frames",
    "synflow_score",
    "track_motion",
    "train",
    "train_geometry",
    "train_video_evaluator",
    "unzeroed_outputs",
    "validate_proxies",
    "validation_loss",
    "weighted_validation_loss",
    "write_latents",
]
