"""A video evaluator the toolkit trains itself, and sample metrics built on it.

No FVD or CLIP weights can be downloaded here, so :func:`train_video_evaluator` trains a small
3D-conv network on :class:`~nas.quality.ProceduralVideos` to name the motion of the caption's
first digit (its direction, one of 8, and its speed, slow or fast). Its penultimate layer is a
feature space for videos of that domain:

- :func:`frechet_distance` between two feature sets is a domain Frechet distance (FVD's recipe
  with our own network): small for two sets of real videos, large for frame-shuffled or noise
  videos.
- :func:`evaluate_generation` samples a trained VideoUNet for held-out captions and reports
  that distance to real videos, the share of samples whose motion matches the caption, and the
  flicker of samples and data.

Trained evaluators are cached on disk (safetensors), keyed by every setting, so a benchmark
pays for training once.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import NasError
from nas.fileio import atomic_write_bytes, locked
from nas.quality._data import (
    DIFFICULTIES,
    DIRECTIONS,
    SPEEDS,
    ProceduralVideos,
    VideoShape,
    geometry_shape,
)
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS
from nas.quality._eval import flicker_score, sample_video
from nas.space import Geometry

__all__ = [
    "DEFAULT_EVALUATOR_CACHE",
    "EvaluatorConfig",
    "MotionPrediction",
    "VideoEvaluator",
    "evaluate_generation",
    "frechet_distance",
    "shuffle_frames",
    "track_motion",
    "train_video_evaluator",
]

DEFAULT_EVALUATOR_CACHE = Path("~/.cache/nas/evaluators")
_DIRECTION_NAMES = tuple(DIRECTIONS)
_SPEED_NAMES = tuple(SPEEDS)
_FORMAT = "nas-video-evaluator/2"  # bump when the network or the recipe changes
# the fields that EvaluatorConfig shares with ProceduralVideos (its geometry_shape)
_SHAPE_FIELDS = tuple(VideoShape.__annotations__)


@dataclass(frozen=True)
class EvaluatorConfig:
    """Everything that determines a trained evaluator (and so its cache key)."""

    channels: int  # C of the videos it reads
    frames: int  # T
    height: int  # H
    width: int  # W
    text_length: int  # only to build the dataset; the evaluator never reads text
    text_dim: int
    difficulty: str = "easy"  # procedural data it is trained on
    background: float = DEFAULT_BACKGROUND  # that data's background amplitude
    colours: str = DEFAULT_COLOURS  # and its digits' colour signs
    seed: int = 0  # weights init and the training videos
    steps: int = 300  # optimizer steps
    batch_size: int = 32  # videos per step
    lr: float = 3e-3  # Adam learning rate
    width_mult: int = 16  # channels of the first conv layer
    feature_dim: int = 32  # F, the penultimate layer's width
    # Generated videos carry residual noise and blur that the data never has; an evaluator
    # trained on clean videos alone reads a little noise as one fixed motion. Each step half the
    # batch gets Gaussian noise of a std drawn from U(0, noise) per video, and a quarter a
    # 3x3 spatial blur. 0 trains on clean videos only.
    noise: float = 0.2

    def __post_init__(self) -> None:
        for name in ("channels", "frames", "height", "width", "text_length", "text_dim"):
            if _bad_int(getattr(self, name), 1):
                raise NasError(
                    f"evaluator {name} must be an integer >= 1, got {getattr(self, name)!r}"
                )
        for name in ("steps", "batch_size", "width_mult", "feature_dim"):
            if _bad_int(getattr(self, name), 1):
                raise NasError(
                    f"evaluator {name} must be an integer >= 1, got {getattr(self, name)!r}"
                )
        if _bad_int(self.seed, 0):
            raise NasError(f"evaluator seed must be an integer >= 0, got {self.seed!r}")
        if self.difficulty not in DIFFICULTIES:
            raise NasError(f"difficulty {self.difficulty!r} is not one of {list(DIFFICULTIES)}")
        if not self.lr > 0:
            raise NasError(f"evaluator lr must be > 0, got {self.lr!r}")
        if not 0 <= self.noise <= 1:
            raise NasError(f"evaluator noise must be in [0, 1], got {self.noise!r}")

    @classmethod
    def for_geometry(cls, geometry: Geometry, **options: Any) -> EvaluatorConfig:
        return cls(**geometry_shape(geometry), **options)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return (self.channels, self.frames, self.height, self.width)

    def key(self) -> str:
        """A stable id of every setting (and the recipe's version): the cache file's name."""
        blob = json.dumps({"format": _FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def dataset(self, split: str, *, seed: int | None = None) -> ProceduralVideos:
        return ProceduralVideos(
            **{k: getattr(self, k) for k in _SHAPE_FIELDS},
            difficulty=self.difficulty,
            seed=self.seed if seed is None else seed,
            split=split,
            background=self.background,
            colours=self.colours,
        )


def _bad_int(v: Any, minimum: int) -> bool:
    return isinstance(v, bool) or not isinstance(v, int) or v < minimum


@dataclass(frozen=True)
class MotionPrediction:
    """What :meth:`VideoEvaluator.predict` names for each video (its first digit's motion)."""

    directions: tuple[str, ...]  # keys of DIRECTIONS
    speeds: tuple[str, ...]  # keys of SPEEDS


class VideoEvaluator(nn.Module):
    """A compact 3D-conv net over ``(N, C, T, H, W)`` videos with two heads (direction, speed).

    Its input is the video plus fixed planes: the change from the clip's mean frame, the
    frame-to-frame change, coordinates and their products with time. Three 3x3x3 convolutions
    (the last two halve H and W, the last also T), global average pooling and a
    ``feature_dim`` layer: :meth:`features` returns that layer, the input of the heads
    (direction, speed, and whether the frames are in order). Build trained ones with
    :func:`train_video_evaluator`.
    """

    def __init__(self, config: EvaluatorConfig) -> None:
        super().__init__()
        self.config = config
        c, w = config.channels + 7, config.width_mult
        self.body = nn.Sequential(
            nn.Conv3d(c, w, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1),
            nn.GELU(),
            nn.Conv3d(2 * w, 2 * w, 3, stride=(2, 2, 2), padding=1),
            nn.GELU(),
        )
        self.embed = nn.Linear(2 * w, config.feature_dim)
        self.direction_head = nn.Linear(config.feature_dim, len(_DIRECTION_NAMES))
        self.speed_head = nn.Linear(config.feature_dim, len(_SPEED_NAMES))
        # trained to tell real clips from frame-shuffled ones, so the features encode order
        self.order_head = nn.Linear(config.feature_dim, 1)

    def _check(self, videos: torch.Tensor | np.ndarray[Any, Any]) -> torch.Tensor:
        x = torch.as_tensor(videos).float()
        if x.ndim == 4:
            x = x[None]
        want = self.config.video_shape
        if x.ndim != 5 or tuple(x.shape[1:]) != want:
            raise NasError(
                f"videos must be (N, C, T, H, W) with (C, T, H, W) = {want} (the evaluator's "
                f"geometry), got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise NasError("no videos to evaluate")
        return x

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        # The data's background is static and a digit's colour is a random vector, so the
        # change from the clip's mean frame, summed over channels, is a sign-free map of where
        # things move; coordinate planes let pooled features say where and when that is.
        n, _, t, h, w = x.shape
        moving = (x - x.mean(dim=2, keepdim=True)).abs().sum(dim=1, keepdim=True)
        step = (x[:, :, 1:] - x[:, :, :-1]).abs().sum(dim=1, keepdim=True)
        step = torch.cat([step, step[:, :, -1:]], dim=2) if t > 1 else torch.zeros_like(moving)
        ys = torch.linspace(-1.0, 1.0, h).view(1, 1, 1, h, 1).expand(n, 1, t, h, w)
        xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, 1, w).expand(n, 1, t, h, w)
        ts = torch.linspace(-1.0, 1.0, t).view(1, 1, t, 1, 1).expand(n, 1, t, h, w)
        # their products with time make a velocity linear in the pooled features
        return torch.cat([x, moving, step, ys, xs, ts, moving * ys * ts, moving * xs * ts], dim=1)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self._inputs(x)).mean(dim=(2, 3, 4))
        out: torch.Tensor = F.gelu(self.embed(h))
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Direction, speed and frame-order logits ``(N, 8)``, ``(N, 2)``, ``(N,)`` (the
        last > 0: frames look shuffled)."""
        f = self._embed(x)
        return self.direction_head(f), self.speed_head(f), self.order_head(f)[:, 0]

    def _batched(self, x: torch.Tensor, fn: Any, batch_size: int) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                outs = [fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was)
        return torch.cat(outs)

    def features(
        self, videos: torch.Tensor | np.ndarray[Any, Any], *, batch_size: int = 64
    ) -> np.ndarray[Any, Any]:
        """The penultimate layer ``(N, F)`` (float64) for videos ``(N, C, T, H, W)``."""
        x = self._check(videos)
        return self._batched(x, self._embed, batch_size).double().numpy()

    def predict(
        self, videos: torch.Tensor | np.ndarray[Any, Any], *, batch_size: int = 64
    ) -> MotionPrediction:
        """The direction and speed each video's first digit moves with."""
        x = self._check(videos)
        logits = self._batched(x, lambda b: torch.cat(self(b)[:2], dim=1), batch_size)
        n_dir = len(_DIRECTION_NAMES)
        d = logits[:, :n_dir].argmax(1).tolist()
        s = logits[:, n_dir:].argmax(1).tolist()
        return MotionPrediction(
            tuple(_DIRECTION_NAMES[i] for i in d), tuple(_SPEED_NAMES[i] for i in s)
        )

    def accuracy(self, dataset: ProceduralVideos, *, n: int = 256) -> dict[str, float]:
        """Share of items ``0 .. n-1`` whose direction (and speed) it names right."""
        videos, directions, speeds = _labelled(dataset, n)
        pred = self.predict(videos)
        return {
            "direction": _share(pred.directions, directions),
            "speed": _share(pred.speeds, speeds),
        }


def track_motion(videos: torch.Tensor | np.ndarray[Any, Any]) -> MotionPrediction:
    """Model-free direction and speed of the moving thing in each video ``(N, C, T, H, W)``.

    Per pixel the clip's median over frames is its static background; what differs from it,
    summed over channels, 3x3-smoothed and kept above each frame's 80th percentile, weighs a
    centroid per frame. A least-squares line through the centroids gives a velocity: its
    direction is the nearest of the 8 names, its travel over the clip (relative to the shorter
    side) reads ``fast`` above the midpoint of the two speeds. Meant for one moving object
    (``easy`` procedural videos); it needs no training, so it cross-checks the evaluator on
    generated videos. On held-out easy videos it names 99.6 % of directions, and 96 % with
    Gaussian noise of std 0.1 added.
    """
    x = torch.as_tensor(videos).detach().float()
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or x.shape[2] < 2:
        raise NasError(f"videos must be (N, C, T, H, W) with T >= 2, got {tuple(x.shape)}")
    n, _, t, h, w = x.shape
    fg = (x - x.median(dim=2, keepdim=True).values).abs().sum(dim=1)  # (N, T, H, W)
    fg = F.avg_pool2d(fg.reshape(n * t, 1, h, w), 3, 1, 1, count_include_pad=False)
    fg = fg.reshape(n, t, h, w)
    weight = (fg - fg.flatten(2).quantile(0.8, dim=2)[..., None, None]).clamp_min(0)
    mass = weight.sum(dim=(2, 3)).clamp_min(1e-8)
    cy = (weight * torch.arange(h, dtype=x.dtype).view(1, 1, h, 1)).sum(dim=(2, 3)) / mass
    cx = (weight * torch.arange(w, dtype=x.dtype).view(1, 1, 1, w)).sum(dim=(2, 3)) / mass
    tc = torch.arange(t, dtype=x.dtype) - (t - 1) / 2
    v = torch.stack([(cy * tc).sum(1), (cx * tc).sum(1)], dim=1) / (tc * tc).sum()
    units = torch.tensor([DIRECTIONS[k] for k in _DIRECTION_NAMES], dtype=x.dtype)
    direction = (v @ units.T).argmax(dim=1).tolist()
    travel = v.norm(dim=1) * (t - 1) / min(h, w)
    slow, fast = SPEEDS["slow"], SPEEDS["fast"]
    is_fast = (travel > 0.5 * (slow + fast)).tolist()
    return MotionPrediction(
        tuple(_DIRECTION_NAMES[i] for i in direction),
        tuple("fast" if f else "slow" for f in is_fast),
    )


def _share(a: Sequence[str], b: Sequence[str]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def _labelled(dataset: ProceduralVideos, n: int) -> tuple[torch.Tensor, list[str], list[str]]:
    if n < 1 or n > len(dataset):
        raise NasError(f"n must be in 1..{len(dataset)}, got {n}")
    videos = torch.stack([dataset[i]["video"] for i in range(n)])
    specs = [dataset.describe(i).objects[0] for i in range(n)]
    return videos, [o.direction for o in specs], [o.speed for o in specs]


def train_video_evaluator(
    geometry: Geometry,
    *,
    difficulty: str = "easy",
    seed: int = 0,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    noise: float = 0.2,
    background: float = DEFAULT_BACKGROUND,
    colours: str = DEFAULT_COLOURS,
    cache_dir: str | Path | None = DEFAULT_EVALUATOR_CACHE,
) -> VideoEvaluator:
    """Train (or load from ``cache_dir``) an evaluator for procedural videos at ``geometry``.

    Trains on the ``train`` split of :class:`ProceduralVideos` (``seed``, ``difficulty``), a
    fresh batch each step, to name the first digit's direction and speed and to tell a
    quarter of the batch, frame-shuffled, from real clips; Adam with a cosine-decayed learning
    rate, on the CPU, weights seeded from ``seed``: the same settings give the same weights.
    Half of each batch gets Gaussian noise (std up to ``noise``) and a quarter a slight blur,
    so that the artefacts of generated videos do not read as motion (see
    :class:`EvaluatorConfig`).
    The cache file is ``cache_dir/evaluator-<key>.safetensors``, ``<key>`` a hash of every
    setting; ``cache_dir=None`` neither reads nor writes one.
    """
    config = EvaluatorConfig.for_geometry(
        geometry,
        difficulty=difficulty,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        noise=noise,
        background=background,
        colours=colours,
    )
    if cache_dir is None:
        return _train(config)
    path = Path(cache_dir).expanduser() / f"evaluator-{config.key()}.safetensors"
    if path.is_file():
        return _load(path, config)
    # processes sharing the cache (workers of one validation) train it once: the others wait
    with locked(path.with_name(path.name + ".lock")):
        if path.is_file():
            return _load(path, config)
        model = _train(config)
        _save(path, model)
    return model


def _train(config: EvaluatorConfig) -> VideoEvaluator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VideoEvaluator(config)
    data = config.dataset("train")
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    model.train()
    n = len(data)
    b = config.batch_size
    for step in range(config.steps):
        idx = [(step * b + j) % n for j in range(b)]
        x = torch.stack([data[i]["video"] for i in idx])
        objs = [data.describe(i).objects[0] for i in idx]
        yd = torch.tensor([_DIRECTION_NAMES.index(o.direction) for o in objs])
        ys = torch.tensor([_SPEED_NAMES.index(o.speed) for o in objs])
        shuffled = shuffle_frames(x[: max(1, b // 4)], seed=_mix(config.seed, step))
        x = _augment(torch.cat([x, shuffled]), config.noise, _mix(config.seed, step, 0xA6))
        ld, ls, lo = model(x)
        order = torch.cat([torch.zeros(b), torch.ones(shuffled.shape[0])])
        loss = (
            F.cross_entropy(ld[:b], yd)
            + F.cross_entropy(ls[:b], ys)
            + F.binary_cross_entropy_with_logits(lo, order)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
    return model.eval()


def _augment(x: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Noise on a random half of the videos (std ~ U(0, noise) each), a 3x3 box blur on a
    random quarter; the others stay clean. Deterministic from ``seed``."""
    if noise <= 0:
        return x
    gen = torch.Generator().manual_seed(seed)
    n, c, t, h, w = x.shape
    u = torch.rand(n, generator=gen)
    blurred = F.avg_pool2d(
        F.pad(x.reshape(n * c * t, 1, h, w), (1, 1, 1, 1), mode="replicate"), 3, stride=1
    ).reshape(x.shape)
    blur = (u >= 0.5) & (u < 0.75)
    x = torch.where(blur.view(n, 1, 1, 1, 1), blurred, x)
    std = torch.rand(n, generator=gen) * noise * (u < 0.5)
    out: torch.Tensor = x + std.view(n, 1, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return out.clamp(-1.0, 1.0)


def _mix(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _save(path: Path, model: VideoEvaluator) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": _FORMAT, "config": json.dumps(asdict(model.config), sort_keys=True)}
    atomic_write_bytes(path, save(tensors, metadata=meta))  # never a half-written cache file


def _load(path: Path, config: EvaluatorConfig) -> VideoEvaluator:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:
        raise NasError(f"{path}: not a readable evaluator cache file ({e}); delete it") from None
    if meta.get("format") != _FORMAT or json.loads(meta.get("config", "{}")) != asdict(config):
        raise NasError(f"{path}: evaluator cache file does not match its settings; delete it")
    model = VideoEvaluator(config)
    model.load_state_dict(state)
    return model.eval()


def frechet_distance(
    feats_a: np.ndarray[Any, Any] | torch.Tensor, feats_b: np.ndarray[Any, Any] | torch.Tensor
) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, F)`` and ``(M, F)``.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with sample covariances and the
    real part of scipy's matrix square root (FID/FVD's formula). 0 for identical sets,
    symmetric. With few samples per feature it is biased upwards: compare figures computed
    with the same ``N`` (for example against two sets of real videos).
    """
    from scipy import linalg

    a = np.asarray(torch.as_tensor(feats_a).detach().double().cpu().numpy())
    b = np.asarray(torch.as_tensor(feats_b).detach().double().cpu().numpy())
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise NasError(
            f"features must be (N, F) and (M, F) with the same F, got {a.shape} and {b.shape}"
        )
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise NasError("frechet_distance needs at least 2 feature vectors per set")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise NasError("features contain NaN or inf")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # singular covariances (fewer samples than features) are expected; the real part of
        # the root is still the standard estimate
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    tr = float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(root)))
    return max(float(np.sum((mu_a - mu_b) ** 2)) + tr, 0.0)


def shuffle_frames(videos: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """``(N, C, T, H, W)`` videos with each video's frames in a seeded random order (never the
    original one when ``T > 1``): the frames of real videos without their motion."""
    if videos.ndim != 5:
        raise NasError(f"videos must be (N, C, T, H, W), got {tuple(videos.shape)}")
    t = videos.shape[2]
    if videos.shape[0] == 0:
        return videos.clone()
    rng = np.random.default_rng(seed)
    out = []
    for v in videos:
        perm = rng.permutation(t)
        while t > 1 and (perm == np.arange(t)).all():
            perm = rng.permutation(t)
        out.append(v[:, torch.as_tensor(perm)])
    return torch.stack(out)


def evaluate_generation(
    model: nn.Module,
    *,
    n: int = 64,
    steps: int = 8,
    seed: int = 0,
    evaluator: VideoEvaluator,
    objective: str = "rectified_flow",
    guidance: float = 1.0,
) -> dict[str, float]:
    """Sample ``n`` videos from a trained VideoUNet for held-out captions and score them.

    Captions and reference videos are items ``0 .. n-1`` of the ``test`` split of the
    evaluator's procedural data; a second reference set is the ``val`` split. Samples
    (``sample_video``, ``steps`` steps, noise from ``seed``, classifier-free ``guidance``) are
    clipped to [-1, 1] like the data.
    Returns:

    - ``fd``: domain Frechet distance, samples vs test videos (lower is better);
    - ``fd_real``: the same between val and test videos: the floor at this ``n``;
    - ``motion_accuracy``: share of samples whose predicted direction is their caption's;
    - ``speed_accuracy``: the same for speed;
    - ``real_motion_accuracy``: the evaluator's direction accuracy on the test videos (the
      ceiling of ``motion_accuracy``);
    - ``tracked_motion_accuracy`` / ``tracked_speed_accuracy``: the same two shares by the
      model-free :func:`track_motion` (for one-digit ``easy`` data), a check that needs no
      trained network;
    - ``flicker`` / ``flicker_real``: :func:`flicker_score` of the samples / test videos.
    """
    cfg = evaluator.config
    g = getattr(model, "geometry", None)
    if g is None:
        raise NasError("evaluate_generation needs a VideoUNet (a model with a geometry)")
    shape = (g.latent_channels, g.frames, g.latent_height, g.latent_width)
    if shape != cfg.video_shape:
        raise NasError(
            f"the model makes videos of shape {shape} but the evaluator reads {cfg.video_shape}; "
            "train the evaluator at the model's geometry"
        )
    if (g.text_length, g.text_dim) != (cfg.text_length, cfg.text_dim):
        raise NasError(
            f"the model's text shape {(g.text_length, g.text_dim)} differs from the evaluator's "
            f"{(cfg.text_length, cfg.text_dim)}"
        )
    if _bad_int(n, 2):
        raise NasError(f"n must be an integer >= 2, got {n!r}")
    test = cfg.dataset("test")
    real, directions, speeds = _labelled(test, n)
    other = torch.stack([cfg.dataset("val")[i]["video"] for i in range(n)])
    text = torch.stack([test[i]["text"] for i in range(n)])
    samples = sample_video(
        model, text, steps=steps, seed=seed, objective=objective, guidance=guidance
    )
    samples = samples.float().cpu().clamp(-1.0, 1.0)
    f_real = evaluator.features(real)
    f_samples = evaluator.features(samples)
    pred = evaluator.predict(samples)
    pred_real = evaluator.predict(real)
    tracked = track_motion(samples)
    return {
        "fd": frechet_distance(f_samples, f_real),
        "fd_real": frechet_distance(evaluator.features(other), f_real),
        "motion_accuracy": _share(pred.directions, directions),
        "speed_accuracy": _share(pred.speeds, speeds),
        "real_motion_accuracy": _share(pred_real.directions, directions),
        "tracked_motion_accuracy": _share(tracked.directions, directions),
        "tracked_speed_accuracy": _share(tracked.speeds, speeds),
        "flicker": flicker_score(samples),
        "flicker_real": flicker_score(real),
    }
