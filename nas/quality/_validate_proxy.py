"""``nas validate proxy``: do the proxies rank arches as training does?

Picks N diverse arches (seeded greedy max-min Hamming distance over choice indices, always with
the all-``none`` arch and the all-``attn1d`` one when the space has them), trains each "fully"
at proxy scale with several seeds, and defines an arch's *trained quality* as the validation
loss of the trained model (at ``tau=800`` by default, or the weighted loss), EMA weights by
default. The seeds give the noise ceiling: the mean pairwise rank correlation between the
seeds' rankings (no proxy can be expected to track the seed mean much better than one seed
tracks another). Each proxy is then computed and timed, and compared with the seed-mean
quality: Kendall tau and Spearman rho with bootstrap 95 % intervals (arches resampled,
seeded), and its cost relative to one full training (wall-time ratio).

Files in the run folder: ``proxy_validation.csv`` (per arch), ``summary.json``,
``proxy_validation.html`` (plotly, with ``plotly.min.js`` beside it so it works offline) and
``trained.jsonl`` (one line per finished full training: a rerun with the same settings skips
those, so an interrupted run resumes).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError
from nas.fileio import atomic_write_text, claim, jsonl_records, lock_holders, locked
from nas.quality._data import COLOURS, DIFFICULTIES, MAX_BACKGROUND
from nas.quality._defaults import DEFAULT_BACKGROUND, DEFAULT_COLOURS, DEFAULT_DIFFICULTY
from nas.quality._generated import GENERATED_PARTS
from nas.quality._ground_truth import (
    COLLAPSE_RATIO,
    Scale,
    full_trainings,
    quality_of,
    sampler_of,
    train_ground_truth,
    training_status,
    transfer_scale,
)
from nas.quality._noise import seed_noise
from nas.quality._proxies import (
    DEFAULT_PROXY_WIDTH_MULT,
    PROXIES,
    TrainingProxy,
    make_proxy,
    proxy_geometry,
)
from nas.space import (
    Arch,
    GeometryOverride,
    SearchSpace,
    arch_indices,
    reference_arch,
    sample_arch,
)

__all__ = [
    "QUALITY_DEFINITIONS",
    "ProxyValidation",
    "ProxyValidationConfig",
    "ValidationStatus",
    "pick_diverse_arches",
    "rank_stats",
    "render_proxy_validation_html",
    "validate_proxies",
    "validation_status",
    "validation_worker",
]

TIMESTEPS = (200, 500, 800)
# name -> (timestep, "weighted" or "generated", "ema" | "raw")
QUALITY_DEFINITIONS: dict[str, tuple[str, str]] = {
    "generated": ("generated", "ema"),
    "t800_ema": ("800", "ema"),
    "t800_raw": ("800", "raw"),
    "weighted_ema": ("weighted", "ema"),
    "weighted_raw": ("weighted", "raw"),
}
# rows that are not search proxies: the cost model's latency (minus it: "bigger is better")
EXTRA_PROXIES = ("latency",)
# arch seeds: 0 picked the arches the training proxy's setting was tuned on (in sample), 1 the
# earlier out-of-sample benchmark; 2 was never used while tuning any proxy setting
UNTUNED_ARCH_SEED = 2


@dataclass(frozen=True)
class ProxyValidationConfig:
    """Settings of a proxy validation. The defaults are issue 15's measurement: 12 arches x 2
    seeds, each trained 4,000 steps of 8 videos and scored on generated clips (hours on a GPU,
    days on 2 CPU cores: docs/benchmarks.md); every (arch, seed) training resumes."""

    n: int = 12  # arches
    seeds: int = 2  # full trainings per arch (seeds 0 .. seeds-1)
    steps: int = 4000  # the full budget (optimizer steps per training)
    proxy_steps: int = 16  # the training proxy's budget K
    width_mult: float = DEFAULT_PROXY_WIDTH_MULT  # proxy-scale backbone width
    # over DEFAULT_PROXY_GEOMETRY (a mapping such as {"frames": 4} is converted)
    geometry: GeometryOverride = field(default_factory=GeometryOverride)
    # the training proxy's video: these overrides on top of the full trainings' geometry
    proxy_geometry: GeometryOverride = field(
        default_factory=lambda: GeometryOverride(latent_height=8, latent_width=8)
    )
    difficulty: str = DEFAULT_DIFFICULTY  # procedural data (issue 15: caption-informative)
    background: float = DEFAULT_BACKGROUND  # its static background's amplitude
    colours: str = DEFAULT_COLOURS  # its digits' colour signs
    batch_size: int = 8  # videos per step of a full training
    lr: float = 1e-3  # AdamW, full trainings (2e-3 collapsed an arch: benchmarks.md)
    train_spatial: bool = True  # full trainings train the backbone too (False: the space's)
    text_dropout: float = 0.1  # full trainings: share of empty captions (guidance possible)
    proxy_batch_size: int = 4  # the training proxy's batch (as the search runs it)
    proxy_lr: float = 1e-3  # the training proxy's learning rate (as the search runs it)
    quality: str = "generated"  # one of QUALITY_DEFINITIONS: what "trained quality" means
    proxies: tuple[str, ...] = ("naswot", "synflow", "params", "latency", "train", "generate")
    seed: int = UNTUNED_ARCH_SEED  # arch picking and bootstrap
    proxy_seed: int = 100  # the proxies' init/data seed: not one of the full trainings' seeds
    pool: int = 300  # random arches the diverse picks are chosen from
    bootstrap: int = 2000  # bootstrap resamples for the intervals
    n_val: int = 16  # held-out videos per validation loss
    # generated quality (the ground truth when quality == "generated")
    gen_n: int = 64  # held-out captions sampled per full training
    sample_steps: int = 32  # Euler steps (no guidance) when the full training is sampled
    student_steps: int = 0  # > 0: an adversarial few-step student per training, sampled at
    # the space's geometry.steps without guidance (what the search prices)
    evaluator_steps: int = 2000  # the video evaluator's training steps (cached in the folder)
    early_steps: int = 200  # the generate proxy: its short training
    early_n: int = 16  # the generate proxy: captions it samples
    latency_device: str = "iphone16pm"  # the latency row's device table
    latency_tables: str | None = None  # a folder of <device>/table.csv (None: ./latency_tables,
    # then the shipped ones)
    # scale transfer: the first transfer_n arches also trained at this width and geometry
    transfer_n: int = 0
    transfer_width_mult: float | None = None
    transfer_geometry: GeometryOverride = field(default_factory=GeometryOverride)
    transfer_seeds: int = 1
    transfer_steps: int | None = None  # its budget (None: ``steps``)
    device: str = "auto"  # full trainings and proxies: CUDA when present
    # the full trainings' and the generate proxy's short one: "auto" (bf16 on CUDA, fp32 on
    # CPU), "fp32", "bf16" (1.8x faster on a CPU with AMX, benchmarks/train_precision.py)
    precision: str = "auto"
    checkpoint_every: int = 500  # full trainings: steps between checkpoints (resume points)
    compile: bool = False  # full trainings: torch.compile (how they run, not their cache key)

    def __post_init__(self) -> None:
        # plain data in (mappings, a list of proxies): stored as the typed forms
        for name in ("geometry", "proxy_geometry", "transfer_geometry"):
            object.__setattr__(self, name, GeometryOverride.coerce(getattr(self, name)))
        object.__setattr__(self, "proxies", tuple(self.proxies))
        if self.n < 3:
            raise NasError(f"--n must be at least 3 (rank correlations need arches), got {self.n}")
        if self.seeds < 2:
            raise NasError(f"--seeds must be at least 2 (for the noise ceiling), got {self.seeds}")
        for name in (
            "steps", "proxy_steps", "batch_size", "proxy_batch_size", "pool", "bootstrap",
            "n_val", "sample_steps", "evaluator_steps", "early_steps", "transfer_seeds",
            "checkpoint_every",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise NasError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("gen_n", "early_n"):
            if getattr(self, name) < 2:
                raise NasError(
                    f"{name} must be >= 2 (a Frechet distance), got {getattr(self, name)}"
                )
        from nas.quality._train import PRECISIONS

        if self.precision not in PRECISIONS:
            raise NasError(f"precision {self.precision!r} is not one of {list(PRECISIONS)}")
        if self.transfer_steps is not None and self.transfer_steps < 1:
            raise NasError(f"transfer_steps must be >= 1, got {self.transfer_steps!r}")
        if self.student_steps < 0 or self.transfer_n < 0:
            raise NasError("student_steps and transfer_n must be >= 0")
        if 0 < self.transfer_n < 3:
            raise NasError(
                f"--transfer-n must be 0 or at least 3 (a rank correlation), got {self.transfer_n}"
            )
        if self.transfer_n > self.n:
            raise NasError(f"--transfer-n {self.transfer_n} is more than --n {self.n}")
        if (
            self.transfer_n
            and self.transfer_width_mult is None
            and not self.transfer_geometry.to_dict()
        ):
            raise NasError("scale transfer needs --transfer-width-mult or --transfer-geometry")
        if self.quality not in QUALITY_DEFINITIONS:
            raise NasError(
                f"quality {self.quality!r} is not one of {', '.join(QUALITY_DEFINITIONS)}"
            )
        if self.difficulty not in DIFFICULTIES:
            raise NasError(f"difficulty {self.difficulty!r} is not one of {list(DIFFICULTIES)}")
        if self.colours not in COLOURS:
            raise NasError(f"colours {self.colours!r} is not one of {list(COLOURS)}")
        if not 0 <= self.background <= MAX_BACKGROUND:
            raise NasError(f"background must be in [0, {MAX_BACKGROUND}], got {self.background!r}")
        valid = (*PROXIES, *EXTRA_PROXIES)
        unknown = [p for p in self.proxies if p not in valid]
        if unknown or not self.proxies:
            raise NasError(f"unknown proxies {unknown}; proxies: {', '.join(valid)}")

    @property
    def generates(self) -> bool:
        """Whether the full trainings are sampled and scored (the generated ground truth)."""
        return self.quality == "generated"

    @property
    def training_proxy_geometry(self) -> GeometryOverride:
        """The training proxy's geometry overrides: ``geometry``, then ``proxy_geometry``."""
        return self.geometry.merged(self.proxy_geometry)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("geometry", "proxy_geometry", "transfer_geometry"):
            out[name] = getattr(self, name).to_dict()
        out["proxies"] = list(self.proxies)
        return out


