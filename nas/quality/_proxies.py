"""Proxies: cheap stand-ins for an arch's trained quality. Lower is better, always.

A proxy is anything with a ``name`` and ``evaluate(arch) -> float`` (:class:`Proxy`), so the
search can use it as an objective. All of them work at *proxy scale*: the space's backbone at
``width_mult`` (default 0.125) on a small video (default 8 frames of 16x16 latents, 16 text
tokens of width 64), built with a seeded init exactly as :func:`nas.quality.train` builds it.

Zero-cost proxies (one forward, or one backward, at initialisation):

- :class:`NaswotProxy` (``"naswot"``): NASWOT (Mellor et al., 2021), minus the log-determinant of
  the binary activation-pattern kernel of a fixed seeded batch of noised videos.
- :class:`SynflowProxy` (``"synflow"``): minus the log of SynFlow saliency (Tanaka et al.,
  2020) summed over the temporal parameters.
- :class:`ParamsProxy` (``"params"``): minus the log of the temporal parameter count; a
  baseline any other proxy has to beat.

Zero-initialised temporal ops: every temporal op's last projection is zero at init, so at init
every arch computes the image backbone's function and a proxy computed on the built model as
is would score every arch the same. The zero-cost proxies therefore score the op's function
*before* its output is zeroed: for scoring only, each still-zero output projection (``conv``
of the conv ops, ``proj_out`` of the attention ops) gets PyTorch's default init for that layer
(uniform in +-1/sqrt(fan_in)) drawn from a generator seeded by ``(seed, slot)``, so the same
op at the same slot gets the same weights in every arch; the zeros are put back afterwards
(:func:`unzeroed_outputs`). A projection that is already non-zero (a trained model) is used as
it is.

Low-fidelity proxy:

- :class:`TrainingProxy` (``"train"``): trains ``steps`` (16) optimizer steps at proxy scale,
  on 8x8 latents, with :func:`nas.quality.train`, then returns the validation loss at high
  noise (``tau=800`` by default: fixed held-out videos, fixed noise, deterministic) of the EMA
  (or raw) weights. :meth:`TrainingProxy.evaluate_with_reports` trains the same run in rungs
  (resuming from a checkpoint, bit for bit the same as one run) and reports after each, for
  Optuna pruners.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import NasError
from nas.model import (
    TemporalAttention,
    TemporalConv1d,
    TemporalConv3d,
    VideoUNet,
    build_video_unet,
)
from nas.quality._data import DIFFICULTIES, ProceduralVideos
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS, DEFAULT_DIFFICULTY
from nas.quality._eval import validation_loss
from nas.quality._objective import OBJECTIVES, corrupt
from nas.quality._registry import PROXIES, Proxy, ProxyPruned, list_proxies, proxy_class
from nas.quality._train import TrainConfig, TrainResult, train
from nas.space import Arch, Geometry, GeometryOverride, SearchSpace

__all__ = [
    "DEFAULT_PROXY_GEOMETRY",
    "DEFAULT_PROXY_WIDTH_MULT",
    "DEFAULT_TRAIN_PROXY_GEOMETRY",
    "PROXIES",
    "NaswotProxy",
    "ParamsProxy",
    "ProbeBatch",
    "Proxy",
    "ProxyPruned",
    "Rung",
    "SynflowProxy",
    "TrainingProxy",
    "list_proxies",
    "make_proxy",
    "naswot_score",
    "output_projections",
    "probe_batch",
    "proxy_geometry",
    "synflow_score",
    "unzeroed_outputs",
]

DEFAULT_PROXY_WIDTH_MULT = 0.125
# The proxy-scale video: small enough for a 2-core CPU, long enough for motion to matter.
DEFAULT_PROXY_GEOMETRY = GeometryOverride(
    frames=8, latent_height=16, latent_width=16, text_length=16, text_dim=64
)


# The training proxy's default video: the same with 8x8 latents, 4x fewer pixels per step, so
# it affords 16 steps at under 5 % of a 150-step run at DEFAULT_PROXY_GEOMETRY. On the default
# space's validation (8 arches, 3 seeds) this ranked better than 6 steps at 16x16 for the same
# cost (Kendall 1.00 vs 0.79); more steps at a lower resolution beat fewer at full resolution.
DEFAULT_TRAIN_PROXY_GEOMETRY = replace(DEFAULT_PROXY_GEOMETRY, latent_height=8, latent_width=8)


# ---------------------------------------------------------------------------------------------
# proxy scale
# ---------------------------------------------------------------------------------------------


def proxy_geometry(
    space: SearchSpace,
    overrides: GeometryOverride | Mapping[str, Any] | None = None,
    *,
    base: GeometryOverride = DEFAULT_PROXY_GEOMETRY,
) -> Geometry:
    """The space's geometry with ``base`` (:data:`DEFAULT_PROXY_GEOMETRY`), then ``overrides``."""
    return base.merged(GeometryOverride.coerce(overrides)).apply(space.geometry)


