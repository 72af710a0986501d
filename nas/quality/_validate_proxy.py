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
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError
from nas.fileio import atomic_write_text
from nas.quality._data import DIFFICULTIES, ProceduralVideos
from nas.quality._eval import validation_loss, weighted_validation_loss
from nas.quality._proxies import (
    DEFAULT_PROXY_WIDTH_MULT,
    PROXIES,
    TrainingProxy,
    _build,
    make_proxy,
    proxy_geometry,
)
from nas.quality._train import TrainConfig, train
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
    "pick_diverse_arches",
    "rank_stats",
    "render_proxy_validation_html",
    "validate_proxies",
]

TIMESTEPS = (200, 500, 800)
# name -> (timestep or "weighted", "ema" | "raw")
QUALITY_DEFINITIONS: dict[str, tuple[str, str]] = {
    "t800_ema": ("800", "ema"),
    "t800_raw": ("800", "raw"),
    "weighted_ema": ("weighted", "ema"),
    "weighted_raw": ("weighted", "raw"),
}


@dataclass(frozen=True)
class ProxyValidationConfig:
    """Settings of a proxy validation. The defaults run in about half an hour on 2 CPU cores."""

    n: int = 8  # arches
    seeds: int = 3  # full trainings per arch (seeds 0 .. seeds-1)
    steps: int = 150  # the full budget (optimizer steps per training)
    proxy_steps: int = 16  # the training proxy's budget K
    width_mult: float = DEFAULT_PROXY_WIDTH_MULT  # proxy-scale backbone width
    # over DEFAULT_PROXY_GEOMETRY (a mapping such as {"frames": 4} is converted)
    geometry: GeometryOverride = field(default_factory=GeometryOverride)
    # the training proxy's video: these overrides on top of the full trainings' geometry
    proxy_geometry: GeometryOverride = field(
        default_factory=lambda: GeometryOverride(latent_height=8, latent_width=8)
    )
    difficulty: str = "medium"  # procedural data
    batch_size: int = 4  # videos per step (full trainings and the training proxy)
    lr: float = 1e-3  # AdamW learning rate (full trainings and the training proxy)
    quality: str = "t800_ema"  # one of QUALITY_DEFINITIONS: what "trained quality" means
    proxies: tuple[str, ...] = ("naswot", "synflow", "params", "train")
    seed: int = 0  # arch picking and bootstrap
    proxy_seed: int = 100  # the proxies' init/data seed: not one of the full trainings' seeds
    pool: int = 300  # random arches the diverse picks are chosen from
    bootstrap: int = 2000  # bootstrap resamples for the intervals
    n_val: int = 16  # held-out videos per validation loss

    def __post_init__(self) -> None:
        # plain data in (mappings, a list of proxies): stored as the typed forms
        for name in ("geometry", "proxy_geometry"):
            object.__setattr__(self, name, GeometryOverride.coerce(getattr(self, name)))
        object.__setattr__(self, "proxies", tuple(self.proxies))
        if self.n < 3:
            raise NasError(f"--n must be at least 3 (rank correlations need arches), got {self.n}")
        if self.seeds < 2:
            raise NasError(f"--seeds must be at least 2 (for the noise ceiling), got {self.seeds}")
        for name in ("steps", "proxy_steps", "batch_size", "pool", "bootstrap", "n_val"):
            if getattr(self, name) < 1:
                raise NasError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.quality not in QUALITY_DEFINITIONS:
            raise NasError(
                f"quality {self.quality!r} is not one of {', '.join(QUALITY_DEFINITIONS)}"
            )
        if self.difficulty not in DIFFICULTIES:
            raise NasError(f"difficulty {self.difficulty!r} is not one of {list(DIFFICULTIES)}")
        unknown = [p for p in self.proxies if p not in PROXIES]
        if unknown or not self.proxies:
            raise NasError(f"unknown proxies {unknown}; proxies: {', '.join(PROXIES)}")

    @property
    def training_proxy_geometry(self) -> GeometryOverride:
        """The training proxy's geometry overrides: ``geometry``, then ``proxy_geometry``."""
        return self.geometry.merged(self.proxy_geometry)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["geometry"] = self.geometry.to_dict()
        out["proxy_geometry"] = self.proxy_geometry.to_dict()
        out["proxies"] = list(self.proxies)
        return out