# ---------------------------------------------------------------------------------------------
# arches
# ---------------------------------------------------------------------------------------------


def pick_diverse_arches(
    space: SearchSpace, n: int, rng: np.random.Generator, *, pool: int = 300
) -> list[Arch]:
    """``n`` arches with distinct UNets (the decode choice is left out), spread out over the space.

    Starts from the all-``none`` arch and the all-``attn1d`` arch (each when the space has it),
    then adds, one at a time, the arch among ``pool`` uniform samples whose smallest Hamming
    distance (over choice indices) to those already picked is largest; ties go to the earlier
    sample. Seeded by ``rng``.
    """
    if n < 1:
        raise NasError(f"n must be >= 1, got {n}")
    if n > space.size:
        raise NasError(f"space {space.name!r} has only {space.size} arches, fewer than n={n}")
    picked: list[Arch] = []
    none_arch, _ = reference_arch(space, "none")
    if all(c.op == "none" for _, c in none_arch.choices):
        picked.append(none_arch)
    attn_arch, attn_hits = reference_arch(space, "attn1d")
    if attn_hits > 0 and attn_arch.unet_id not in {a.unet_id for a in picked}:
        picked.append(attn_arch)
    picked = picked[:n]
    # distinct UNets: arches that differ only in the decode choice train the same model
    seen = {a.unet_id for a in picked}
    candidates: list[Arch] = []
    tries = 0
    while len(candidates) < pool and tries < 20 * pool:
        tries += 1
        a = sample_arch(space, rng)
        if a.unet_id not in seen:
            seen.add(a.unet_id)
            candidates.append(a)
    if len(picked) + len(candidates) < n:
        raise NasError(f"found only {len(picked) + len(candidates)} distinct arches for n={n}")
    k = len(space.groups)  # the UNet's choices: the decode choice does not change the model
    cand = np.array([arch_indices(space, a)[:k] for a in candidates], dtype=np.int64)
    if picked:
        chosen = np.array([arch_indices(space, a)[:k] for a in picked], dtype=np.int64)
        mind = (cand[:, None, :] != chosen[None, :, :]).sum(-1).min(1)
    else:
        mind = np.full(len(candidates), np.iinfo(np.int64).max)
    free = np.ones(len(candidates), dtype=bool)
    while len(picked) < n:
        score = np.where(free, mind, -1)
        i = int(np.argmax(score))  # first of the ties: the earlier sample
        picked.append(candidates[i])
        free[i] = False
        mind = np.minimum(mind, (cand != cand[i]).sum(1))
    return picked


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def _corr(x: np.ndarray, y: np.ndarray, kind: str) -> float:
    from scipy.stats import kendalltau, spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    if kind == "kendall":
        return float(kendalltau(x, y).statistic)
    return float(spearmanr(x, y).statistic)