def _build(
    space: SearchSpace, arch: Arch, width_mult: float, geometry: Geometry, seed: int
) -> VideoUNet:
    """The model ``train`` would start from with this seed (same RNG use, same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_video_unet(space, arch, width_mult=width_mult, geometry=geometry)
    return model.eval()


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True, eq=False)
class ProbeBatch:
    """A fixed batch for zero-cost proxies: noised videos at one timestep, with their text."""

    sample: torch.Tensor  # (B, C, T, H, W) x_t
    timestep: torch.Tensor  # (B,) the model's timestep input
    text: torch.Tensor  # (B, L, D)

    @property
    def videos(self) -> int:
        return int(self.sample.shape[0])


def probe_batch(
    geometry: Geometry,
    *,
    n_videos: int = 16,
    tau: int = 800,
    seed: int = 0,
    difficulty: str = DEFAULT_DIFFICULTY,
    background: float = DEFAULT_BACKGROUND,
    colours: str = DEFAULT_COLOURS,
    objective: str = "rectified_flow",
) -> ProbeBatch:
    """``n_videos`` procedural videos (train split, the given data settings) noised to ``tau``
    with seeded noise."""
    if n_videos < 2:
        raise NasError(f"a probe batch needs at least 2 videos, got {n_videos}")
    if objective not in OBJECTIVES:
        raise NasError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
    data = ProceduralVideos.for_geometry(
        geometry, difficulty=difficulty, seed=seed, background=background, colours=colours
    )
    items = [data[i] for i in range(n_videos)]
    x0 = torch.stack([it["video"] for it in items])
    text = torch.stack([it["text"] for it in items])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(_seed(seed, 0x9B0E)))
    xt, model_t, _ = corrupt(objective, x0, noise, torch.full((n_videos,), float(tau)))
    return ProbeBatch(xt, model_t, text)


# ---------------------------------------------------------------------------------------------
# zero-init handling
# ---------------------------------------------------------------------------------------------


def output_projections(
    model: VideoUNet,
) -> Iterator[tuple[str, nn.Linear | nn.Conv2d | nn.Conv3d]]:
    """(module key, layer) of each temporal op's zero-initialised last projection."""
    for key, op in model.temporal.items():
        if isinstance(op, (TemporalConv1d, TemporalConv3d)):
            yield key, op.conv
        elif isinstance(op, TemporalAttention):
            yield key, op.proj_out


