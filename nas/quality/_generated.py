"""Generated-video quality: one scalar from sampled clips, and a proxy that trains briefly and
scores what the model generates.

:func:`generated_score` folds :func:`~nas.quality.evaluate_generation`'s figures into one
number, lower is better (like every proxy value and loss here)::

    following = mean over direction and speed, by the evaluator and by the tracker, of
                max(0, (accuracy - chance) / (1 - chance))          chance: 1/8 and 1/2
    generated = (1 - following)                                     0 .. 1: caption following
              + 0.1 * log2(max(fd / fd_real, 1))                    + 0.1 per doubling of the
                                                                      domain FD over its floor
              + 0.1 * min(|flicker / flicker_real - 1|, 1)          + up to 0.1 for flicker

Caption following dominates (it is what a per-frame model or one that ignores the text cannot
do); the domain FD separates models that follow the caption equally well by how real their
clips look, one tenth per doubling over the real-vs-real floor at the same ``n``; flicker adds
at most 0.1 for frame-to-frame change unlike the data's. A model whose clips are noise scores
about 2; real clips about 0.

:class:`GenerationProxy` (``"generate"``): a short training at proxy scale (spatial layers
trainable, like the full trainings of ``nas validate proxy``), then ``n_samples`` held-out
captions sampled and scored by the evaluator: :func:`generated_score` of those figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.quality._data import DIFFICULTIES
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS, DEFAULT_DIFFICULTY
from nas.quality._evaluator import (
    DEFAULT_EVALUATOR_CACHE,
    VideoEvaluator,
    evaluate_generation,
    train_video_evaluator,
)
from nas.quality._train import TrainConfig, train, train_geometry
from nas.space import Arch, GeometryOverride, SearchSpace

__all__ = [
    "GENERATED_PARTS",
    "GenerationProxy",
    "generated_score",
    "score_generation",
]

# evaluate_generation's figures kept beside the scalar (columns of nas validate proxy)
GENERATED_PARTS = (
    "motion_accuracy",
    "tracked_motion_accuracy",
    "speed_accuracy",
    "tracked_speed_accuracy",
    "fd",
    "fd_real",
    "flicker",
    "flicker_real",
)
_CHANCE = {
    "motion_accuracy": 1 / 8,
    "tracked_motion_accuracy": 1 / 8,
    "speed_accuracy": 1 / 2,
    "tracked_speed_accuracy": 1 / 2,
}
FD_WEIGHT = 0.1  # per doubling of fd over fd_real
FLICKER_WEIGHT = 0.1  # at most, for flicker unlike the data's


def generated_score(scores: Mapping[str, float]) -> float:
    """The one scalar of generated-video quality (lower is better; module docstring)."""
    missing = [k for k in GENERATED_PARTS if k not in scores]
    if missing:
        raise NasError(f"generated_score needs {missing} (evaluate_generation's figures)")
    following = sum(max(0.0, (float(scores[k]) - c) / (1 - c)) for k, c in _CHANCE.items()) / len(
        _CHANCE
    )
    fd_ratio = float(scores["fd"]) / max(float(scores["fd_real"]), 1e-9)
    flicker_gap = abs(float(scores["flicker"]) / max(float(scores["flicker_real"]), 1e-9) - 1)
    value = (
        (1 - following)
        + FD_WEIGHT * math.log2(max(fd_ratio, 1.0))
        + FLICKER_WEIGHT * min(flicker_gap, 1.0)
    )
    return float(value) if math.isfinite(value) else math.inf


def score_generation(
    model: Any,
    evaluator: VideoEvaluator,
    *,
    n: int,
    steps: int,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`evaluate_generation` (``n`` held-out captions, ``steps`` Euler steps, no
    guidance, noise ``seed``) plus ``score``, its :func:`generated_score`."""
    out = evaluate_generation(model, n=n, steps=steps, seed=seed, evaluator=evaluator)
    out["score"] = generated_score(out)
    return out