def rank_stats(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
) -> dict[str, float]:
    """Kendall tau and Spearman rho of ``x`` vs ``y`` with bootstrap 95 % intervals.

    The bootstrap resamples pairs (arches) with replacement; resamples where either side is
    constant are dropped. Keys: ``kendall``, ``kendall_lo``, ``kendall_hi``, ``spearman``,
    ``spearman_lo``, ``spearman_hi``.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"kendall": _corr(xa, ya, "kendall"), "spearman": _corr(xa, ya, "spearman")}
    boot: dict[str, list[float]] = {"kendall": [], "spearman": []}
    n = len(xa)
    for _ in range(resamples):
        idx = rng.integers(n, size=n)
        for kind in boot:
            v = _corr(xa[idx], ya[idx], kind)
            if math.isfinite(v):
                boot[kind].append(v)
    for kind, vals in boot.items():
        lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (math.nan, math.nan)
        out[f"{kind}_lo"], out[f"{kind}_hi"] = float(lo), float(hi)
    return out


def noise_ceiling(per_seed: np.ndarray) -> dict[str, float]:
    """Mean pairwise Kendall/Spearman between the seeds' rankings (columns of ``per_seed``),
    and the mean correlation of each seed with the mean of the others (leave one out)."""
    import warnings

    k = per_seed.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out: dict[str, float] = {}
    warnings.filterwarnings("ignore", "Mean of empty slice|All-NaN", RuntimeWarning)
    for kind in ("kendall", "spearman"):
        vals = [_corr(per_seed[:, i], per_seed[:, j], kind) for i, j in pairs]
        loo = [
            _corr(per_seed[:, i], np.delete(per_seed, i, axis=1).mean(1), kind) for i in range(k)
        ]
        out[kind] = float(np.nanmean(vals)) if vals else math.nan
        out[f"{kind}_min"] = float(np.nanmin(vals)) if vals else math.nan
        out[f"{kind}_loo"] = float(np.nanmean(loo))
    return out


# ---------------------------------------------------------------------------------------------
# the result (pure data) and its renderings
# ---------------------------------------------------------------------------------------------


@dataclass
class ProxyValidation:
    """Everything a proxy validation measured; :meth:`table_text` and the HTML render it."""

    config: ProxyValidationConfig
    space_name: str
    arches: list[dict[str, Any]]  # arch_id, arch (describe), indices
    # quality definition -> (n, seeds) matrix as nested lists
    quality: dict[str, list[list[float]]]
    full_train_s: list[list[float]]  # (n, seeds) wall seconds of each full training + 1 eval
    scores: dict[str, list[float]]  # proxy (or variant) -> per-arch value, lower is better
    times: dict[str, list[float]]  # proxy (or variant) -> per-arch wall seconds
    stats: dict[str, dict[str, float]]  # proxy -> rank_stats + cost_ratio
    ceilings: dict[str, dict[str, float]]  # quality definition -> noise_ceiling
    full_cost_s: float  # mean seconds of one full training (+ eval) of an arch that trains
    folder: Path
    notes: list[str] = field(default_factory=list)
    # scale transfer (empty when not run): the subset, both scales' quality, their agreement
    transfer: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> list[float]:
        """The seed-mean trained quality of each arch (the chosen definition)."""
        return [float(np.mean(r)) for r in self.quality[self.config.quality]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "nas-proxy-validation/2",
            "arch_seed": self.config.seed,
            "space": self.space_name,
            "config": self.config.to_dict(),
            "quality_definition": self.config.quality,
            "noise_ceiling": self.ceilings,
            "proxies": self.stats,
            "full_cost_s": self.full_cost_s,
            "arches": [
                {
                    **a,
                    "quality_mean": t,
                    "quality_per_seed": self.quality[self.config.quality][i],
                    "scores": {p: s[i] for p, s in self.scores.items()},
                }
                for i, (a, t) in enumerate(zip(self.arches, self.target, strict=True))
            ],
            "notes": self.notes,
            "scale_transfer": self.transfer,
        }

    def table_text(self) -> str:
        c = self.config
        ceil = self.ceilings[c.quality]
        what = (
            "generated score (caption following by evaluator and tracker, domain FD, flicker)"
            if c.generates
            else f"{c.quality} validation loss"
        )
        lines = [
            f"trained quality = {what} after {c.steps} steps of {c.batch_size}"
            f"{'' if c.precision == 'auto' else f' ({c.precision})'}, mean of "
            f"{c.seeds} seeds; lower is better",
            f"{len(self.arches)} arches picked with arch seed {c.seed}; one full training "
            f"(+ eval) {self.full_cost_s:.1f} s",
            *self.notes,
            f"noise ceiling (mean pairwise between seeds): Kendall {ceil['kendall']:.3f}, "
            f"Spearman {ceil['spearman']:.3f}; seed-to-seed std {ceil['noise_std']:.4g}",
            f"  one seed vs the mean of the others: Kendall {ceil['kendall_loo']:.3f}"
            + (
                f"; without the all-none arch: Kendall {ceil['kendall_without_none']:.3f}"
                if "kendall_without_none" in ceil
                else ""
            ),
            "",
            f"{'proxy':<14}{'Kendall tau [95% CI]':<26}{'Spearman rho [95% CI]':<26}"
            f"{'s/arch':>8}{'cost':>9}{'seed tau':>10}{'noise std':>11}{'tau -none':>10}",
        ]
        for name, s in self.stats.items():
            seed_tau = f"{s['seed_kendall']:>10.3f}" if "seed_kendall" in s else f"{'':>10}"
            noise = f"{s['noise_std']:>11.4g}" if "noise_std" in s else f"{'':>11}"
            no_none = f"{s['kendall_without_none']:>10.3f}" if "kendall_without_none" in s else ""
            lines.append(
                f"{name:<14}"
                f"{s['kendall']:>6.3f} [{s['kendall_lo']:>6.3f}, {s['kendall_hi']:>6.3f}]  "
                f"{s['spearman']:>6.3f} [{s['spearman_lo']:>6.3f}, {s['spearman_hi']:>6.3f}]  "
                f"{s['seconds_per_arch']:>8.2f}{s['cost_ratio'] * 100:>8.2f}%{seed_tau}{noise}"
                f"{no_none}"
            )
        lines += self._target_lines()
        lines += self._transfer_lines()
        others = [
            f"{q} K {v['kendall']:.2f}/S {v['spearman']:.2f}"
            for q, v in self.ceilings.items()
            if q != c.quality
        ]
        lines += [
            "",
            "proxy values: lower is better; cost = proxy seconds per arch / seconds of one full "
            "training (+ its evaluation)",
            "seed tau = Kendall tau between the proxy's own rankings under two of its seeds; "
            "noise std = the seed-to-seed std of its value between arches (the seed's common "
            "shift out); tau -none = Kendall tau "
            "without the all-none arch",
            "noise ceilings of the other quality definitions and parts: " + "; ".join(others),
        ]
        return "\n".join(lines)

    def _target_lines(self) -> list[str]:
        """Issue 15's targets: a noise ceiling >= 0.8, and a proxy at <= 5 % of the ground
        truth's cost with Kendall >= 0.7 and its interval's lower end >= 0.4."""
        ceil = self.ceilings[self.config.quality]["kendall"]
        cheap = {  # the baselines (size, latency) are what a proxy must beat, not candidates
            n: s
            for n, s in self.stats.items()
            if s["cost_ratio"] <= 0.05 and n not in ("params", *EXTRA_PROXIES)
        }
        good = [n for n, s in cheap.items() if s["kendall"] >= 0.7 and s["kendall_lo"] >= 0.4]
        best = max(cheap, key=lambda n: cheap[n]["kendall"], default=None)
        lines = [
            "",
            f"targets: noise ceiling {ceil:.3f} (>= 0.8: {'met' if ceil >= 0.8 else 'NOT met'}); "
            f"proxies (not the params and latency baselines) at <= 5 % cost with Kendall >= 0.7 "
            "and lower end >= 0.4: " + (", ".join(good) if good else "none"),
        ]
        if best is not None:
            b = cheap[best]
            lines.append(
                f"  best at <= 5 % cost: {best}, Kendall {b['kendall']:.3f} "
                f"[{b['kendall_lo']:.3f}, {b['kendall_hi']:.3f}] at {b['cost_ratio'] * 100:.2f} %"
            )
        return lines

    def _transfer_lines(self) -> list[str]:
        t = self.transfer
        if not t:
            return []
        a, g = t["agreement"], t["geometry"]
        return [
            "",
            f"scale transfer: {len(t['arches'])} arches also trained at "
            f"width x{t['width_mult']:g}, "
            f"{g['frames']}x{g['latent_height']}x{g['latent_width']}, "
            f"{t['steps']:,} steps ({t['seeds']} seed(s)): "
            f"Kendall {a['kendall']:.3f} [{a['kendall_lo']:.3f}, {a['kendall_hi']:.3f}], "
            f"Spearman {a['spearman']:.3f} between the scales",
            "  each proxy's Kendall against the larger scale: "
            + ", ".join(f"{k} {v:.2f}" for k, v in t["proxies"].items()),
        ]

    def csv_text(self) -> str:
        q = self.quality[self.config.quality]
        buf = io.StringIO()
        fields = ["arch_id", "arch", "quality_mean"]
        fields += [f"quality_seed{s}" for s in range(self.config.seeds)]
        fields.append("full_train_s")
        for name in self.scores:
            fields += [name, f"{name}_s"]
        for qname in self.quality:
            if qname != self.config.quality:
                fields.append(f"{qname}_mean")
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for i, a in enumerate(self.arches):
            row: dict[str, Any] = {
                "arch_id": a["arch_id"],
                "arch": a["arch"],
                "quality_mean": f"{float(np.mean(q[i])):.6g}",
            }
            for s in range(self.config.seeds):
                row[f"quality_seed{s}"] = f"{q[i][s]:.6g}"
            row["full_train_s"] = f"{float(np.mean(self.full_train_s[i])):.2f}"
            for name, vals in self.scores.items():
                row[name] = f"{vals[i]:.6g}"
                row[f"{name}_s"] = f"{self.times[name][i]:.3f}"
            for qname, mat in self.quality.items():
                if qname != self.config.quality:
                    row[f"{qname}_mean"] = f"{float(np.mean(mat[i])):.6g}"
            w.writerow(row)
        return buf.getvalue()


def render_proxy_validation_html(info: ProxyValidation, path: Path) -> Path:
    """One scatter per proxy (proxy value vs seed-mean trained quality, per-seed spread as
    error bars) and a bar chart of Kendall tau with its interval; plotly.js beside the file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(info.scores)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols) + 1
    titles = [f"{n}: tau {info.stats[n]['kendall']:.2f}" if n in info.stats else n for n in names]
    titles += [""] * (cols * (rows - 1) - len(names)) + ["Kendall tau vs trained quality"]
    specs: list[list[dict[str, Any] | None]] = [[{} for _ in range(cols)] for _ in range(rows - 1)]
    specs.append([{"colspan": cols}] + [None] * (cols - 1))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, specs=specs)
    target = np.array(info.target)
    spread = np.array(info.quality[info.config.quality]).std(1)
    labels = [f"{a['arch_id']}: {a['arch']}" for a in info.arches]
    for k, name in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=info.scores[name],
                y=target,
                error_y={"type": "data", "array": spread, "visible": True},
                mode="markers",
                text=labels,
                name=name,
                showlegend=False,
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
        fig.update_xaxes(
            title_text=f"{name} (lower is better)", row=k // cols + 1, col=k % cols + 1
        )
        fig.update_yaxes(title_text="trained loss", row=k // cols + 1, col=k % cols + 1)
    st = list(info.stats)
    tau = np.array([info.stats[n]["kendall"] for n in st])
    fig.add_trace(
        go.Bar(
            x=st,
            y=tau,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [info.stats[n]["kendall_hi"] - info.stats[n]["kendall"] for n in st],
                "arrayminus": [info.stats[n]["kendall"] - info.stats[n]["kendall_lo"] for n in st],
            },
            showlegend=False,
        ),
        row=rows,
        col=1,
    )
    ceil = info.ceilings[info.config.quality]["kendall"]
    if math.isfinite(ceil):
        fig.add_hline(y=ceil, line_dash="dash", annotation_text="noise ceiling", row=rows, col=1)
    c = info.config
    fig.update_layout(
        title=f"Proxy validation on {info.space_name}: {len(info.arches)} arches, quality "
        f"{c.quality} after {c.steps} steps ({c.seeds} seeds)",
        height=330 * rows,
        template="plotly_white",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    html = fig.to_html(include_plotlyjs="directory", full_html=True)
    atomic_write_text(path, html)
    js = path.parent / "plotly.min.js"
    if not js.is_file():
        from plotly.offline import get_plotlyjs

        atomic_write_text(js, get_plotlyjs())
    return path


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------


def _quality_matrices(
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    seeds: Sequence[int],
    done: Mapping[tuple[str, int], Mapping[str, Any]],
) -> dict[str, list[list[float]]]:
    """Quality definition (and, when generated, each part as ``gen_<part>``) -> (arch, seed)."""
    out: dict[str, list[list[float]]] = {}
    for q, (which, model) in QUALITY_DEFINITIONS.items():
        if which == "generated" and not c.generates:
            continue
        out[q] = [[quality_of(done[(a.arch_id, s)], which, model) for s in seeds] for a in arches]
    if c.generates:
        for part in GENERATED_PARTS:
            out[f"gen_{part}"] = [
                [float(done[(a.arch_id, s)]["generated"][part]) for s in seeds] for a in arches
            ]
    return out


def _full_cost(
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    done: Mapping[tuple[str, int], Mapping[str, Any]],
) -> tuple[list[list[float]], float]:
    """Seconds of each full training with its evaluation, and their mean (the cost unit)."""
    full_s = [
        [
            float(done[(a.arch_id, s)]["train_s"]) + float(done[(a.arch_id, s)].get("eval_s", 0))
            for s in range(c.seeds)
        ]
        for a in arches
    ]
    finite = [t for row in full_s for t in row if math.isfinite(t)]
    return full_s, float(np.mean(finite)) if finite else math.nan


def _begin(
    space: SearchSpace, folder: str | Path, config: ProxyValidationConfig | None
) -> tuple[ProxyValidationConfig, Path, list[Arch]]:
    """The settings, the run folder (made) and the arches of a validation: the same for its
    main process and every worker, so they train the same (arch, seed) runs."""
    c = config or ProxyValidationConfig()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return c, out, _arches(space, c)


def _arches(space: SearchSpace, c: ProxyValidationConfig) -> list[Arch]:
    """A validation's arches: picked from its arch seed, so every process picks the same."""
    return pick_diverse_arches(space, c.n, np.random.default_rng(c.seed), pool=c.pool)


def validate_proxies(
    space: SearchSpace,
    folder: str | Path,
    config: ProxyValidationConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    poll_s: float = 30.0,
) -> ProxyValidation:
    """Run a proxy validation (see the module docstring); files go to ``folder``. Trainings
    that other processes (:func:`validation_worker`) hold are waited for, polling every
    ``poll_s`` seconds."""
    c, folder, arches = _begin(space, folder, config)
    say = log or (lambda _msg: None)
    say(f"arches: {len(arches)} picked with arch seed {c.seed}; ground truth: {c.quality}")

    # 1. the full trainings (each resumable, cached in trained.jsonl) that no worker
    # (validation_worker) has claimed, base scale then transfer; 2. the proxy values, each
    # timed, that no worker holds, then those they hold; 3. the trainings they hold
    seeds = list(range(c.seeds))
    base = Scale(c.width_mult, c.geometry)
    train_ground_truth(space, c, arches, folder, progress=progress)  # base, then transfer
    _score_proxies(space, c, arches, folder, say, wait=False)
    scores, times, reseeded = _score_proxies(space, c, arches, folder, say, poll_s=poll_s)
    done = full_trainings(
        space, c, arches, seeds, folder, base, progress=progress, log=say, poll_s=poll_s
    )
    quality = _quality_matrices(c, arches, seeds, done)
    full_s, mean_full = _full_cost(c, arches, done)

    # 3. statistics
    stats, ceilings = _statistics(c, arches, quality, scores, times, reseeded, mean_full)
    notes = [f"ground truth clips: {sampler_of(c, space)}"] if c.generates else []
    collapsed = [f"{a}-s{s}" for (a, s), rec in sorted(done.items()) if rec.get("collapsed")]
    if collapsed:
        notes.append(
            f"{len(collapsed)} full training(s) ended at more than {COLLAPSE_RATIO:g}x their "
            f"best loss (collapsed; their quality is the collapsed model's): "
            f"{', '.join(collapsed)}; a lower --lr trains these arches stably"
        )
    if any(not math.isfinite(v) for vals in scores.values() for v in vals):
        notes.append("some proxy values are not finite")
    transfer = _scale_transfer(space, c, arches, quality, scores, folder, progress, poll_s)
    info = ProxyValidation(
        config=c,
        space_name=space.name,
        arches=[
            {"arch_id": a.arch_id, "arch": a.describe(), "indices": arch_indices(space, a)}
            for a in arches
        ],
        quality=quality,
        full_train_s=full_s,
        scores=scores,
        times=times,
        stats=stats,
        ceilings=ceilings,
        full_cost_s=mean_full,
        folder=folder,
        notes=notes,
        transfer=transfer,
    )
    atomic_write_text(folder / "proxy_validation.csv", info.csv_text())
    atomic_write_text(folder / "summary.json", json.dumps(info.to_dict(), indent=2) + "\n")
    render_proxy_validation_html(info, folder / "proxy_validation.html")
    return info


def validation_worker(
    space: SearchSpace,
    folder: str | Path,
    config: ProxyValidationConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """One more process for a validation (``nas validate proxy --worker``): it trains the
    (arch, seed) runs, base scale then the transfer subset, that no other process sharing
    ``folder`` has claimed, then computes the proxy values none has claimed, and returns
    when none is left to claim; the run without ``--worker`` waits for the rest and writes
    the results. Returns the counts of trainings ``done`` (by any process) and ``left``."""
    c, folder, arches = _begin(space, folder, config)
    counts = train_ground_truth(space, c, arches, folder, progress=progress, log=log)
    _score_proxies(space, c, arches, folder, log or (lambda _msg: None), wait=False)
    return counts


@dataclass
class ValidationStatus:
    """Where a validation's full trainings stand (:func:`validation_status`)."""

    folder: Path
    config: ProxyValidationConfig
    arches: dict[str, str]  # arch_id -> its description
    rows: list[dict[str, Any]]  # training_status's, one per (scale, arch, seed)
    notes: list[str] = field(default_factory=list)
    # the proxy phase: "values" computed (in proxies.jsonl) and "computing" now, by "pids"
    proxies: dict[str, Any] = field(default_factory=dict)

    def left(self, scale: str) -> dict[str, Any]:
        """At ``scale``: counts by state, steps left, the median rate and the hours left."""
        rows = [r for r in self.rows if r["scale"] == scale]
        counts = {k: sum(r["state"] == k for r in rows)
                  for k in ("done", "running", "stopped", "not started")}  # fmt: skip
        steps_left = sum(r["steps"] - r["step"] for r in rows if r["state"] != "done")
        rates = [r["videos_per_s"] for r in rows if r["videos_per_s"]]
        rate = float(np.median(rates)) if rates else None
        procs = len({r["pid"] for r in self.rows if r["pid"] is not None})
        hours = (
            steps_left * self.config.batch_size / rate / max(procs, 1) / 3600
            if rate and steps_left
            else (0.0 if not steps_left else None)
        )
        return {"total": len(rows), **counts, "steps_left": steps_left, "rate": rate,
                "processes": procs, "hours": hours}  # fmt: skip

    def ceiling_so_far(self) -> dict[str, Any] | None:
        """The ground truth's seed-vs-seed agreement on the arches whose every base seed is
        done (None below 3 such arches): ``arches``, ``kendall`` and ``spearman`` (mean over
        seed pairs) and, with 2 seeds, Kendall's bootstrap interval."""
        which, model = QUALITY_DEFINITIONS[self.config.quality]
        per: dict[str, dict[int, float]] = {}
        for r in self.rows:
            if r["scale"] == "base" and r["record"] is not None:
                per.setdefault(r["arch_id"], {})[r["seed"]] = quality_of(r["record"], which, model)
        full = [v for v in per.values() if len(v) == self.config.seeds]
        if len(full) < 3:
            return None
        m = np.array([[v[s] for s in sorted(v)] for v in full])
        out: dict[str, Any] = {"arches": len(full), **noise_ceiling(m)}
        if m.shape[1] == 2:
            st = rank_stats(m[:, 0], m[:, 1], np.random.default_rng(self.config.seed))
            out["kendall_lo"], out["kendall_hi"] = st["kendall_lo"], st["kendall_hi"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """``nas validate proxy --status --json``: the trainings (each with its arch and, when
        done, its quality), per scale what is left, the ceiling so far and the notes."""
        which, model = QUALITY_DEFINITIONS[self.config.quality]
        return {
            "folder": str(self.folder),
            "trainings": [
                {
                    **{k: v for k, v in r.items() if k != "record"},
                    "arch": self.arches[r["arch_id"]],
                    "quality": (
                        quality_of(r["record"], which, model) if r["record"] is not None else None
                    ),
                    "collapsed": bool(r["record"] and r["record"].get("collapsed")),
                }
                for r in self.rows
            ],
            "scales": {s: self.left(s) for s in dict.fromkeys(r["scale"] for r in self.rows)},
            "ceiling_so_far": self.ceiling_so_far(),
            "proxies": self.proxies,
            "notes": self.notes,
        }

    def text(self) -> str:
        c = self.config
        which, model = QUALITY_DEFINITIONS[c.quality]
        lines = [
            f"validation in {self.folder}: {c.n} arches (arch seed {c.seed}) x {c.seeds} seeds, "
            f"{c.steps:,} steps of {c.batch_size} videos each; ground truth {c.quality}",
            f"{'scale':<9}{'arch':<14}{'seed':>4}  {'state':<13}{'step':>6}{'videos/s':>10}"
            f"{'quality':>9}  arch",
        ]
        for r in self.rows:
            state = f"running {r['pid']}" if r["state"] == "running" else r["state"]
            rate = f"{r['videos_per_s']:.1f}" if r["videos_per_s"] else "-"
            rec = r["record"]
            q = f"{quality_of(rec, which, model):.3f}" if rec is not None else "-"
            if rec is not None and rec.get("collapsed"):
                q += "!"
            lines.append(
                f"{r['scale']:<9}{r['arch_id']:<14}{r['seed']:>4}  {state:<13}{r['step']:>6}"
                f"{rate:>10}{q:>9}  {self.arches[r['arch_id']][:44]}"
            )
        for scale in dict.fromkeys(r["scale"] for r in self.rows):
            x = self.left(scale)
            line = (
                f"{scale}: {x['done']} of {x['total']} done, {x['running']} running, "
                f"{x['stopped']} stopped, {x['not started']} not started"
            )
            if x["steps_left"]:
                line += f"; {x['steps_left']:,} steps left"
                if x["hours"] is not None:
                    line += (
                        f", about {x['hours']:.1f} h at {x['rate']:.1f} videos/s (the median "
                        f"rate so far; it varies by arch) with {max(x['processes'], 1)} "
                        f"process(es)"
                    )
                else:
                    line += ", no rate measured at this scale yet"
            lines.append(line)
        ceiling = self.ceiling_so_far()
        if ceiling is not None:
            lines.append(
                f"noise ceiling so far ({ceiling['arches']} arches with every seed done): "
                f"seed-vs-seed Kendall {ceiling['kendall']:.2f}"
                + (
                    f" [{ceiling['kendall_lo']:.2f}, {ceiling['kendall_hi']:.2f}]"
                    if "kendall_lo" in ceiling
                    else ""
                )
                + f", Spearman {ceiling['spearman']:.2f}"
            )
        if self.proxies.get("values") or self.proxies.get("computing"):
            pids = ", ".join(str(x) for x in self.proxies.get("pids", []))
            lines.append(
                f"proxies: {self.proxies['values']} values computed (proxies.jsonl), "
                f"{self.proxies['computing']} being computed" + (f" (pid {pids})" if pids else "")
            )
        if any(r["record"] is not None and r["record"].get("collapsed") for r in self.rows):
            lines.append(f"!: collapsed (last loss above {COLLAPSE_RATIO:g}x its best)")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def validation_status(
    space: SearchSpace, folder: str | Path, config: ProxyValidationConfig | None = None
) -> ValidationStatus:
    """Where the full trainings of the validation in ``folder`` stand (``nas validate proxy
    --status``), read without changing anything: give the settings the run was started with,
    since they decide its arches and which records and run folders are its."""
    c = config or ProxyValidationConfig()
    out = Path(folder)
    if not out.is_dir():
        raise NasError(
            f"{out}: no such folder; start the validation there first (nas validate proxy "
            f"--out {out} ...), then --status shows where it stands"
        )
    arches = _arches(space, c)
    rows = training_status(space, c, arches, out)
    notes = []
    if all(r["state"] == "not started" for r in rows) and (
        (out / "trained.jsonl").is_file() or any((out / "runs").glob("*/*"))
    ):
        notes.append(
            f"{out} holds trainings, but none with these settings: give the settings the run "
            "was started with (the same flags but --worker and --status)"
        )
    return ValidationStatus(
        folder=out,
        config=c,
        arches={a.arch_id: a.describe() for a in arches},
        rows=rows,
        notes=notes,
        proxies=_proxy_status(out, {a.arch_id for a in arches}),
    )


def _proxy_status(folder: Path, arch_ids: set[str]) -> dict[str, Any]:
    """The proxy values of these arches computed in ``folder`` and those being computed now
    (their locks' holders, read from the kernel's list as for the trainings)."""
    values = {(k, a) for k, a in _proxy_records(folder / "proxies.jsonl") if a in arch_ids}
    locks = [
        p for p in (folder / "proxy_locks").glob("*-*.lock") if p.stem.split("-", 1)[1] in arch_ids
    ]
    holders = lock_holders(locks) or {}
    return {"values": len(values), "computing": len(holders), "pids": sorted(set(holders.values()))}


def _scale_transfer(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    quality: Mapping[str, list[list[float]]],
    scores: Mapping[str, list[float]],
    folder: Path,
    progress: bool,
    poll_s: float,
) -> dict[str, Any]:
    """The first ``transfer_n`` arches trained again at the transfer scale: the rank agreement
    of their quality with the base scale's, and of each proxy with the larger scale's."""
    if c.transfer_n == 0:
        return {}
    subset = list(arches[: c.transfer_n])
    scale = transfer_scale(c)
    width = scale.width_mult
    seeds = list(range(c.transfer_seeds))
    done = full_trainings(space, c, subset, seeds, folder, scale, progress=progress, poll_s=poll_s)
    big = _quality_matrices(c, subset, seeds, done)[c.quality]
    big_mean = [float(np.mean(r)) for r in big]
    small_mean = [float(np.mean(r)) for r in quality[c.quality][: c.transfer_n]]
    rng = np.random.default_rng([c.seed, 0x5CA1])
    geo = proxy_geometry(space, scale.geometry)
    return {
        "arches": [a.arch_id for a in subset],
        "width_mult": width,
        "geometry": {
            "frames": geo.frames,
            "latent_height": geo.latent_height,
            "latent_width": geo.latent_width,
        },
        "seeds": c.transfer_seeds,
        "steps": scale.budget(c),
        "quality_base": small_mean,
        "quality_transfer": big_mean,
        "agreement": rank_stats(small_mean, big_mean, rng, resamples=c.bootstrap),
        "proxies": {
            name: _corr(np.array(v[: c.transfer_n]), np.array(big_mean), "kendall")
            for name, v in scores.items()
        },
    }


def _score_proxies(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    folder: Path,
    say: Callable[[str], None],
    *,
    wait: bool = True,
    poll_s: float = 30.0,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Each proxy's value and wall seconds per arch, and its values with the next seed; each
    value is cached in ``folder`` (:class:`_ProxyCache`), so an interrupted run resumes, and
    shared with the other processes there: the values they hold are waited for (``wait``)
    or left to them (NaN here). Progress is said when not waiting (the pass that computes);
    a wait, always. The latency row (the cost model's, not cached) is made only when
    waiting: the pass whose values count."""
    scores: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    common: dict[str, Any] = {
        "width_mult": c.width_mult,
        "geometry": c.geometry,
        "difficulty": c.difficulty,
        "background": c.background,
        "colours": c.colours,
        "seed": c.proxy_seed,
    }
    cache = _ProxyCache(folder, space, wait=wait, poll_s=poll_s, say=say)
    reseeded: dict[str, list[float]] = {}  # the same proxies with seed proxy_seed + 1
    announce = say if not wait else (lambda _msg: None)
    for name in c.proxies:
        announce(f"proxy {name} ...")
        if name == "train":
            _run_training_proxies(space, c, common, arches, scores, times, reseeded, cache)
            continue
        if name == "latency":  # not cached, nothing to share: once, in the pass that counts
            if wait:
                _latency_row(space, c, arches, scores, times, say)
            continue
        opts = dict(common)
        if name == "generate":
            opts.update(_generate_options(c, folder))
        for seed, into in ((c.proxy_seed, scores), (c.proxy_seed + 1, reseeded)):
            o = {**opts, "seed": seed}
            value = _lazy(functools.partial(make_proxy, name, space, **o))
            into[name] = []
            for arch in arches:
                v, secs = cache.run(name, o, arch, value)
                into[name].append(v)
                if seed == c.proxy_seed:
                    times.setdefault(name, []).append(secs)
    return scores, times, reseeded


def _lazy(make: Callable[[], Any]) -> Callable[[Arch], float]:
    """``make()``'s ``evaluate``, made at its first call: an all-cached run builds nothing."""
    made: list[Any] = []

    def evaluate(arch: Arch) -> float:
        if not made:
            made.append(make())
        return float(made[0].evaluate(arch))

    return evaluate


def _proxy_records(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The records of a ``proxies.jsonl`` by (key, arch_id); none when it is missing."""
    return {
        (rec["key"], rec["arch_id"]): rec
        for rec in jsonl_records(path)
        if "key" in rec and "arch_id" in rec
    }


class _ProxyCache:
    """Every proxy value a validation has computed, one line each in ``proxies.jsonl``:
    keyed by the space, the proxy, its settings (not the device or the evaluator's folder,
    as with the full trainings) and the arch, with the seconds it took when it ran. A rerun
    reads them instead of computing them again, so an interrupted validation loses at most
    the value in progress, and its cost figures stay those of the runs that made them.

    Processes sharing the folder share the work: each value is claimed with a lock file
    under ``proxy_locks/`` while it is computed. One held by another process is waited for
    (``wait``, polling every ``poll_s`` seconds; taken over if that process dies) or skipped
    (a worker's share: NaN, and the process that waits reads it later)."""

    def __init__(
        self,
        folder: Path,
        space: SearchSpace,
        *,
        wait: bool = True,
        poll_s: float = 30.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.path = folder / "proxies.jsonl"
        self.locks = folder / "proxy_locks"
        self.space = space
        self.wait, self.poll_s = wait, poll_s
        self.say = say or (lambda _msg: None)
        self.done: dict[tuple[str, str], dict[str, Any]] = {}
        self._read()

    def _read(self) -> None:
        """Load the records in the file (those other processes added since, too)."""
        self.done.update(_proxy_records(self.path))

    def key(self, name: str, opts: Mapping[str, Any]) -> str:
        kept = {k: v for k, v in opts.items() if k not in ("device", "evaluator_cache")}
        payload = json.dumps(
            {"space": self.space.hash, "proxy": name, "opts": kept}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def run(
        self, name: str, opts: Mapping[str, Any], arch: Arch, fn: Callable[[Arch], Any]
    ) -> tuple[Any, float]:
        """``fn(arch)``'s value and seconds: cached, or computed now and recorded."""
        key = self.key(name, opts)
        waited = False
        while True:
            hit = self.done.get((key, arch.arch_id))
            if hit is not None:
                return hit["value"], float(hit["seconds"])
            held = claim(self.locks / f"{key}-{arch.arch_id}.lock")
            if held is not None:
                break
            if not self.wait:
                return math.nan, math.nan  # another process computes it
            if not waited:
                self.say(f"waiting for {name} of {arch.arch_id}, which another process computes")
                waited = True
            time.sleep(self.poll_s)
            self._read()
        try:
            self._read()  # another process may have finished it
            hit = self.done.get((key, arch.arch_id))
            if hit is not None:
                return hit["value"], float(hit["seconds"])
            t0 = time.perf_counter()
            value = fn(arch)
            rec = {"key": key, "proxy": name, "arch_id": arch.arch_id, "value": value,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            lock = self.path.with_name(self.path.name + ".lock")
            with locked(lock), self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        finally:
            held.close()
        self.done[(key, arch.arch_id)] = rec
        return value, rec["seconds"]


def _generate_options(c: ProxyValidationConfig, folder: Path) -> dict[str, Any]:
    """The generation-based early proxy: a short training as the full ones are run, then a
    few clips scored with the ground truth's evaluator (trained once, in ``folder``)."""
    return {
        "steps": c.early_steps,
        "batch_size": c.batch_size,
        "lr": c.lr,
        "train_spatial": c.train_spatial,
        "n_samples": c.early_n,
        "evaluator_steps": c.evaluator_steps,
        "evaluator_cache": folder / "evaluator",
        "device": c.device,
        "precision": c.precision,
    }


def _latency_row(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    scores: dict[str, list[float]],
    times: dict[str, list[float]],
    say: Callable[[str], None],
) -> None:
    """Minus the cost model's UNet step latency on ``latency_device``: "slower is better". A
    proxy that only tracks it measures size, not quality. Skipped (with a message) when the
    space has no table for that device."""
    from nas.cost import CostModel, Table, find_table

    try:
        cost = CostModel(space, Table.load(find_table(c.latency_device, c.latency_tables)))
    except NasError as e:
        say(f"latency row skipped: {e}")
        return
    scores["latency"], times["latency"] = [], []
    for arch in arches:
        t0 = time.perf_counter()
        scores["latency"].append(-cost.evaluate(arch).latency_ms_step)
        times["latency"].append(time.perf_counter() - t0)


def _statistics(
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    quality: Mapping[str, list[list[float]]],
    scores: Mapping[str, list[float]],
    times: Mapping[str, list[float]],
    reseeded: Mapping[str, list[float]],
    mean_full: float,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per proxy: rank agreement with the seed-mean quality, cost, seed stability; per quality
    definition: the noise ceiling (each also without the all-none arch, when there is one)."""
    target = np.array([np.mean(r) for r in quality[c.quality]])
    none_idx = [i for i, a in enumerate(arches) if all(ch.op == "none" for _, ch in a.choices)]
    stats: dict[str, dict[str, float]] = {}
    for name, vals in scores.items():
        st = rank_stats(
            vals, target, np.random.default_rng([c.seed, 0xB007]), resamples=c.bootstrap
        )
        st["seconds_per_arch"] = float(np.mean(times[name]))
        st["cost_ratio"] = float(np.mean(times[name])) / mean_full
        if none_idx:  # the all-none arch is easy to rank last: the tau without it
            keep = [i for i in range(len(arches)) if i not in none_idx]
            st["kendall_without_none"] = _corr(np.array(vals)[keep], target[keep], "kendall")
        if name in reseeded:  # does the proxy's own seed change its ranking?
            again = np.array(reseeded[name])
            st["seed_kendall"] = _corr(np.array(vals), again, "kendall")
            # the seed-to-seed spread of its value between arches (seed_noise: the seed's
            # common shift taken out): the error bar a search draws on this proxy's quality
            # axis; pooled_std keeps the shift (the figure before issue 15's reconciliation)
            st["noise_std"], st["pooled_std"] = seed_noise(np.stack([vals, again], axis=1))
        stats[name] = st
    ceilings = {q: noise_ceiling(np.array(m)) for q, m in quality.items()}
    for q, m in quality.items():  # the ground truth's own seed-to-seed spread, pooled
        ceilings[q]["noise_std"] = float(np.sqrt(np.mean(np.var(np.array(m), axis=1, ddof=1))))
    if none_idx and len(arches) - len(none_idx) >= 2:
        for q, m in quality.items():
            rest = noise_ceiling(np.delete(np.array(m), none_idx, axis=0))
            ceilings[q]["kendall_without_none"] = rest["kendall"]
    return stats, ceilings


def _run_training_proxies(
    space: SearchSpace,
    c: ProxyValidationConfig,
    common: Mapping[str, Any],
    arches: Sequence[Arch],
    scores: dict[str, list[float]],
    times: dict[str, list[float]],
    reseeded: dict[str, list[float]],
    cache: _ProxyCache,
) -> None:
    """The training proxy as a search uses it, and two views of it.

    ``train``: ``TrainingProxy(steps=K).evaluate`` (EMA weights), timed; ``train[raw]``: the
    same with the trained weights. ``train@k`` for k = K/2, K, 2K, 4K: one run of 4K steps
    in rungs (:meth:`TrainingProxy.evaluate_with_reports`), each rung timed from the start of
    the run, so its cost includes the rung checkpoints and the earlier rungs' evaluations.
    ``train`` and ``train[raw]`` are also run with the next seed (``reseeded``). Each value
    is cached in ``cache``.
    """
    k = c.proxy_steps
    opts = {
        **common,
        "steps": k,
        "batch_size": c.proxy_batch_size,
        "lr": c.proxy_lr,
        "n_val": c.n_val,
        "device": c.device,
    }
    opts["geometry"] = c.training_proxy_geometry
    for name, ema in (("train", True), ("train[raw]", False)):
        for seed, into in ((c.proxy_seed, scores), (c.proxy_seed + 1, reseeded)):
            o = {**opts, "seed": seed, "ema": ema}
            evaluate = _lazy(functools.partial(TrainingProxy, space, **o))
            into[name] = []
            for arch in arches:
                v, secs = cache.run("train", o, arch, evaluate)
                into[name].append(float(v))
                if seed == c.proxy_seed:
                    times.setdefault(name, []).append(secs)
    fractions = (0.125, 0.25, 0.5, 1.0)
    o = {**opts, "steps": 4 * k, "rungs": fractions}
    sweep = TrainingProxy(space, **o)

    def rungs(arch: Arch) -> list[list[float]]:
        marks: list[float] = []
        t0 = time.perf_counter()

        def report(_step: int, _value: float) -> bool:
            marks.append(time.perf_counter() - t0)
            return False

        sweep.evaluate_with_reports(arch, report)
        return [[r.step, r.value, secs] for r, secs in
                zip(sweep.rungs(arch.arch_id), marks, strict=True)]  # fmt: skip

    for arch in arches:
        got = cache.run("train@rungs", o, arch, rungs)[0]
        if not isinstance(got, list):
            continue  # a worker's skip: another process computes it
        for step, value, secs in got:
            scores.setdefault(f"train@{int(step)}", []).append(float(value))
            times.setdefault(f"train@{int(step)}", []).append(float(secs))