@contextlib.contextmanager
def unzeroed_outputs(model: VideoUNet, seed: int = 0, scale: float = 1.0) -> Iterator[int]:
    """Give every still-zero temporal output projection a seeded random init, for a while.

    Inside the block each such layer has PyTorch's default init (``reset_parameters``: uniform
    in +-1/sqrt(fan_in)) times ``scale``, drawn from a generator seeded by ``(seed, slot)``;
    projections that are already non-zero are left alone. On exit the zeros are restored, so
    the model is the identity-at-init model again. Yields the number of layers changed.
    """
    saved: list[tuple[list[nn.Parameter], list[torch.Tensor]]] = []
    try:
        for key, layer in output_projections(model):
            params = list(layer.parameters())
            if any(bool(torch.count_nonzero(p)) for p in params):
                continue
            saved.append((params, [p.detach().clone() for p in params]))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_seed(seed, zlib.crc32(key.encode())))
                layer.reset_parameters()
            if scale != 1.0:
                with torch.no_grad():
                    for p in params:
                        p.mul_(scale)
        yield len(saved)
    finally:
        with torch.no_grad():
            for params, values in saved:
                for p, v in zip(params, values, strict=True):
                    p.copy_(v)


# ---------------------------------------------------------------------------------------------
# zero-cost scores
# ---------------------------------------------------------------------------------------------


def naswot_score(
    model: VideoUNet,
    batch: ProbeBatch,
    *,
    reinit_seed: int = 0,
    init_scale: float = 1.0,
    normalize: bool = False,
) -> float:
    """NASWOT's ``log |K_H|`` for ``model`` on ``batch`` (higher: more distinct patterns).

    Each video of the batch gets a binary code: the signs of the pre-activations of every
    nonlinear unit that runs after the first temporal slot, namely the inputs of the backbone's
    SiLUs on feature maps (both activations of every later ResNet block and the output
    activation), the GroupNorm outputs the temporal conv ops feed to their SiLU, and the inputs
    of the temporal FFN GELUs. ``K_H[i, j]`` is the number of units on which videos ``i`` and
    ``j`` agree (``N_A - hamming``), as in Mellor et al.; ``normalize`` divides by the number
    of units ``N_A`` first, which removes the ``B log N_A`` term that rewards more units.

    The zero-initialised temporal outputs are given a seeded random init for the measurement
    (:func:`unzeroed_outputs`) and restored afterwards. No gradients; the model's mode is
    restored.
    """
    n = batch.videos
    agree = torch.zeros(n, n, dtype=torch.float64)
    units = 0
    started = False

    def add(x: torch.Tensor) -> None:
        nonlocal agree, units
        s = (x.detach().reshape(n, -1) > 0).to(torch.float64) * 2.0 - 1.0
        agree += s @ s.T
        units += s.shape[1]

    def mark_start(*_: Any) -> None:
        nonlocal started
        started = True

    def pre_hook(_: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0]
        if started and isinstance(x, torch.Tensor) and x.ndim >= 3:
            add(x)

    def out_hook(_: nn.Module, __: Any, out: torch.Tensor) -> None:
        if started:
            add(out)

    handles = [model.unet.down_blocks[0].resnets[0].register_forward_hook(mark_start)]
    for m in model.unet.modules():
        if isinstance(m, nn.SiLU):  # a 2-D input is the time embedding: the same for every arch
            handles.append(m.register_forward_pre_hook(pre_hook))
    for op in model.temporal.values():
        if isinstance(op, (TemporalConv1d, TemporalConv3d)):
            handles.append(op.norm.register_forward_hook(out_hook))
        for m in op.modules():
            if isinstance(m, nn.GELU):
                handles.append(m.register_forward_pre_hook(pre_hook))
    was_training = model.training
    model.eval()
    try:
        with unzeroed_outputs(model, reinit_seed, init_scale), torch.no_grad():
            model(batch.sample, batch.timestep, batch.text)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if units == 0:
        raise NasError("NASWOT found no activations to score (an empty backbone?)")
    kernel = (units + agree) / 2.0
    if normalize:
        kernel = kernel / units
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