class GenerationProxy:
    """Train ``steps`` steps at proxy scale, sample ``n_samples`` held-out captions with
    ``sample_steps`` Euler steps (no guidance) and return :func:`generated_score`.

    Training is :func:`nas.quality.train` with spatial layers trainable (``train_spatial``)
    on the given procedural data at ``geometry`` (over the proxy-scale video, 8 frames of
    16 x 16 latents); the evaluator (:func:`~nas.quality.train_video_evaluator`,
    ``evaluator_steps``) is trained once on the same data and geometry and cached in
    ``evaluator_cache``. ``parts[arch_id]`` keeps every figure of an evaluated arch. Results
    are cached by ``arch_id``; training uses CUDA when present (``device``).
    """

    name = "generate"

    def __init__(
        self,
        space: SearchSpace,
        *,
        steps: int = 200,
        batch_size: int = 8,
        lr: float = 1e-3,  # the full trainings' (2e-3 collapsed an arch of the default space)
        width_mult: float | None = None,
        geometry: GeometryOverride | Mapping[str, Any] | None = None,
        difficulty: str = DEFAULT_DIFFICULTY,
        background: float = DEFAULT_BACKGROUND,
        colours: str = DEFAULT_COLOURS,
        train_spatial: bool = True,
        seed: int = 0,
        n_samples: int = 16,
        sample_steps: int = 8,
        evaluator_steps: int = 2000,
        evaluator_cache: str | Path | None = DEFAULT_EVALUATOR_CACHE,
        device: str = "auto",
        precision: str = "auto",
        progress: bool = False,
    ) -> None:
        from nas.quality._proxies import DEFAULT_PROXY_WIDTH_MULT, proxy_geometry

        if difficulty not in DIFFICULTIES:
            raise NasError(f"difficulty {difficulty!r} is not one of {list(DIFFICULTIES)}")
        for name, v, low in (
            ("steps", steps, 1),
            ("n_samples", n_samples, 2),
            ("sample_steps", sample_steps, 1),
            ("evaluator_steps", evaluator_steps, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise NasError(f"GenerationProxy {name} must be an integer >= {low}, got {v!r}")
        self.space = space
        geo = proxy_geometry(space, geometry)
        self.config = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width_mult=DEFAULT_PROXY_WIDTH_MULT if width_mult is None else width_mult,
            geometry=GeometryOverride.between(space.geometry, geo),
            difficulty=difficulty,
            background=background,
            colours=colours,
            freeze_spatial=False if train_spatial else None,
            seed=seed,
            checkpoint_every=steps,
            log_every=steps,
            device=device,
            precision=precision,
        )
        self.n_samples = n_samples
        self.sample_steps = sample_steps
        self.evaluator_steps = evaluator_steps
        self.evaluator_cache = evaluator_cache
        self.progress = progress
        self._evaluator: VideoEvaluator | None = None
        self._cache: dict[str, float] = {}
        self.parts: dict[str, dict[str, float]] = {}

    @property
    def evaluator(self) -> VideoEvaluator:
        if self._evaluator is None:
            c = self.config
            self._evaluator = train_video_evaluator(
                train_geometry(self.space, c),
                difficulty=c.difficulty,
                background=c.background,
                colours=c.colours,
                steps=self.evaluator_steps,
                cache_dir=self.evaluator_cache,
            )
        return self._evaluator

    def evaluate(self, arch: Arch) -> float:
        """The generated score of ``arch`` after the short training (cached by ``arch_id``)."""
        key = arch.arch_id
        if key not in self._cache:
            evaluator = self.evaluator
            res = train(self.space, arch, self.config, None, progress=self.progress)
            parts = score_generation(
                res.ema_model(), evaluator, n=self.n_samples, steps=self.sample_steps
            )
            self.parts[key] = parts
            self._cache[key] = parts["score"]
        return self._cache[key]
