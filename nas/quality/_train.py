"""The trainer: train an arch's VideoUNet on video data, with checkpoints, resume and DDP.

``train(space, arch, config, out_dir)`` is the one entry point; ``nas train`` and proxies call
it. With ``out_dir=None`` nothing is written (a proxy's in-memory run); otherwise the run folder
holds::

    config.json, arch.yaml        what was trained
    metrics.csv                   step, loss, lr, grad_norm, samples_per_s (one row per log_every)
    checkpoints/step_0000020/     model.safetensors   the trained weights (every key)
                                  ema.safetensors     the same with EMA values: export these
                                  optimizer.safetensors  AdamW state, flattened
                                  state.json          step, config, arch, losses, RNG states

A checkpoint folder is written under a temporary name and renamed, so a crash never leaves a
half checkpoint; ``state.json`` records each weights file's size and SHA-256. The newest
``step_*`` folder that verifies is the one to resume from (a truncated or corrupt newer one is
passed over, see :func:`find_checkpoint`). Running ``train`` again on a folder that has one
continues from it, bit for bit as if never stopped (on CPU): each step's batch, noise and
timesteps are functions of ``(seed, step, rank)`` alone.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each process trains on its shard of every
global batch (``batch_size`` per process) inside ``DistributedDataParallel``; rank 0 alone
writes files and shows progress.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nas import __version__
from nas.errors import NasError
from nas.fileio import atomic_write_bytes, atomic_write_text, fsync_dir
from nas.model import VideoUNet, build_video_unet
from nas.quality._data import (
    COLOURS,
    DIFFICULTIES,
    MAX_BACKGROUND,
    VideoItem,
    open_dataset,
)
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS, DEFAULT_DIFFICULTY
from nas.quality._objective import OBJECTIVES, corrupt, to_tau
from nas.space import Arch, Geometry, GeometryOverride, SearchSpace, arch_from_dict

__all__ = [
    "TrainConfig",
    "TrainResult",
    "find_checkpoint",
    "load_trained",
    "train",
    "train_geometry",
]

TIMESTEP_SAMPLING = ("logit_normal", "uniform")
STAGES = ("flow", "adversarial")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Settings a resumed run may change: none of them alters the trajectory.
RESUMABLE = frozenset(
    {
        "steps",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "num_workers",
        "device",
        "compile",
    }
)
METRICS_COLUMNS = ("step", "loss", "lr", "grad_norm", "samples_per_s")
CHECKPOINT_FORMAT = "nas-train-checkpoint/1"


@dataclass(frozen=True)
class TrainConfig:
    """How to train one arch. Defaults suit a proxy-scale run on procedural data."""

    steps: int = 1000  # optimizer steps in total (a resumed run may raise it)
    batch_size: int = 4  # videos per step, per process
    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW (decoupled) weight decay
    warmup_steps: int = 0  # linear LR warm-up from 0, then constant
    ema_decay: float = 0.999  # EMA of trainable weights, warmed up as min(decay, (1+s)/(10+s))
    grad_clip: float | None = 1.0  # max global grad norm; None: no clipping
    objective: str = "rectified_flow"  # "rectified_flow" (SnapGen-V) | "eps" (DDPM)
    timestep_sampling: str = "logit_normal"  # u ~ sigmoid(N(0, 1)) | "uniform"; tau = 1000 u
    text_dropout: float = 0.0  # share of videos trained with an empty caption (all-zero text),
    # which lets sample_video(guidance=...) apply classifier-free guidance
    precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU) | "fp32" | "bf16" | "fp16"
    # (fp16: CUDA only)
    freeze_spatial: bool | None = None  # None: the space's backbone.freeze_spatial
    width_mult: float = 1.0  # channel multiplier of the backbone (proxy scale)
    # over the space's geometry, e.g. GeometryOverride(frames=8) (or a mapping {"frames": 8})
    geometry: GeometryOverride = field(default_factory=GeometryOverride)
    data: str = "procedural"  # "procedural" or a folder of video files or latents
    difficulty: str = DEFAULT_DIFFICULTY  # procedural data: "easy" | "medium" | "hard"
    background: float = (
        DEFAULT_BACKGROUND  # procedural data: amplitude of the static background (0: flat)
    )
    colours: str = DEFAULT_COLOURS  # procedural data: digit colours, "random" | "positive"
    seed: int = 0  # model init, data order, noise and timesteps
    checkpoint_every: int = 500  # steps between checkpoints (the last step always gets one)
    keep_checkpoints: int = 2  # newest checkpoint folders kept
    log_every: int = 10  # steps per metrics.csv row and progress-bar update
    num_workers: int = 0  # DataLoader worker processes
    device: str = "auto"  # "auto" (CUDA if present) | "cpu" | "cuda" | "cuda:1" ...
    # torch.compile the steps' model: how it runs, not what it trains (like device). Minutes of
    # compilation per process, then faster steps (docs/benchmarks.md: worth it for long runs)
    compile: bool = False
    # the adversarial stage (nas.quality._adversarial): a few-step student of a teacher run
    stage: str = "flow"  # "flow" (the diffusion objective) | "adversarial"
    teacher: str | None = None  # adversarial: the teacher's run or step_* folder
    few_steps: int = 4  # adversarial: the student's Euler steps (its timestep grid)
    teacher_guidance: float = 3.0  # adversarial: the teacher's guidance in the distillation
    adv_weight: float = 0.1  # adversarial: weight of the student's adversarial (hinge) loss
    distill_weight: float = 1.0  # adversarial: weight of the distillation term
    guided_weight: float = 1.0  # adversarial: weight of the guided-velocity term at the grid
    disc_lr: float = 1e-4  # adversarial: AdamW learning rate of the discriminator's heads
    joint_images: bool = False  # adversarial: every other step trains on one-frame clips

    def __post_init__(self) -> None:
        # plain data in (a mapping, a Path): stored as the one typed form
        object.__setattr__(self, "geometry", GeometryOverride.coerce(self.geometry))
        object.__setattr__(self, "data", str(self.data))
        for name in (
            "steps",
            "batch_size",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "few_steps",
        ):
            if _bad_int(getattr(self, name), 1):
                raise NasError(
                    f"TrainConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}"
                )
        for name in ("warmup_steps", "num_workers", "seed"):
            if _bad_int(getattr(self, name), 0):
                raise NasError(
                    f"TrainConfig.{name} must be an integer >= 0, got {getattr(self, name)!r}"
                )
        if not 0 < self.lr < math.inf:
            raise NasError(f"TrainConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= self.weight_decay < math.inf:
            raise NasError(
                f"TrainConfig.weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if not 0 <= self.ema_decay < 1:
            raise NasError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise NasError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if not 0 < self.width_mult < math.inf:
            raise NasError(
                f"TrainConfig.width_mult must be a finite number > 0, got {self.width_mult!r}"
            )
        if not 0 <= self.background <= MAX_BACKGROUND:
            raise NasError(
                f"TrainConfig.background must be in [0, {MAX_BACKGROUND}], got {self.background!r}"
            )
        if not 0 <= self.text_dropout < 1:
            raise NasError(
                f"TrainConfig.text_dropout must be in [0, 1), got {self.text_dropout!r}; "
                "0.1 is the usual share for classifier-free guidance"
            )
        if not isinstance(self.compile, bool):
            raise NasError(f"TrainConfig.compile must be true or false, got {self.compile!r}")
        _check_stage(self)
        for name, allowed in (
            ("objective", OBJECTIVES),
            ("timestep_sampling", TIMESTEP_SAMPLING),
            ("precision", PRECISIONS),
            ("difficulty", DIFFICULTIES),
            ("colours", COLOURS),
        ):
            if getattr(self, name) not in allowed:
                raise NasError(
                    f"TrainConfig.{name} {getattr(self, name)!r} is not one of {list(allowed)}"
                )

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["geometry"] = self.geometry.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise NasError(f"unknown TrainConfig key(s) {unknown}; keys: {', '.join(names)}")
        return cls(**raw)


def _check_stage(c: TrainConfig) -> None:
    if c.stage not in STAGES:
        raise NasError(f"TrainConfig.stage {c.stage!r} is not one of {list(STAGES)}")
    if c.stage == "flow":
        if c.teacher is not None:
            raise NasError("a teacher is for --stage adversarial; stage flow trains without one")
        return
    if not c.teacher:
        raise NasError("--stage adversarial needs --teacher CKPT (a nas train run or step_ folder)")
    object.__setattr__(c, "teacher", str(c.teacher))
    if c.objective != "rectified_flow":
        raise NasError("the adversarial stage distils rectified-flow models only (not eps)")
    if c.few_steps > 8:
        raise NasError(f"TrainConfig.few_steps must be in 1..8, got {c.few_steps!r}")
    for name in ("teacher_guidance", "adv_weight", "distill_weight", "guided_weight"):
        if not 0 <= getattr(c, name) < math.inf:
            raise NasError(
                f"TrainConfig.{name} must be a finite number >= 0, got {getattr(c, name)!r}"
            )
    if not 0 < c.disc_lr < math.inf:
        raise NasError(f"TrainConfig.disc_lr must be a finite number > 0, got {c.disc_lr!r}")


def _bad_int(v: Any, minimum: int) -> bool:
    return isinstance(v, bool) or not isinstance(v, int) or v < minimum


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What :func:`train` returns. ``losses[k]`` is the (all-rank mean) loss of step ``k + 1``,
    from step 1 on, including the steps a resumed run inherited from its checkpoint."""

    step: int  # the last step trained
    start_step: int  # the step this call started from (0 unless resumed)
    losses: tuple[float, ...]
    grad_norms: tuple[float, ...]  # per step as losses, before clipping (0 with nothing to train)
    checkpoint: Path | None  # the newest checkpoint folder (None when out_dir is None)
    metrics: Path | None  # metrics.csv
    samples_per_s: float  # videos per second over this call's steps, all ranks together
    model: VideoUNet = field(repr=False)  # trained (not EMA) weights, eval mode
    ema: Mapping[str, torch.Tensor] = field(repr=False)  # EMA of the trainable parameters
    # the adversarial stage's per-step parts (d_loss, g_adv, distill, guided), from step 1; else {}
    parts: Mapping[str, tuple[float, ...]] = field(default_factory=dict, repr=False)

    def ema_model(self) -> VideoUNet:
        """A copy of :attr:`model` with the EMA weights (what to evaluate or export)."""
        m = copy.deepcopy(self.model)
        with torch.no_grad():
            params = dict(m.named_parameters())
            for name, value in self.ema.items():
                params[name].copy_(value)
        return m.eval()