def synflow_score(
    model: VideoUNet, batch: ProbeBatch, *, reinit_seed: int = 0, init_scale: float = 1.0
) -> float:
    """SynFlow saliency of the temporal parameters: ``sum |theta * dR/dtheta|``.

    As in Tanaka et al., every parameter is replaced by its absolute value and ``R`` is the sum
    of the network's output; the input is ``batch`` rather than all ones (a constant input is
    zero after the first GroupNorm). Zero-initialised temporal outputs are re-initialised for
    the measurement (:func:`unzeroed_outputs`); parameters, gradients and mode are restored.
    Returns 0 for an arch without temporal parameters.
    """
    temporal = model.temporal_parameters()
    if not temporal:
        return 0.0
    params = list(model.parameters())
    grads_wanted = [p.requires_grad for p in params]
    was_training = model.training
    model.eval()
    with unzeroed_outputs(model, reinit_seed, init_scale):
        signs = [torch.sign(p.detach()) for p in params]
        try:
            with torch.no_grad():
                for p in params:
                    p.abs_()
            for p in temporal:
                p.requires_grad_(True)
            model.zero_grad(set_to_none=True)
            out = model(batch.sample, batch.timestep, batch.text)
            out.double().sum().backward()
            total = 0.0
            for p in temporal:
                if p.grad is not None:
                    total += float((p.detach().double() * p.grad.double()).abs().sum())
        finally:
            model.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p, s in zip(params, signs, strict=True):
                    p.mul_(s)
            for p, want in zip(params, grads_wanted, strict=True):
                p.requires_grad_(want)
            model.train(was_training)
    return total


# ---------------------------------------------------------------------------------------------
# proxies
# ---------------------------------------------------------------------------------------------


def _check_difficulty(difficulty: str) -> None:
    if difficulty not in DIFFICULTIES:
        raise NasError(f"difficulty {difficulty!r} is not one of {list(DIFFICULTIES)}")


class _ZeroCost:
    """Shared set-up of the at-init proxies: a proxy-scale build and a fixed probe batch."""

    name = "zero-cost"

    def __init__(
        self,
        space: SearchSpace,
        *,
        width_mult: float = DEFAULT_PROXY_WIDTH_MULT,
        geometry: GeometryOverride | Mapping[str, Any] | None = None,
        difficulty: str = DEFAULT_DIFFICULTY,
        background: float = DEFAULT_BACKGROUND,
        colours: str = DEFAULT_COLOURS,
        n_videos: int = 16,
        timestep: int = 800,
        seed: int = 0,
        init_scale: float = 1.0,
    ) -> None:
        _check_difficulty(difficulty)
        if not width_mult > 0:
            raise NasError(f"width_mult must be > 0, got {width_mult!r}")
        self.space = space
        self.width_mult = width_mult
        self.geometry = proxy_geometry(space, geometry)
        self.difficulty = difficulty
        self.background = background
        self.colours = colours
        self.n_videos = n_videos
        self.timestep = timestep
        self.seed = seed
        self.init_scale = init_scale
        self._batch: ProbeBatch | None = None
        self._cache: dict[str, float] = {}

    @property
    def batch(self) -> ProbeBatch:
        if self._batch is None:
            self._batch = probe_batch(
                self.geometry,
                n_videos=self.n_videos,
                tau=self.timestep,
                seed=self.seed,
                difficulty=self.difficulty,
                background=self.background,
                colours=self.colours,
            )
        return self._batch

    def build(self, arch: Arch) -> VideoUNet:
        """The proxy-scale model of ``arch`` at init (its temporal outputs still zero)."""
        return _build(self.space, arch, self.width_mult, self.geometry, self.seed)

    def _score(self, model: VideoUNet) -> float:
        raise NotImplementedError

    def evaluate(self, arch: Arch) -> float:
        """The proxy value of ``arch`` (lower is better); cached by ``arch_id``."""
        key = arch.arch_id
        if key not in self._cache:
            self._cache[key] = self._score(self.build(arch))
        return self._cache[key]