# ---------------------------------------------------------------------------------------------
# arches
# ---------------------------------------------------------------------------------------------


def pick_diverse_arches(
    space: SearchSpace, n: int, rng: np.random.Generator, *, pool: int = 300
) -> list[Arch]:
    """``n`` distinct arches, spread out over the space.

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
    if attn_hits > 0 and attn_arch.arch_id not in {a.arch_id for a in picked}:
        picked.append(attn_arch)
    picked = picked[:n]
    seen = {a.arch_id for a in picked}
    candidates: list[Arch] = []
    tries = 0
    while len(candidates) < pool and tries < 20 * pool:
        tries += 1
        a = sample_arch(space, rng)
        if a.arch_id not in seen:
            seen.add(a.arch_id)
            candidates.append(a)
    if len(picked) + len(candidates) < n:
        raise NasError(f"found only {len(picked) + len(candidates)} distinct arches for n={n}")
    cand = np.array([arch_indices(space, a) for a in candidates], dtype=np.int64)
    if picked:
        chosen = np.array([arch_indices(space, a) for a in picked], dtype=np.int64)
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
    k = per_seed.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out: dict[str, float] = {}
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

    @property
    def target(self) -> list[float]:
        """The seed-mean trained quality of each arch (the chosen definition)."""
        return [float(np.mean(r)) for r in self.quality[self.config.quality]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "nas-proxy-validation/1",
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
        }

    def table_text(self) -> str:
        c = self.config
        ceil = self.ceilings[c.quality]
        lines = [
            f"trained quality = {c.quality} validation loss after {c.steps} steps, mean of "
            f"{c.seeds} seeds; {len(self.arches)} arches; one full training (+ eval) "
            f"{self.full_cost_s:.1f} s",
            f"noise ceiling (mean pairwise between seeds): Kendall {ceil['kendall']:.3f}, "
            f"Spearman {ceil['spearman']:.3f}",
            f"  one seed vs the mean of the others: Kendall {ceil['kendall_loo']:.3f}"
            + (
                f"; without the all-none arch: Kendall {ceil['kendall_without_none']:.3f}"
                if "kendall_without_none" in ceil
                else ""
            ),
            "",
            f"{'proxy':<14}{'Kendall tau [95% CI]':<26}{'Spearman rho [95% CI]':<26}"
            f"{'s/arch':>8}{'cost':>9}{'seed tau':>10}{'tau -none':>10}",
        ]
        for name, s in self.stats.items():
            seed_tau = f"{s['seed_kendall']:>10.3f}" if "seed_kendall" in s else f"{'':>10}"
            no_none = f"{s['kendall_without_none']:>10.3f}" if "kendall_without_none" in s else ""
            lines.append(
                f"{name:<14}"
                f"{s['kendall']:>6.3f} [{s['kendall_lo']:>6.3f}, {s['kendall_hi']:>6.3f}]  "
                f"{s['spearman']:>6.3f} [{s['spearman_lo']:>6.3f}, {s['spearman_hi']:>6.3f}]  "
                f"{s['seconds_per_arch']:>8.2f}{s['cost_ratio'] * 100:>8.2f}%{seed_tau}{no_none}"
            )
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
            "tau -none = Kendall tau without the all-none arch",
            "noise ceilings of the other quality definitions: " + "; ".join(others),
        ]
        return "\n".join(lines)

    def csv_text(self) -> str:
        q = self.quality[self.config.quality]
        buf = io.StringIO()
        fields = ["arch_id", "arch", "quality_mean"]
        fields += [f"quality_seed{s}" for s in range(self.config.seeds)]
        fields.append("full_train_s")
        for name in self.scores:
            fields += [name, f"{name}_s"]
        for qname in QUALITY_DEFINITIONS:
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


def _train_config(c: ProxyValidationConfig, space: SearchSpace, seed: int) -> TrainConfig:
    geo = proxy_geometry(space, c.geometry)
    return TrainConfig(
        steps=c.steps,
        batch_size=c.batch_size,
        lr=c.lr,
        width_mult=c.width_mult,
        geometry=GeometryOverride.between(space.geometry, geo),
        difficulty=c.difficulty,
        seed=seed,
        checkpoint_every=c.steps,
        log_every=c.steps,
    )


def _run_key(c: ProxyValidationConfig, space: SearchSpace) -> str:
    """What a finished full training depends on: a trained.jsonl line is reused only if equal."""
    cfg = _train_config(c, space, 0).to_dict()
    cfg.pop("seed")
    payload = json.dumps(
        {"space": space.hash, "train": cfg, "n_val": c.n_val, "timesteps": TIMESTEPS},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _load_done(path: Path, key: str) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if rec.get("key") == key:
            done[(rec["arch_id"], int(rec["seed"]))] = rec
    return done


def _quality_of(rec: Mapping[str, Any], definition: str) -> float:
    which, model = QUALITY_DEFINITIONS[definition]
    losses = {int(t): float(v) for t, v in rec[model].items()}
    return weighted_validation_loss(losses) if which == "weighted" else losses[int(which)]


def validate_proxies(
    space: SearchSpace,
    folder: str | Path,
    config: ProxyValidationConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ProxyValidation:
    """Run a proxy validation (see the module docstring); files go to ``folder``."""
    c = config or ProxyValidationConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _msg: None)
    rng = np.random.default_rng(c.seed)
    arches = pick_diverse_arches(space, c.n, rng, pool=c.pool)

    # 1. full trainings (resumable through trained.jsonl)
    done = _full_trainings(space, c, arches, folder, progress)
    quality = {
        q: [[_quality_of(done[(a.arch_id, s)], q) for s in range(c.seeds)] for a in arches]
        for q in QUALITY_DEFINITIONS
    }
    full_s = [[float(done[(a.arch_id, s)]["train_s"]) for s in range(c.seeds)] for a in arches]
    trained_s = [
        t for a, row in zip(arches, full_s, strict=True) if _trainable(space, a) for t in row
    ]
    mean_full = float(np.mean(trained_s or full_s))

    # 2. proxies, each timed per arch
    scores, times, reseeded = _score_proxies(space, c, arches, say)

    # 3. statistics
    stats, ceilings = _statistics(c, arches, quality, scores, times, reseeded, mean_full)
    notes = []
    if any(not math.isfinite(v) for vals in scores.values() for v in vals):
        notes.append("some proxy values are not finite")
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
    )
    atomic_write_text(folder / "proxy_validation.csv", info.csv_text())
    atomic_write_text(folder / "summary.json", json.dumps(info.to_dict(), indent=2) + "\n")
    render_proxy_validation_html(info, folder / "proxy_validation.html")
    return info


def _trainable(space: SearchSpace, arch: Arch) -> bool:
    """Whether training changes anything (a temporal op, or a backbone that trains)."""
    return not space.backbone.freeze_spatial or any(ch.op != "none" for _, ch in arch.choices)


def _full_trainings(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    folder: Path,
    progress: bool,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (arch, seed) full training and its validation losses, by ``(arch_id, seed)``:
    read from ``trained.jsonl`` when a run with the same settings did it, else trained and
    appended there."""
    geo = proxy_geometry(space, c.geometry)
    val = ProceduralVideos.for_geometry(geo, split="val", difficulty=c.difficulty)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=c.n * c.seeds, desc="full trainings", unit="run", dynamic_ncols=True)
    # A first, untimed call pays for one-off set-up (oneDNN kernels, imports) once.
    train(space, arches[-1], replace(_train_config(c, space, 0), steps=2), None, progress=False)
    key = _run_key(c, space)
    jsonl = folder / "trained.jsonl"
    done = _load_done(jsonl, key)
    for arch in arches:
        for s in range(c.seeds):
            if (arch.arch_id, s) in done:
                if bar is not None:
                    bar.update(1)
                continue
            t0 = time.perf_counter()
            last: list[float] = []
            if _trainable(space, arch):
                res = train(space, arch, _train_config(c, space, s), None, progress=False)
                model, ema_model, last = res.model, res.ema_model(), list(res.losses[-10:])
            else:  # nothing to train: the model stays as built, as train() would leave it
                model = _build(space, arch, c.width_mult, geo, s)
                ema_model = model
            raw = validation_loss(model, val, timesteps=TIMESTEPS, n_videos=c.n_val)
            # one evaluation is part of a full training's cost: a search needs its number
            train_s = time.perf_counter() - t0
            ema = validation_loss(ema_model, val, timesteps=TIMESTEPS, n_videos=c.n_val)
            rec = {
                "key": key,
                "arch_id": arch.arch_id,
                "seed": s,
                "trainable": _trainable(space, arch),
                "train_s": train_s,
                "raw": raw,
                "ema": ema,
                "final_train_loss": float(np.mean(last)) if last else None,
            }
            with jsonl.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            done[(arch.arch_id, s)] = json.loads(json.dumps(rec))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(arch=arch.arch_id, loss=f"{ema.get(800, math.nan):.3f}")
    if bar is not None:
        bar.close()
    return done