# ---------------------------------------------------------------------------------------------
# distributed
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_dist(device_type: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_available():
        raise NasError("WORLD_SIZE is set but this PyTorch build has no torch.distributed")
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        created = True
    return _Dist(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), created
    )


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NasError(f"device {name!r}: no CUDA device here; use device 'cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


# ---------------------------------------------------------------------------------------------
# data order
# ---------------------------------------------------------------------------------------------


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers: the same on every machine."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


class _StepBatches:
    """Index lists of this rank's share of each step's global batch.

    Global batch ``s`` is positions ``(s - 1) * G .. s * G - 1`` of an endless stream that walks
    a fresh seeded permutation of the dataset each epoch (``G = batch * world``); rank ``r``
    takes its ``batch`` positions ``r * batch ..``. A pure function of the step: resume needs
    no sampler state.
    """

    def __init__(
        self, n: int, batch: int, world: int, rank: int, seed: int, first: int, last: int
    ) -> None:
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.first, self.last = seed, first, last
        self._epoch = -1
        self._perm = np.arange(0)

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)

    def _index(self, pos: int) -> int:
        epoch, k = divmod(pos, self.n)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, 0x5A3D, epoch]).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[k])

    def __iter__(self) -> Iterator[list[int]]:
        g = self.batch * self.world
        for step in range(self.first, self.last + 1):
            base = (step - 1) * g + self.rank * self.batch
            yield [self._index(base + j) for j in range(self.batch)]


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