class NaswotProxy(_ZeroCost):
    """``-log |K_H|`` (NASWOT, :func:`naswot_score`) at init, at proxy scale. Lower is better.

    The probe batch is ``n_videos`` procedural videos noised to ``timestep`` (800: high noise,
    where temporal layers matter) with fixed noise; the zeroed temporal outputs get a seeded
    default init for the measurement only (see the module docstring). ``normalize`` scores the
    fraction of agreeing units instead of their count.
    """

    name = "naswot"

    def __init__(
        self,
        space: SearchSpace,
        *,
        width_mult: float = DEFAULT_PROXY_WIDTH_MULT,
        geometry: GeometryOverride | Mapping[str, Any] | None = None,
        difficulty: str = DEFAULT_DIFFICULTY,
        background: float = DEFAULT_BACKGROUND,
        colours: str = DEFAULT_COLOURS,
        n_videos: int = 16,
        timestep: int = 800,
        seed: int = 0,
        init_scale: float = 1.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(
            space,
            width_mult=width_mult,
            geometry=geometry,
            difficulty=difficulty,
            background=background,
            colours=colours,
            n_videos=n_videos,
            timestep=timestep,
            seed=seed,
            init_scale=init_scale,
        )
        self.normalize = normalize

    def _score(self, model: VideoUNet) -> float:
        return -naswot_score(
            model,
            self.batch,
            reinit_seed=self.seed,
            init_scale=self.init_scale,
            normalize=self.normalize,
        )


class SynflowProxy(_ZeroCost):
    """``-log(1 + SynFlow)`` of the temporal parameters (:func:`synflow_score`) at init.

    Lower is better; an arch without temporal layers scores 0, the worst possible value.
    """

    name = "synflow"

    def _score(self, model: VideoUNet) -> float:
        s = synflow_score(model, self.batch, reinit_seed=self.seed, init_scale=self.init_scale)
        return -math.log1p(s)


class ParamsProxy(_ZeroCost):
    """``-log(1 + temporal parameters)`` at proxy scale: "bigger is better", a baseline."""

    name = "params"

    def _score(self, model: VideoUNet) -> float:
        return -math.log1p(sum(p.numel() for p in model.temporal_parameters()))


@dataclass(frozen=True)
class Rung:
    """One measurement of a :class:`TrainingProxy` run: its value after ``step`` steps."""

    step: int
    value: float  # validation loss at the proxy's timestep (EMA or trained weights)


class TrainingProxy:
    """Train ``steps`` steps at proxy scale, then the validation loss at ``timestep``.

    Training is :func:`nas.quality.train` with ``TrainConfig(steps, batch_size, lr, width_mult,
    geometry, difficulty, seed)`` (AdamW, EMA, rectified flow, the space's frozen backbone);
    ``geometry`` overrides :data:`DEFAULT_TRAIN_PROXY_GEOMETRY` (8 frames of 8x8 latents).
    The value is the validation loss at ``timestep`` (default 800: high noise, where the
    temporal layers matter and, in our measurements, rankings agree across seeds) on
    ``n_val`` held-out procedural videos with fixed noise, of the EMA weights (``ema=True``)
    or the trained ones. Deterministic for a seed on CPU. Results are cached by ``arch_id``.
    Training runs on CUDA when present (``device``: ``auto``), else the CPU.

    :meth:`evaluate_with_reports` trains the same run in rungs (``rungs`` are fractions of
    ``steps``), resuming from a checkpoint in a temporary folder, and calls ``report(step,
    value)`` after each; when it returns True the run stops with :class:`ProxyPruned`. The
    final value equals :meth:`evaluate`'s (the trainer resumes bit for bit).
    """

    name = "train"

    def __init__(
        self,
        space: SearchSpace,
        *,
        steps: int = 16,
        rungs: Sequence[float] = (0.25, 0.5, 1.0),
        width_mult: float = DEFAULT_PROXY_WIDTH_MULT,
        geometry: GeometryOverride | Mapping[str, Any] | None = None,
        difficulty: str = DEFAULT_DIFFICULTY,
        background: float = DEFAULT_BACKGROUND,
        colours: str = DEFAULT_COLOURS,
        batch_size: int = 4,
        lr: float = 1e-3,
        seed: int = 0,
        timestep: int = 800,
        n_val: int = 16,
        ema: bool = True,
        progress: bool = False,
        device: str = "auto",
    ) -> None:
        _check_difficulty(difficulty)
        if steps < 1:
            raise NasError(f"TrainingProxy steps must be >= 1, got {steps}")
        if not rungs or any(not 0 < f <= 1 for f in rungs):
            raise NasError(f"rungs must be fractions in (0, 1], got {list(rungs)}")
        self.space = space
        self.steps = steps
        self.rung_steps = sorted({max(1, round(f * steps)) for f in rungs} | {steps})
        self.geometry = proxy_geometry(space, geometry, base=DEFAULT_TRAIN_PROXY_GEOMETRY)
        self.difficulty = difficulty
        self.timestep = timestep
        self.n_val = n_val
        self.ema = ema
        self.progress = progress
        self.config = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width_mult=width_mult,
            geometry=GeometryOverride.between(space.geometry, self.geometry),
            difficulty=difficulty,
            background=background,
            colours=colours,
            seed=seed,
            checkpoint_every=steps,
            keep_checkpoints=1,
            log_every=steps,
            device=device,
        )
        self._val = ProceduralVideos.for_geometry(
            self.geometry,
            split="val",
            difficulty=difficulty,
            background=background,
            colours=colours,
        )
        self._cache: dict[str, float] = {}
        self._rungs: dict[str, list[Rung]] = {}

    def rungs(self, arch_id: str) -> list[Rung]:
        """The measurements of a finished (or pruned) arch, oldest first; [] if none."""
        return list(self._rungs.get(arch_id, []))

    def _measure(self, res: TrainResult) -> Rung:
        model = res.ema_model() if self.ema else res.model
        taus = (self.timestep,)
        loss = validation_loss(model, self._val, timesteps=taus, n_videos=self.n_val)
        return Rung(res.step, loss[self.timestep])

    def evaluate(self, arch: Arch) -> float:
        """Train ``steps`` steps in one go and return the value (cached by ``arch_id``)."""
        key = arch.arch_id
        if key not in self._cache:
            res = train(self.space, arch, self.config, None, progress=self.progress)
            rung = self._measure(res)
            self._rungs[key] = [rung]
            self._cache[key] = rung.value
        return self._cache[key]

    def evaluate_with_reports(self, arch: Arch, report: Callable[[int, float], bool]) -> float:
        """Train in rungs, ``report(step, value)`` after each; raise :class:`ProxyPruned` when
        it returns True. A cached arch replays its recorded rungs (and may be pruned again)."""
        key = arch.arch_id
        if key in self._cache:
            for rung in self._rungs.get(key, []):
                if report(rung.step, rung.value):
                    raise ProxyPruned(key, rung.step, rung.value)
            return self._cache[key]
        history: list[Rung] = []
        self._rungs[key] = history
        with tempfile.TemporaryDirectory(prefix="nas-proxy-") as tmp:
            for k in self.rung_steps:
                res = train(
                    self.space, arch, replace(self.config, steps=k), tmp, progress=self.progress
                )
                rung = self._measure(res)
                history.append(rung)
                if report(k, rung.value):
                    raise ProxyPruned(key, k, rung.value)
        self._cache[key] = history[-1].value
        return history[-1].value


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def make_proxy(name: str, space: SearchSpace, **options: Any) -> Proxy:
    """The proxy called ``name`` for ``space``; ``options`` are its constructor's keywords.

    An unknown name or option is a ``NasError`` listing the valid ones.
    """
    factory = proxy_class(name)
    valid = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise NasError(f"proxy {name!r} has no option(s) {unknown}; options: {', '.join(valid)}")
    return factory(space, **options)