def _score_proxies(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    say: Callable[[str], None],
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Each proxy's value and wall seconds per arch, and its values with the next seed."""
    scores: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    common: dict[str, Any] = {
        "width_mult": c.width_mult,
        "geometry": c.geometry,
        "difficulty": c.difficulty,
        "seed": c.proxy_seed,
    }
    reseeded: dict[str, list[float]] = {}  # the same proxies with seed proxy_seed + 1
    for name in c.proxies:
        say(f"proxy {name} ...")
        if name == "train":
            _run_training_proxies(space, c, common, arches, scores, times, reseeded)
            continue
        proxy = make_proxy(name, space, **common)
        scores[name], times[name] = [], []
        for arch in arches:
            t0 = time.perf_counter()
            v = proxy.evaluate(arch)
            times[name].append(time.perf_counter() - t0)
            scores[name].append(v)
        again = make_proxy(name, space, **{**common, "seed": c.proxy_seed + 1})
        reseeded[name] = [again.evaluate(a) for a in arches]
    return scores, times, reseeded


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
            st["seed_kendall"] = _corr(np.array(vals), np.array(reseeded[name]), "kendall")
        stats[name] = st
    ceilings = {q: noise_ceiling(np.array(m)) for q, m in quality.items()}
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
) -> None:
    """The training proxy as a search uses it, and two views of it.

    ``train``: ``TrainingProxy(steps=K).evaluate`` (EMA weights), timed; ``train[raw]``: the
    same with the trained weights. ``train@k`` for k = K/2, K, 2K, 4K: one run of 4K steps
    in rungs (:meth:`TrainingProxy.evaluate_with_reports`), each rung timed from the start of
    the run, so its cost includes the rung checkpoints and the earlier rungs' evaluations.
    ``train`` and ``train[raw]`` are also run with the next seed (``reseeded``).
    """
    k = c.proxy_steps
    opts = {**common, "steps": k, "batch_size": c.batch_size, "lr": c.lr, "n_val": c.n_val}
    opts["geometry"] = c.training_proxy_geometry
    for name, ema in (("train", True), ("train[raw]", False)):
        proxy = TrainingProxy(space, **opts, ema=ema)
        scores[name], times[name] = [], []
        for arch in arches:
            t0 = time.perf_counter()
            scores[name].append(proxy.evaluate(arch))
            times[name].append(time.perf_counter() - t0)
        again = TrainingProxy(space, **{**opts, "seed": c.proxy_seed + 1}, ema=ema)
        reseeded[name] = [again.evaluate(a) for a in arches]
    fractions = (0.125, 0.25, 0.5, 1.0)
    sweep = TrainingProxy(space, **{**opts, "steps": 4 * k}, rungs=fractions)
    for arch in arches:
        marks: list[float] = []
        t0 = time.perf_counter()

        def report(_step: int, _value: float, _t0: float = t0, _m: list[float] = marks) -> bool:
            _m.append(time.perf_counter() - _t0)
            return False

        sweep.evaluate_with_reports(arch, report)
        for rung, secs in zip(sweep.rungs(arch.arch_id), marks, strict=True):
            scores.setdefault(f"train@{rung.step}", []).append(rung.value)
            times.setdefault(f"train@{rung.step}", []).append(secs)