def find_checkpoint(
    out_dir: str | Path, *, on_skip: Callable[[Path, str], None] | None = None
) -> Path | None:
    """The newest good checkpoint folder of a run (``out_dir/checkpoints/step_*``); None when
    the run has none.

    Each folder is verified (its ``state.json``, and each weights file against the size and
    SHA-256 recorded when it was written): a newer one that fails is passed over for the one
    before it, and ``on_skip(folder, why)`` is called for it. When every one fails, a
    ``NasError`` names the newest and why.
    """
    found = _checkpoint_dirs(out_dir)
    bad: list[tuple[Path, str]] = []
    for ckpt in found:
        problem = _checkpoint_problem(ckpt)
        if problem is None:
            for p, why in bad:
                if on_skip is not None:
                    on_skip(p, why)
            return ckpt
        bad.append((ckpt, problem))
    if not bad:
        return None
    newest, why = bad[0]
    older = f" (and the {len(bad) - 1} older one(s) too)" if len(bad) > 1 else ""
    raise NasError(
        f"{newest}: unusable checkpoint: {why}{older}; no good checkpoint to resume from: "
        f"remove {newest.parent} to train from scratch, or give another out dir"
    )


def _step_of(p: Path) -> int | None:
    digits = p.name.removeprefix("step_")
    return int(digits) if p.name.startswith("step_") and digits.isdigit() else None


