"""Quality: datasets, the trainer, and evaluation (validation loss, flicker, sampling).

A proxy trains an arch briefly and scores it::

    from nas.quality import ProceduralVideos, TrainConfig, train, validation_loss
    from nas.space import GeometryOverride
    small = GeometryOverride(frames=8, latent_height=16, latent_width=16)
    res = train(space, arch, TrainConfig(steps=200, width_mult=0.25, geometry=small),
                out_dir=None)
    val = ProceduralVideos.for_geometry(res.model.geometry, split="val")
    losses = validation_loss(res.ema_model(), val)     # {200: ..., 500: ..., 800: ...}

Proxies estimate that quality cheaply (lower is better) and ``validate_proxies`` (``nas
validate proxy``) measures how well they rank arches::

    proxy = make_proxy("naswot", space)   # or "train", "synflow", "params", "generate"
    score = proxy.evaluate(arch)

Importing this package loads no torch: the proxy registry (``PROXIES``, ``PROXY_UNITS``,
``Proxy``, ``ProxyPruned``, ``list_proxies``), the default data settings (``DEFAULT_DATA``,
``LEGACY_DATA``, ``resolved_data``) and proxy noise (``ProxyNoise``, ``proxy_noise``,
``seed_noise``) are torch-free, and every other name is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nas.quality._defaults import DEFAULT_DATA, LEGACY_DATA, resolved_data
from nas.quality._noise import ProxyNoise, proxy_noise, seed_noise, shipped_noise
from nas.quality._registry import PROXIES, PROXY_UNITS, Proxy, ProxyPruned, list_proxies

if TYPE_CHECKING:
    from nas.quality._adversarial import (
        MAX_FEW_STEPS,
        Discriminator,
        few_step_sample,
        few_step_schedule,
        teacher_config,
    )
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
    from nas.quality._generated import (
        GENERATED_PARTS,
        GenerationProxy,
        generated_score,
        score_generation,
    )
    from nas.quality._ground_truth import Scale, loss_collapse, train_config, transfer_scale
    from nas.quality._objective import (
        OBJECTIVES,
        corrupt,
    )
    from nas.quality._proxies import (
        DEFAULT_PROXY_GEOMETRY,
        DEFAULT_PROXY_WIDTH_MULT,
        NaswotProxy,
        ParamsProxy,
        ProbeBatch,
        Rung,
        SynflowProxy,
        TrainingProxy,
        make_proxy,
        naswot_score,
        output_projections,
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
        ValidationStatus,
        pick_diverse_arches,
        rank_stats,
        render_proxy_validation_html,
        validate_proxies,
        validation_status,
        validation_worker,
    )

# name -> the module that defines it, imported on first access
_LAZY: dict[str, str] = {
    "MAX_FEW_STEPS": "nas.quality._adversarial",
    "Discriminator": "nas.quality._adversarial",
    "few_step_sample": "nas.quality._adversarial",
    "few_step_schedule": "nas.quality._adversarial",
    "teacher_config": "nas.quality._adversarial",
    "DIFFICULTIES": "nas.quality._data",
    "DIRECTIONS": "nas.quality._data",
    "SPEEDS": "nas.quality._data",
    "LatentsFolder": "nas.quality._data",
    "ObjectMotion": "nas.quality._data",
    "ProceduralVideos": "nas.quality._data",
    "ToyTextEncoder": "nas.quality._data",
    "VideoFolder": "nas.quality._data",
    "VideoItem": "nas.quality._data",
    "VideoSpec": "nas.quality._data",
    "open_dataset": "nas.quality._data",
    "write_latents": "nas.quality._data",
    "DEFAULT_TIMESTEP_WEIGHTS": "nas.quality._eval",
    "flicker_score": "nas.quality._eval",
    "sample_video": "nas.quality._eval",
    "validation_loss": "nas.quality._eval",
    "weighted_validation_loss": "nas.quality._eval",
    "DEFAULT_EVALUATOR_CACHE": "nas.quality._evaluator",
    "EvaluatorConfig": "nas.quality._evaluator",
    "MotionPrediction": "nas.quality._evaluator",
    "VideoEvaluator": "nas.quality._evaluator",
    "evaluate_generation": "nas.quality._evaluator",
    "frechet_distance": "nas.quality._evaluator",
    "shuffle_frames": "nas.quality._evaluator",
    "track_motion": "nas.quality._evaluator",
    "train_video_evaluator": "nas.quality._evaluator",
    "GENERATED_PARTS": "nas.quality._generated",
    "GenerationProxy": "nas.quality._generated",
    "generated_score": "nas.quality._generated",
    "score_generation": "nas.quality._generated",
    "Scale": "nas.quality._ground_truth",
    "train_config": "nas.quality._ground_truth",
    "transfer_scale": "nas.quality._ground_truth",
    "loss_collapse": "nas.quality._ground_truth",
    "OBJECTIVES": "nas.quality._objective",
    "corrupt": "nas.quality._objective",
    "DEFAULT_PROXY_GEOMETRY": "nas.quality._proxies",
    "DEFAULT_PROXY_WIDTH_MULT": "nas.quality._proxies",
    "NaswotProxy": "nas.quality._proxies",
    "ParamsProxy": "nas.quality._proxies",
    "ProbeBatch": "nas.quality._proxies",
    "Rung": "nas.quality._proxies",
    "SynflowProxy": "nas.quality._proxies",
    "TrainingProxy": "nas.quality._proxies",
    "make_proxy": "nas.quality._proxies",
    "naswot_score": "nas.quality._proxies",
    "output_projections": "nas.quality._proxies",
    "probe_batch": "nas.quality._proxies",
    "proxy_geometry": "nas.quality._proxies",
    "synflow_score": "nas.quality._proxies",
    "unzeroed_outputs": "nas.quality._proxies",
    "TrainConfig": "nas.quality._train",
    "TrainResult": "nas.quality._train",
    "find_checkpoint": "nas.quality._train",
    "load_trained": "nas.quality._train",
    "train": "nas.quality._train",
    "train_geometry": "nas.quality._train",
    "QUALITY_DEFINITIONS": "nas.quality._validate_proxy",
    "ProxyValidation": "nas.quality._validate_proxy",
    "ProxyValidationConfig": "nas.quality._validate_proxy",
    "pick_diverse_arches": "nas.quality._validate_proxy",
    "rank_stats": "nas.quality._validate_proxy",
    "render_proxy_validation_html": "nas.quality._validate_proxy",
    "validate_proxies": "nas.quality._validate_proxy",
    "validation_status": "nas.quality._validate_proxy",
    "ValidationStatus": "nas.quality._validate_proxy",
    "validation_worker": "nas.quality._validate_proxy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas.quality' has no attribute {name!r}")
    from nas.extras import require

    require("torch", purpose=f"nas.quality.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_EVALUATOR_CACHE",
    "DEFAULT_PROXY_GEOMETRY",
    "DEFAULT_PROXY_WIDTH_MULT",
    "DEFAULT_TIMESTEP_WEIGHTS",
    "DIFFICULTIES",
    "DIRECTIONS",
    "GENERATED_PARTS",
    "LEGACY_DATA",
    "MAX_FEW_STEPS",
    "OBJECTIVES",
    "PROXIES",
    "PROXY_UNITS",
    "QUALITY_DEFINITIONS",
    "SPEEDS",
    "Discriminator",
    "EvaluatorConfig",
    "GenerationProxy",
    "LatentsFolder",
    "MotionPrediction",
    "NaswotProxy",
    "ObjectMotion",
    "ParamsProxy",
    "ProbeBatch",
    "ProceduralVideos",
    "Proxy",
    "ProxyNoise",
    "ProxyPruned",
    "ProxyValidation",
    "ProxyValidationConfig",
    "Rung",
    "Scale",
    "SynflowProxy",
    "ToyTextEncoder",
    "TrainConfig",
    "TrainResult",
    "TrainingProxy",
    "ValidationStatus",
    "VideoEvaluator",
    "VideoFolder",
    "VideoItem",
    "VideoSpec",
    "corrupt",
    "evaluate_generation",
    "few_step_sample",
    "few_step_schedule",
    "find_checkpoint",
    "flicker_score",
    "frechet_distance",
    "generated_score",
    "list_proxies",
    "load_trained",
    "loss_collapse",
    "make_proxy",
    "naswot_score",
    "open_dataset",
    "output_projections",
    "pick_diverse_arches",
    "probe_batch",
    "proxy_geometry",
    "proxy_noise",
    "rank_stats",
    "render_proxy_validation_html",
    "resolved_data",
    "sample_video",
    "score_generation",
    "seed_noise",
    "shipped_noise",
    "shuffle_frames",
    "synflow_score",
    "teacher_config",
    "track_motion",
    "train",
    "train_config",
    "train_geometry",
    "train_video_evaluator",
    "transfer_scale",
    "unzeroed_outputs",
    "validate_proxies",
    "validation_loss",
    "validation_status",
    "validation_worker",
    "weighted_validation_loss",
    "write_latents",
]