def _checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """The ``step_<n>`` folders of a run, newest first."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = [(n, p) for p in root.iterdir() if (n := _step_of(p)) is not None and p.is_dir()]
    return [p for _, p in sorted(steps, reverse=True)]


_STATE_FIELDS: dict[str, tuple[type, str]] = {
    "step": (int, "an integer"),
    "config": (dict, "an object"),
    "arch": (dict, "an object"),
    "space": (dict, "an object"),
    "losses": (list, "a list"),
    "grad_norms": (list, "a list"),
}
_WEIGHTS = ("model.safetensors", "ema.safetensors")


def _checkpoint_problem(ckpt: Path) -> str | None:
    """Why the checkpoint folder ``ckpt`` cannot be resumed from or loaded; None if it can."""
    try:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "state.json is missing"
    except UnicodeDecodeError:
        return "state.json is not UTF-8 text"
    except json.JSONDecodeError as e:
        return f"state.json is not valid JSON (line {e.lineno}: {e.msg})"
    except (OSError, RecursionError) as e:
        return f"state.json cannot be read ({type(e).__name__})"
    if not isinstance(state, dict):
        return f"state.json is not a JSON object ({type(state).__name__})"
    if state.get("format") != CHECKPOINT_FORMAT:
        return f"state.json is not of a nas train checkpoint (format {state.get('format')!r})"
    for key, (kind, what) in _STATE_FIELDS.items():
        if isinstance(state.get(key), bool) or not isinstance(state.get(key), kind):
            return f"state.json: {key} is missing or not {what}"
    named = _step_of(ckpt)  # a copy may have another name (best/); a step_ folder, its step
    if named is not None and state["step"] != named:
        return f"state.json is of step {state['step']} (a renamed folder?)"
    files = state.get("files", list(_WEIGHTS))
    if isinstance(files, list) and all(isinstance(n, str) for n in files):
        recorded: dict[str, Any] = dict.fromkeys(files)  # older checkpoints: names only
    elif isinstance(files, dict):
        recorded = files
    else:
        return "state.json: files is not a list or mapping of file names"
    for name in sorted(set(recorded) | set(_WEIGHTS)):
        problem = _file_problem(ckpt / name, recorded.get(name))
        if problem is not None:
            return f"{name} {problem}"
    return None


def _file_problem(path: Path, written: Any) -> str | None:
    """Why a checkpoint file is not the one written: its size and SHA-256 as recorded (old
    checkpoints record neither: their safetensors header is read instead)."""
    if not path.is_file():
        return "is missing"
    if isinstance(written, dict):
        size = path.stat().st_size
        if size != written.get("bytes"):
            return f"is {size} bytes, {written.get('bytes')} when written (truncated?)"
        if _sha256(path) != written.get("sha256"):
            return "does not match the SHA-256 recorded when it was written (corrupt)"
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception:  # safetensors raises its own error types for a bad header
        return "is not a readable safetensors file"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flatten_optimizer(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for name, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            out[f"{idx}.{name}"] = t.detach().cpu().contiguous()
    return out


def _unflatten_optimizer(flat: Mapping[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        idx, _, name = key.partition(".")
        state.setdefault(int(idx), {})[name] = value
    return state


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write a safetensors file atomically; its size and SHA-256, for ``state.json``."""
    from safetensors.torch import save

    data = save(tensors)
    atomic_write_bytes(path, data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _save_checkpoint(
    root: Path,
    step: int,
    model: VideoUNet,
    ema: Mapping[str, torch.Tensor],
    opt: torch.optim.Optimizer | None,
    state: dict[str, Any],
    keep: int,
    extra: Mapping[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write ``root/step_<step>``: its files (each atomically, recorded with size and
    SHA-256 in ``state.json``) go into a temporary folder that is then renamed, so a crash
    never leaves half a checkpoint. Older folders beyond ``keep`` go, and so do any of a
    later step (unusable ones a resume passed over)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        files = {"model.safetensors": _write_tensors(tmp / "model.safetensors", weights)}
        with_ema = dict(weights)
        with_ema.update({k: v.detach().cpu().contiguous() for k, v in ema.items()})
        files["ema.safetensors"] = _write_tensors(tmp / "ema.safetensors", with_ema)
        if opt is not None:
            flat = _flatten_optimizer(opt)
            files["optimizer.safetensors"] = _write_tensors(tmp / "optimizer.safetensors", flat)
        for name, tensors in (extra or {}).items():
            files[name] = _write_tensors(tmp / name, tensors)
        atomic_write_text(tmp / "state.json", json.dumps({**state, "files": files}, indent=1))
        if final.exists():  # left by a run that stopped after this step and was resumed earlier
            shutil.rmtree(final)
        os.replace(tmp, final)  # a folder: the rename is the commit
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    older = [p for p in _checkpoint_dirs(root.parent) if p != final]
    stale = [p for p in older if (_step_of(p) or 0) > step]
    kept = [p for p in older if p not in stale][: max(0, keep - 1)]
    for p in older:
        if p not in kept:
            shutil.rmtree(p, ignore_errors=True)
    return final


def _check_resumable(
    state: Mapping[str, Any], config: TrainConfig, arch: Arch, space: SearchSpace, ckpt: Path
) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise NasError(f"{ckpt}: not a nas train checkpoint (format {state.get('format')!r})")
    if state["arch"].get("arch_id") != arch.arch_id:
        raise NasError(
            f"{ckpt.parent.parent}: its checkpoint trains arch {state['arch'].get('arch_id')}, "
            f"not {arch.arch_id}; give another out dir to train this arch"
        )
    if state["space"].get("hash") != space.hash:
        raise NasError(
            f"{ckpt.parent.parent}: its checkpoint is from space "
            f"{state['space'].get('name')!r} (hash {state['space'].get('hash')}), not this one "
            f"({space.hash}); use another out dir"
        )
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    now = config.to_dict()
    diffs = [k for k in now if k not in RESUMABLE and saved[k] != now[k]]
    if diffs:
        shown = "; ".join(f"{k}: checkpoint {saved[k]!r}, now {now[k]!r}" for k in diffs)
        raise NasError(
            f"{ckpt.parent.parent} has a checkpoint at step {state['step']} trained with other "
            f"settings ({shown}). Resume with the same settings (only "
            f"{', '.join(sorted(RESUMABLE))} may change) or use another out dir"
        )
    if state["step"] > config.steps:
        raise NasError(
            f"{ckpt}: the run is already at step {state['step']}, beyond steps={config.steps}; "
            "raise steps to continue it"
        )


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


class _Metrics:
    """metrics.csv, appended one row at a time; a resumed run drops rows past its checkpoint."""

    def __init__(self, path: Path, start_step: int) -> None:
        self.path = path
        kept: list[list[str]] = []
        if start_step > 0 and path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            kept = [r for r in rows[1:] if r and int(r[0]) <= start_step]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([list(METRICS_COLUMNS), *kept])
        atomic_write_text(path, buf.getvalue())

    def add(self, step: int, loss: float, lr: float, grad_norm: float, speed: float) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerow(
                [step, f"{loss:.6g}", f"{lr:.6g}", f"{grad_norm:.6g}", f"{speed:.4g}"]
            )


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def train_geometry(space: SearchSpace, config: TrainConfig) -> Geometry:
    """The space's geometry with the config's overrides (the proxy-scale video)."""
    return config.geometry.apply(space.geometry)


def _amp(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if device.type == "cuda" or (precision == "bf16" and device.type == "cpu"):
        # CPU autocast: fast where the CPU has bf16 units (AMX)
        return torch.bfloat16 if precision == "bf16" else torch.float16
    where = "a CUDA device" if precision == "fp16" else "a CUDA or CPU device"
    instead = "fp32 or bf16" if device.type == "cpu" else "fp32"
    raise NasError(
        f"precision {precision} (autocast) needs {where}; on {device.type} use {instead}"
    )


def _needs_unused_search(model: VideoUNet, geo: Geometry, device: torch.device) -> bool:
    """Whether some trainable parameter gets no gradient (DDP then needs
    ``find_unused_parameters``, which costs a graph walk per step): one batch-1 probe."""
    x = torch.zeros(
        1, geo.latent_channels, geo.frames, geo.latent_height, geo.latent_width, device=device
    )
    text = torch.zeros(1, geo.text_length, geo.text_dim, device=device)
    out: torch.Tensor = model(x, torch.full((1,), 500.0, device=device), text)
    torch.autograd.backward(out.float().square().mean())
    unused = any(p.grad is None for p in model.parameters() if p.requires_grad)
    model.zero_grad(set_to_none=True)
    return unused


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` (nothing for None). On CPU, attention runs on SDPA's math
    kernel: its bf16 flash kernel's backward took 7x the fp32 one's time (benchmarks/
    train_precision.py), while the math kernel's matmuls use the CPU's bf16 units."""
    if dtype is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
        if device.type == "cpu":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        yield


class _Diverged(Exception):
    def __init__(self, step: int, what: str) -> None:
        self.step = step
        self.what = what


def train(
    space: SearchSpace,
    arch: Arch,
    config: TrainConfig,
    out_dir: str | Path | None,
    *,
    progress: bool = True,
    dataset: Dataset[VideoItem] | None = None,
    stop_on_signal: bool = False,
) -> TrainResult:
    """Train ``arch``'s VideoUNet for ``config.steps`` steps and return losses and the model.

    The model is built at ``config.width_mult`` and the space's geometry with
    ``config.geometry`` overrides; spatial weights are frozen unless ``config.freeze_spatial``
    (default: the space's) says otherwise. Data is ``dataset`` if given, else
    ``config.data``. ``out_dir=None`` writes nothing; a folder that holds a checkpoint is
    resumed (with the same settings, else a ``NasError`` naming the differences).

    A non-finite loss or gradient stops training with a ``NasError`` naming the step; the
    checkpoints written before it are kept. With ``stop_on_signal`` (long runs into a folder:
    ``nas train``, the validation's full trainings) Ctrl-C or SIGTERM stops after the step in
    progress, checkpointed, with ``KeyboardInterrupt``. Under ``torchrun`` this runs
    distributed (see the module docstring).
    """
    want = config.device
    pre_type = (
        "cuda"
        if want.startswith("cuda") or (want == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    dist = _init_dist(pre_type)
    try:
        return _train(space, arch, config, out_dir, progress, dataset, dist, stop_on_signal)
    finally:
        if dist.created:
            import torch.distributed as tdist

            tdist.destroy_process_group()


@dataclass(frozen=True, eq=False)
class _Setup:
    """What one ``train`` call runs with, fixed before its first step."""

    space: SearchSpace
    arch: Arch
    config: TrainConfig
    geo: Geometry
    device: torch.device
    amp_dtype: torch.dtype | None
    dist: _Dist
    out: Path | None  # the run folder; None: in memory

    @property
    def per_step(self) -> int:
        """Videos per optimizer step, all ranks together."""
        return self.config.batch_size * self.dist.world


@dataclass(eq=False)
class _Trainable:
    """What the steps update: the model, its trainable parameters, their optimizer and EMA."""

    model: VideoUNet
    named: list[tuple[str, torch.nn.Parameter]]
    opt: torch.optim.Optimizer | None  # None: nothing to train
    scaler: torch.amp.GradScaler | None  # fp16 autocast only
    ema: dict[str, torch.Tensor]
    extra: Any = None  # the adversarial stage's state (teacher, discriminator), else None

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.named]


@dataclass(eq=False)
class _Progress:
    """The run so far: per-step losses and gradient norms (from step 1), the newest checkpoint."""

    start: int  # the step this call starts from
    losses: list[float]
    grad_norms: list[float]
    checkpoint: Path | None
    step: int = 0  # the last step done
    train_time: float = 0.0  # seconds in steps (this call)


def _train(
    space: SearchSpace,
    arch: Arch,
    config: TrainConfig,
    out_dir: str | Path | None,
    progress: bool,
    dataset: Dataset[VideoItem] | None,
    dist: _Dist,
    stop_on_signal: bool = False,
) -> TrainResult:
    import torch.distributed as tdist
    from tqdm import tqdm

    s = _setup(space, arch, config, out_dir, dist)
    if dataset is None:  # first: a wrong data folder fails before anything is written
        dataset = open_dataset(
            config.data,
            s.geo,
            difficulty=config.difficulty,
            seed=config.seed,
            background=config.background,
            colours=config.colours,
        )
    n = len(dataset)  # type: ignore[arg-type]
    if n < 1:
        raise NasError("the dataset is empty")
    t = _build_trainable(s)
    run = _begin(s, t)
    out = s.out
    metrics = _Metrics(out / "metrics.csv", run.start) if out is not None and dist.main else None
    batches = _StepBatches(
        n, config.batch_size, dist.world, dist.rank, config.seed, run.start + 1, config.steps
    )
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers)
    net = _wrap_ddp(s, t)
    if config.compile:  # the first step compiles (minutes); checkpoints keep the plain model
        # diffusers' blocks call its lru_cache'd is_torch_version (a pure function): benign
        warnings.filterwarnings(
            "ignore",
            message=r"Dynamo detected a call to a `functools\.lru_cache`",
            category=UserWarning,
        )
        net = torch.compile(net)  # type: ignore[assignment]
    t.model.train()
    bar = tqdm(
        total=config.steps,
        initial=run.start,
        disable=not (progress and dist.main),
        unit="step",
        desc=f"train {arch.arch_id}",
        dynamic_ncols=True,
    )
    try:
        with _stop_on_signal(stop_on_signal and out is not None and dist.world <= 1) as stop:
            _run_steps(s, t, net, loader, run, metrics, bar, stop)
    except _Diverged as e:
        raise _diverged_error(e, s) from None
    finally:
        bar.close()
    if dist.world > 1:
        tdist.barrier()  # rank 0's last checkpoint is on disk before anyone returns
    t.model.eval()
    ran = run.step - run.start
    return TrainResult(
        step=run.step,
        start_step=run.start,
        losses=tuple(run.losses),
        grad_norms=tuple(run.grad_norms),
        checkpoint=run.checkpoint,
        metrics=metrics.path if metrics is not None else (out / "metrics.csv" if out else None),
        samples_per_s=ran * s.per_step / run.train_time if run.train_time > 0 else 0.0,
        model=t.model,
        ema=t.ema,
        parts={k: tuple(v) for k, v in t.extra.history.items()} if t.extra is not None else {},
    )


def _setup(
    space: SearchSpace, arch: Arch, config: TrainConfig, out_dir: str | Path | None, dist: _Dist
) -> _Setup:
    import torch.distributed as tdist

    device = _resolve_device(config.device, dist.local_rank)
    amp_dtype = _amp(config.precision, device)
    if dist.world > 1 and out_dir is not None:  # rank 0's folder (a default may hold a time)
        shared: list[Any] = [str(out_dir)]
        tdist.broadcast_object_list(shared, src=0)
        out_dir = Path(shared[0])
    out = Path(out_dir) if out_dir is not None else None
    geo = train_geometry(space, config)
    return _Setup(space, arch, config, geo, device, amp_dtype, dist, out)


def _build_trainable(s: _Setup) -> _Trainable:
    """The seeded model on the device, its optimizer (None with nothing to train) and EMA."""
    config = s.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_video_unet(s.space, s.arch, width_mult=config.width_mult, geometry=s.geo)
    if config.freeze_spatial is not None:
        model.freeze_spatial(config.freeze_spatial)
    model.to(s.device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    opt = (
        torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        if params
        else None
    )
    scaler = torch.amp.GradScaler("cuda") if s.amp_dtype == torch.float16 else None
    extra = None
    if config.stage == "adversarial":  # the student starts from the teacher's weights
        from nas.quality._adversarial import build_adversarial

        extra = build_adversarial(s, model)
    ema = {n: p.detach().float().clone() for n, p in named}
    return _Trainable(model, named, opt, scaler, ema, extra)


def _begin(s: _Setup, t: _Trainable) -> _Progress:
    """Resume from the run folder's newest checkpoint, or start it (config.json, arch.yaml)."""
    out, dist, space, arch, config = s.out, s.dist, s.space, s.arch, s.config
    ckpt = None
    if out is not None:
        if dist.main:
            for stale in (out / "checkpoints").glob(".tmp-step_*"):  # left by a killed run
                shutil.rmtree(stale, ignore_errors=True)
        ckpt = find_checkpoint(out)
    if ckpt is not None:
        start, losses, grad_norms = _resume(
            ckpt, space, arch, config, t.model, t.ema, t.opt, t.scaler, s.device, t.extra
        )
        return _Progress(start, losses, grad_norms, ckpt, step=start)
    if out is not None and dist.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "arch.yaml", arch.to_yaml())
        atomic_write_text(
            out / "config.json",
            json.dumps(
                {
                    "config": config.to_dict(),
                    "arch_id": arch.arch_id,
                    "space": {"name": space.name, "hash": space.hash, "source": space.source},
                    "geometry": s.geo.to_dict(),
                    "world_size": dist.world,
                    "nas_version": __version__,
                },
                indent=2,
            ),
        )
    return _Progress(0, [], [], None)


def _wrap_ddp(s: _Setup, t: _Trainable) -> torch.nn.Module:
    """The module the steps call: the model, in DistributedDataParallel under torchrun."""
    if s.dist.world <= 1 or not t.named:
        return t.model
    from torch.nn.parallel import DistributedDataParallel as DDP

    unused = _needs_unused_search(t.model, s.geo, s.device)
    return DDP(
        t.model,
        device_ids=[s.device.index] if s.device.type == "cuda" else None,
        find_unused_parameters=unused,
    )


def _run_steps(
    s: _Setup,
    t: _Trainable,
    net: torch.nn.Module,
    loader: DataLoader[Any],
    run: _Progress,
    metrics: _Metrics | None,
    bar: Any,
    stop: list[int] | None = None,
) -> None:
    """Steps ``run.start + 1 ..``: each updates ``run``; metrics rows and checkpoints on their
    schedules. A non-finite loss, gradient or weight raises :class:`_Diverged`. Once ``stop``
    holds a signal the step in progress ends, is checkpointed, and KeyboardInterrupt is raised."""
    config, out = s.config, s.out
    window: list[tuple[float, float]] = []
    window_time = 0.0
    t0 = time.perf_counter()
    for step, batch in enumerate(loader, start=run.start + 1):
        run.step = step
        loss_val, gn, lr = _train_step(s, t, net, batch, step)
        run.losses.append(loss_val)
        run.grad_norms.append(gn)
        t1 = time.perf_counter()
        run.train_time += t1 - t0
        window_time += t1 - t0
        window.append((loss_val, gn))
        if step % config.log_every == 0 or step == config.steps:
            speed = len(window) * s.per_step / max(window_time, 1e-9)
            mean_loss = float(np.mean([w[0] for w in window]))
            if metrics is not None:
                metrics.add(step, mean_loss, lr, float(np.mean([w[1] for w in window])), speed)
            bar.set_postfix(loss=f"{mean_loss:.4f}", samples_s=f"{speed:.1f}", refresh=False)
            window, window_time = [], 0.0
        bar.update(1)
        scheduled = step % config.checkpoint_every == 0 or step == config.steps
        if out is not None and (scheduled or stop):  # a stop request: this step is kept too
            run.checkpoint = _checkpoint(s, t, run, step, out)
        if stop:
            bar.close()
            print(f"stopped at step {step}: checkpoint {run.checkpoint}", file=sys.stderr)
            raise KeyboardInterrupt
        t0 = time.perf_counter()


@contextlib.contextmanager
def _stop_on_signal(enabled: bool) -> Iterator[list[int]]:
    """While training into a folder: Ctrl-C or SIGTERM (a scheduler's stop, the end of a
    session) lets the step in progress finish and checkpoints it before stopping, so a resume
    loses nothing; a second signal stops at once. Yields the list the signals are put in."""
    got: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, _frame: Any) -> None:
        if got:
            raise KeyboardInterrupt
        got.append(signum)
        print(
            "stopping after this step, with a checkpoint (a second Ctrl-C stops at once)",
            file=sys.stderr,
        )

    # both, even where SIGINT was ignored (a shell's background job): the caller asked
    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def _train_step(
    s: _Setup, t: _Trainable, net: torch.nn.Module, batch: Mapping[str, torch.Tensor], step: int
) -> tuple[float, float, float]:
    """One optimizer step on ``batch``; returns the (all-rank mean) loss, the gradient norm
    before clipping and the learning rate. Noise and timesteps are seeded by the step."""
    if s.config.stage == "adversarial":
        from nas.quality._adversarial import adversarial_loss

        return _update(s, t, adversarial_loss(s, t, net, batch, step), step)
    return _update(s, t, _flow_loss(s, t, net, batch, step), step)


def step_generator(s: _Setup, step: int) -> torch.Generator:
    """The CPU generator of step ``step`` on this rank: every draw of a step comes from it."""
    return torch.Generator().manual_seed(_seed(s.config.seed, step, s.dist.rank))


def _flow_loss(
    s: _Setup, t: _Trainable, net: torch.nn.Module, batch: Mapping[str, torch.Tensor], step: int
) -> torch.Tensor:
    """The diffusion objective's loss on ``batch`` (no graph with nothing to train)."""
    config, device = s.config, s.device
    x0 = batch["video"].to(device, non_blocking=True)
    text = batch["text"].to(device, non_blocking=True)
    gen = step_generator(s, step)
    noise = torch.randn(x0.shape, generator=gen).to(device)
    b = x0.shape[0]
    if config.timestep_sampling == "logit_normal":
        u = torch.sigmoid(torch.randn(b, generator=gen))
    else:
        u = torch.rand(b, generator=gen)
    if config.text_dropout > 0:  # drawn only then: runs without it keep their noise
        keep = torch.rand(b, generator=gen) >= config.text_dropout
        text = text * keep.to(device=device, dtype=text.dtype)[:, None, None]
    xt, model_t, target = corrupt(
        config.objective, x0, noise, to_tau(u, config.objective).to(device)
    )
    with _autocast(device, s.amp_dtype):
        if t.opt is None:
            with torch.no_grad():
                pred: torch.Tensor = net(xt, model_t, text)
        else:
            pred = net(xt, model_t, text)
    return F.mse_loss(pred.float(), target.float())


def _update(s: _Setup, t: _Trainable, loss: torch.Tensor, step: int) -> tuple[float, float, float]:
    """Back-propagate ``loss``, clip, check for divergence, step the optimizer and the EMA."""
    import torch.distributed as tdist

    config, device, dist = s.config, s.device, s.dist
    lr = config.lr * (min(1.0, step / config.warmup_steps) if config.warmup_steps else 1.0)
    grad_norm = torch.zeros((), device=device)
    opt, scaler = t.opt, t.scaler
    if opt is not None:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            torch.autograd.backward(scaler.scale(loss))
            scaler.unscale_(opt)
        else:
            torch.autograd.backward(loss)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            t.params, config.grad_clip if config.grad_clip is not None else float("inf")
        )
    loss_det = loss.detach()
    if dist.world > 1:
        tdist.all_reduce(loss_det)
        loss_det = loss_det / dist.world
    loss_val = float(loss_det)
    gn = float(grad_norm)
    if not np.isfinite(loss_val):
        raise _Diverged(step, f"the loss is {loss_val}")
    if opt is not None:
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            if not np.isfinite(gn):
                raise _Diverged(step, f"the gradient norm is {gn}")
            opt.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, p in t.named:
                t.ema[name].lerp_(p.detach().float(), 1.0 - decay)
    return loss_val, gn, lr


def _checkpoint(s: _Setup, t: _Trainable, run: _Progress, step: int, out: Path) -> Path:
    """Save step ``step`` in ``out`` (rank 0 writes); the checkpoint's folder. Non-finite
    weights raise :class:`_Diverged`."""
    if not all(bool(torch.isfinite(p).all()) for p in t.params):
        raise _Diverged(step, "the weights became non-finite")
    if not s.dist.main:
        return out / "checkpoints" / f"step_{step:07d}"
    state = _state(
        step, s.config, s.arch, s.space, s.geo, run.losses, run.grad_norms, s.dist, t.scaler
    )
    files: dict[str, dict[str, torch.Tensor]] = {}
    if t.extra is not None:  # the adversarial stage: its discriminator and losses
        files, more = t.extra.checkpoint()
        state.update(more)
    return _save_checkpoint(
        out / "checkpoints", step, t.model, t.ema, t.opt, state, s.config.keep_checkpoints, files
    )


def _diverged_error(e: _Diverged, s: _Setup) -> NasError:
    try:
        last = find_checkpoint(s.out) if s.out is not None else None
    except NasError:  # none of them is usable
        last = None
    kept = (
        f"the last good checkpoint is kept: {last}"
        if last is not None
        else "no checkpoint had been written yet"
    )
    return NasError(
        f"step {e.step}: {e.what}; training stopped ({kept}). Lower the learning rate "
        f"(lr={s.config.lr:g}), set grad_clip, or check the data for NaN/inf values"
    )


def _state(
    step: int,
    config: TrainConfig,
    arch: Arch,
    space: SearchSpace,
    geo: Geometry,
    losses: list[float],
    grad_norms: list[float],
    dist: _Dist,
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Any]:
    rng: dict[str, Any] = {"torch_cpu": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        rng["torch_cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "config": config.to_dict(),
        "arch": arch.to_dict(),
        "space": {"name": space.name, "hash": space.hash},
        "geometry": geo.to_dict(),
        "world_size": dist.world,
        "losses": losses,
        "grad_norms": grad_norms,
        "rng": rng,
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
        "nas_version": __version__,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _resume(
    ckpt: Path,
    space: SearchSpace,
    arch: Arch,
    config: TrainConfig,
    model: VideoUNet,
    ema: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
    extra: Any = None,
) -> tuple[int, list[float], list[float]]:
    from safetensors.torch import load_file

    try:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise NasError(f"{ckpt / 'state.json'}: cannot be read: {e}") from None
    _check_resumable(state, config, arch, space, ckpt)
    try:
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        saved_ema = load_file(str(ckpt / "ema.safetensors"))
        for name in ema:
            ema[name] = saved_ema[name].to(device=device, dtype=torch.float32)
        if opt is not None:
            sd = opt.state_dict()
            sd["state"] = _unflatten_optimizer(load_file(str(ckpt / "optimizer.safetensors")))
            opt.load_state_dict(sd)
        if extra is not None:
            extra.restore(ckpt, state)
    except (OSError, KeyError, RuntimeError, ValueError) as e:  # verified, yet does not fit
        why = " ".join(str(e).split())[:200]
        raise NasError(f"{ckpt}: cannot be loaded into this model: {why}") from None
    if scaler is not None and state.get("grad_scaler"):
        scaler.load_state_dict(state["grad_scaler"])
    rng = state.get("rng", {})
    if "torch_cpu" in rng:
        torch.set_rng_state(torch.tensor(rng["torch_cpu"], dtype=torch.uint8))
    if "torch_cuda" in rng and device.type == "cuda":
        cuda_states = [torch.tensor(s, dtype=torch.uint8) for s in rng["torch_cuda"]]
        torch.cuda.set_rng_state_all(cuda_states)
    return (
        int(state["step"]),
        [float(x) for x in state["losses"]],
        [float(x) for x in state["grad_norms"]],
    )


def load_trained(space: SearchSpace, checkpoint: str | Path, *, ema: bool = True) -> VideoUNet:
    """The VideoUNet of a ``nas train`` checkpoint (a ``step_*`` folder, or a run folder for its
    newest one), at the width and geometry it was trained at, in eval mode on the CPU."""
    from safetensors.torch import load_file

    ckpt = Path(checkpoint)
    if not (ckpt / "state.json").is_file():  # a run folder: its newest good checkpoint
        found = find_checkpoint(ckpt)
        if found is None:
            raise NasError(f"{ckpt}: no nas train checkpoint (state.json) here or in checkpoints/")
        ckpt = found
    problem = _checkpoint_problem(ckpt)
    if problem is not None:
        raise NasError(f"{ckpt}: unusable checkpoint: {problem}")
    state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(state["config"])
    arch = arch_from_dict(space, state["arch"], str(ckpt / "state.json"))
    model = build_video_unet(
        space,
        arch,
        width_mult=config.width_mult,
        geometry=train_geometry(space, config),
        load_weights=False,
    )
    weights = ckpt / ("ema.safetensors" if ema else "model.safetensors")
    model.load_state_dict(load_file(str(weights)))
    return model.eval()
