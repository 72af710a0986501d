"""The ground truth of ``nas validate proxy``: full trainings, each cached and resumable.

Every (arch, seed) full training runs in its own folder, ``<folder>/runs/<key>/<arch_id>-s<seed>``
(``<key>`` a hash of every setting it depends on), checkpointing every ``checkpoint_every``
steps: an interrupted benchmark continues each training where it stopped, and a finished one
is loaded, not retrained. Once trained and evaluated, its figures are one line of
``trained.jsonl`` (matched by the same key), so a rerun skips it altogether. Trainings use
CUDA when present (``device``), the CPU otherwise.

An evaluation is the validation loss (EMA and trained weights) and, when the ground truth is
generated quality, the generated clips' figures and their scalar (:func:`generated_score`): a
flow model sampled with ``sample_steps`` Euler steps, or with ``student_steps`` the adversarial
few-step student of it sampled at the space's ``geometry.steps``, both without guidance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.fileio import claim, jsonl_records, lock_holders, locked
from nas.quality._data import ProceduralVideos
from nas.quality._eval import validation_loss
from nas.quality._evaluator import VideoEvaluator, train_video_evaluator
from nas.quality._generated import score_generation
from nas.quality._proxies import proxy_geometry
from nas.quality._train import TrainConfig, TrainResult, _step_of, train, train_geometry
from nas.space import Arch, GeometryOverride, SearchSpace

if TYPE_CHECKING:
    from nas.quality._validate_proxy import ProxyValidationConfig

__all__ = [
    "Scale",
    "full_trainings",
    "loss_collapse",
    "sampler_of",
    "train_config",
    "train_ground_truth",
    "training_status",
    "transfer_scale",
]

TIMESTEPS = (200, 500, 800)
STUDENT_LR = 2e-4  # the adversarial stage's learning rate (benchmarks/few_step.py)
STUDENT_GUIDANCE = 2.0  # the guided teacher the student distils


@dataclass(frozen=True)
class Scale:
    """Where full trainings run: a width and geometry overrides (over the proxy-scale video),
    and their budget in optimizer steps (None: the validation's ``steps``)."""

    width_mult: float
    geometry: GeometryOverride
    name: str = "base"
    steps: int | None = None

    def budget(self, c: ProxyValidationConfig) -> int:
        """This scale's optimizer steps per training."""
        return self.steps if self.steps is not None else c.steps


def train_config(
    c: ProxyValidationConfig, space: SearchSpace, seed: int, scale: Scale
) -> TrainConfig:
    """A full training's settings at ``scale``."""
    geo = proxy_geometry(space, scale.geometry)
    steps = scale.budget(c)
    return TrainConfig(
        steps=steps,
        batch_size=c.batch_size,
        lr=c.lr,
        width_mult=scale.width_mult,
        geometry=GeometryOverride.between(space.geometry, geo),
        difficulty=c.difficulty,
        background=c.background,
        colours=c.colours,
        text_dropout=c.text_dropout,
        freeze_spatial=False if c.train_spatial else None,
        seed=seed,
        checkpoint_every=min(c.checkpoint_every, steps),
        keep_checkpoints=2,  # a resume point survives a bad newest checkpoint
        log_every=max(1, min(100, steps)),
        device=c.device,
        precision=c.precision,
        compile=c.compile,
    )


def student_config(c: ProxyValidationConfig, space: SearchSpace, teacher: TrainConfig,
                   run: Path) -> TrainConfig:  # fmt: skip
    """The adversarial few-step student of the training in ``run``: the space's steps."""
    return replace(
        teacher,
        stage="adversarial",
        teacher=str(run),
        steps=c.student_steps,
        lr=STUDENT_LR,
        few_steps=min(max(space.geometry.steps, 1), 8),
        teacher_guidance=STUDENT_GUIDANCE,
        text_dropout=0.0,
        checkpoint_every=min(c.checkpoint_every, c.student_steps),
    )


def sampler_of(c: ProxyValidationConfig, space: SearchSpace) -> str:
    """How the ground truth's clips are made, in words (the output says it)."""
    if c.student_steps > 0:
        k = min(max(space.geometry.steps, 1), 8)
        return (
            f"few-step student ({c.student_steps} adversarial steps), {k} steps, no guidance "
            f"(the space's geometry.steps)"
        )
    return (
        f"Euler, {c.sample_steps} steps, no guidance (the flow model itself; the space prices "
        f"{space.geometry.steps} steps: --student-steps N samples a few-step student instead)"
    )


def _key(c: ProxyValidationConfig, space: SearchSpace, scale: Scale, *, gen: bool = True) -> str:
    """What a full training and (``gen``) its evaluation depend on: cached work is reused only
    if equal. The run folders are keyed by the training alone, so changing how it is
    evaluated (or the student's budget, which resumes) does not retrain it."""
    cfg = train_config(c, space, 0, scale).to_dict()
    for k in ("seed", "device", "compile", "checkpoint_every", "log_every", "keep_checkpoints"):
        cfg.pop(k)
    spec = (
        {
            "gen_n": c.gen_n,
            "sample_steps": c.sample_steps,
            "student_steps": c.student_steps,
            "evaluator_steps": c.evaluator_steps,
        }
        if c.generates and gen
        else None
    )
    evaluation = {"n_val": c.n_val, "timesteps": TIMESTEPS, "gen": spec} if gen else None
    payload = json.dumps(
        {"space": space.hash, "train": cfg, "evaluation": evaluation},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _load_done(path: Path, key: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (rec["arch_id"], int(rec["seed"])): rec
        for rec in jsonl_records(path)
        if rec.get("key") == key
    }


def _evaluator(
    c: ProxyValidationConfig, space: SearchSpace, cfg: TrainConfig, folder: Path
) -> VideoEvaluator:
    return train_video_evaluator(
        train_geometry(space, cfg),
        difficulty=c.difficulty,
        background=c.background,
        colours=c.colours,
        steps=c.evaluator_steps,
        cache_dir=folder / "evaluator",
    )


def _one(
    c: ProxyValidationConfig,
    space: SearchSpace,
    arch: Arch,
    seed: int,
    scale: Scale,
    run: Path,
    evaluator: VideoEvaluator | None,
) -> dict[str, Any]:
    """Train (or resume, or load) one (arch, seed) and evaluate it: its trained.jsonl record."""
    cfg = train_config(c, space, seed, scale)
    t0 = time.perf_counter()
    res = train(space, arch, cfg, run, progress=False, stop_on_signal=True)
    train_s, rate = _training_seconds(res, cfg.batch_size, time.perf_counter() - t0)
    model, ema_model = res.model, res.ema_model()
    if c.student_steps > 0 and c.generates:
        t1 = time.perf_counter()
        scfg = student_config(c, space, cfg, run)
        sres = train(space, arch, scfg, run.with_name(run.name + "-student"), progress=False,
                     stop_on_signal=True)  # fmt: skip
        train_s += _training_seconds(sres, scfg.batch_size, time.perf_counter() - t1)[0]
        sampled, steps = sres.ema_model(), cfg_steps(space)
    else:
        sampled, steps = ema_model, c.sample_steps
    geo = train_geometry(space, cfg)
    val = ProceduralVideos.for_geometry(
        geo, split="val", difficulty=c.difficulty, background=c.background, colours=c.colours
    )
    t2 = time.perf_counter()
    ema = validation_loss(ema_model, val, timesteps=TIMESTEPS, n_videos=c.n_val)
    eval_s = time.perf_counter() - t2
    raw = validation_loss(model, val, timesteps=TIMESTEPS, n_videos=c.n_val)
    rec: dict[str, Any] = {
        "arch_id": arch.arch_id,
        "seed": seed,
        "scale": scale.name,
        "train_s": train_s,
        "videos_per_s": rate,
        "compile": cfg.compile,
        "resumed_from": res.start_step,
        "raw": raw,
        "ema": ema,
        "final_train_loss": float(np.mean(res.losses[-10:])) if res.losses else None,
        **loss_collapse(res.losses),
    }
    if evaluator is not None:
        t3 = time.perf_counter()
        rec["generated"] = score_generation(sampled, evaluator, n=c.gen_n, steps=steps)
        eval_s = time.perf_counter() - t3
    rec["eval_s"] = eval_s  # the evaluation that makes the ground truth's number
    return rec


def _training_seconds(res: TrainResult, batch: int, elapsed: float) -> tuple[float, float]:
    """A training's cost in seconds, and its videos/s: its steps at the median rate of its
    metrics.csv rows (each a window of steps), so the cost is one uninterrupted training's
    whatever pieces it ran in, and neither a compile (the first window of each piece) nor a
    passing slowdown counts. Without rows: this call's seconds scaled to the whole budget."""
    rate = _median_rate(_metrics_rows(res.metrics)) if res.metrics is not None else None
    if rate is not None:
        return res.step * batch / rate, rate
    ran = res.step - res.start_step
    if ran <= 0:
        return math.nan, math.nan
    return elapsed * res.step / ran, ran * batch / elapsed


COLLAPSE_WINDOW = 100  # steps per window of the training loss
COLLAPSE_RATIO = 2.0  # the last window's mean over the best window's: collapsed above it


def loss_collapse(losses: Sequence[float]) -> dict[str, Any]:
    """Whether a training ended far above its best loss (a collapse: the model fell to a
    trivial prediction and never came back, which a learning rate too high for the arch can
    cause with finite losses throughout): the best and last ``COLLAPSE_WINDOW``-step means."""
    n = len(losses) // COLLAPSE_WINDOW
    if n < 2:
        return {"collapsed": False}
    means = [
        float(np.mean(losses[i * COLLAPSE_WINDOW : (i + 1) * COLLAPSE_WINDOW])) for i in range(n)
    ]
    best, last = min(means), means[-1]
    return {"loss_best": best, "loss_last": last, "collapsed": bool(last > COLLAPSE_RATIO * best)}


def cfg_steps(space: SearchSpace) -> int:
    """The few-step student's steps: the space's ``geometry.steps``, within 1..8."""
    return min(max(space.geometry.steps, 1), 8)


def full_trainings(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    seeds: Sequence[int],
    folder: Path,
    scale: Scale,
    *,
    progress: bool,
    wait: bool = True,
    log: Callable[[str], None] | None = None,
    poll_s: float = 30.0,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (arch, seed) full training at ``scale`` and its evaluation, by ``(arch_id,
    seed)``: read from ``trained.jsonl`` when done with the same settings, else trained (or
    resumed from its folder), evaluated and appended there.

    Several processes can share ``folder`` (workers, :func:`train_ground_truth`): each
    training is claimed with a lock file next to its run folder, so a process trains only
    what no other is training, and a worker that dies gives its claims back. With ``wait``
    this returns once every training is done, polling every ``poll_s`` seconds for the ones
    other processes hold (and taking over any whose process died); without it, it returns
    what is done when nothing is left to claim."""
    key = _key(c, space, scale)
    jsonl = folder / "trained.jsonl"
    done = _load_done(jsonl, key)
    pending = [(a, s) for a in arches for s in seeds if (a.arch_id, s) not in done]
    if not pending:
        return done
    say = log or (lambda _msg: None)
    total = len(arches) * len(seeds)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            initial=total - len(pending),
            desc=f"full trainings ({scale.name})",
            unit="run",
            dynamic_ncols=True,
        )
    evaluator: list[VideoEvaluator] = []  # made at the first training this process claims
    runs = folder / "runs" / _key(c, space, scale, gen=False)
    said = -1  # the count last reported as waited for: said again only when it changes
    while True:
        busy = []
        for arch, s in pending:
            run = runs / f"{arch.arch_id}-s{s}"
            held = claim(run.with_name(run.name + ".lock"))
            if held is None:
                busy.append((arch, s))
                continue
            try:
                done.update(_load_done(jsonl, key))  # another process may have finished it
                if (arch.arch_id, s) in done:
                    continue
                if c.generates and not evaluator:
                    evaluator.append(_evaluator(c, space, train_config(c, space, 0, scale), folder))
                rec = {
                    "key": key,
                    **_one(c, space, arch, s, scale, run, evaluator[0] if evaluator else None),
                }
                with locked(folder / "trained.jsonl.lock"), jsonl.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                done[(arch.arch_id, s)] = json.loads(json.dumps(rec))
            finally:
                held.close()
            if bar is not None:
                bar.n = sum((a.arch_id, x) in done for a in arches for x in seeds)
                bar.set_postfix(arch=arch.arch_id, seed=s)
                bar.refresh()
        done.update(_load_done(jsonl, key))
        pending = [(a, s) for a, s in busy if (a.arch_id, s) not in done]
        if bar is not None:
            bar.n = total - len(pending)
            bar.refresh()
        if not pending or not wait:
            break
        if len(pending) != said:
            said = len(pending)
            say(
                f"waiting for {said} full training(s) ({scale.name}) that other processes "
                f"are running in {folder}"
            )
        time.sleep(poll_s)
    if bar is not None:
        bar.close()
    return done


def train_ground_truth(
    space: SearchSpace,
    c: ProxyValidationConfig,
    arches: Sequence[Arch],
    folder: Path,
    *,
    progress: bool,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """A worker's share of a validation's full trainings (base scale, then the transfer
    subset): what no other process has claimed, until nothing is left to claim. Returns the
    counts ``done`` (by any process) and ``left`` (held by others)."""
    counts = {"done": 0, "left": 0}
    for subset, ss, scale in _jobs(c, arches):
        done = full_trainings(
            space, c, subset, ss, folder, scale, progress=progress, wait=False, log=log
        )
        n = sum((a.arch_id, s) in done for a in subset for s in ss)
        counts["done"] += n
        counts["left"] += len(subset) * len(ss) - n
    return counts


def transfer_scale(c: ProxyValidationConfig) -> Scale:
    """The scale-transfer subset's scale: its width (the base one unless set), geometry and
    budget (the base one unless set)."""
    width = c.transfer_width_mult if c.transfer_width_mult is not None else c.width_mult
    return Scale(
        width, c.geometry.merged(c.transfer_geometry), name="transfer", steps=c.transfer_steps
    )


def _jobs(
    c: ProxyValidationConfig, arches: Sequence[Arch]
) -> list[tuple[Sequence[Arch], list[int], Scale]]:
    """A validation's full trainings as (arches, seeds, scale): the base scale, then the
    scale-transfer subset (the first ``transfer_n`` arches) when there is one."""
    jobs: list[tuple[Sequence[Arch], list[int], Scale]] = [
        (arches, list(range(c.seeds)), Scale(c.width_mult, c.geometry))
    ]
    if c.transfer_n:
        jobs.append((arches[: c.transfer_n], list(range(c.transfer_seeds)), transfer_scale(c)))
    return jobs


def training_status(
    space: SearchSpace, c: ProxyValidationConfig, arches: Sequence[Arch], folder: Path
) -> list[dict[str, Any]]:
    """Where each (arch, seed) full training of a validation stands, base scale then the
    transfer subset, read from ``folder`` without touching it: ``state`` (``done``,
    ``running`` (with the ``pid`` holding it), ``stopped`` (a checkpoint, no process) or ``not
    started``), ``step`` (done: the budget; running: its last metrics row; stopped: its newest
    checkpoint), ``videos_per_s`` (its metrics' median rate, or the record's) and, when done,
    its ``record``. ``pid`` is None where the lock list is unreadable (not Linux): a run
    with a checkpoint then shows as ``stopped`` even while a process trains it."""
    rows: list[dict[str, Any]] = []
    for subset, seeds, scale in _jobs(c, arches):
        done = _load_done(folder / "trained.jsonl", _key(c, space, scale))
        runs = folder / "runs" / _key(c, space, scale, gen=False)
        locks = [runs / f"{a.arch_id}-s{s}.lock" for a in subset for s in seeds]
        holders = lock_holders(locks) or {}
        budget = scale.budget(c)
        for a in subset:
            for s in seeds:
                run = runs / f"{a.arch_id}-s{s}"
                row: dict[str, Any] = {"scale": scale.name, "arch_id": a.arch_id, "seed": s,
                                       "steps": budget, "pid": None, "record": None}  # fmt: skip
                rec = done.get((a.arch_id, s))
                pid = holders.get(run.with_name(run.name + ".lock"))
                rows_csv = _metrics_rows(run / "metrics.csv")
                rate = _median_rate(rows_csv)
                if rec is not None:
                    train_s = rec.get("train_s")
                    rate = rec.get("videos_per_s") or (
                        budget * c.batch_size / train_s if train_s else rate
                    )
                    row.update(state="done", step=budget, record=rec)
                elif pid is not None:
                    row.update(state="running", pid=pid, step=rows_csv[-1][0] if rows_csv else 0)
                else:
                    steps = (_step_of(p) for p in run.glob("checkpoints/step_*"))
                    step = max((n for n in steps if n is not None), default=0)
                    row.update(state="stopped" if step else "not started", step=step)
                row["videos_per_s"] = rate
                rows.append(row)
    return rows


def _metrics_rows(path: Path) -> list[tuple[int, float]]:
    """(step, samples/s) of each row of a run's metrics.csv; none when it is missing."""
    out: list[tuple[int, float]] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                try:
                    out.append((int(row["step"]), float(row["samples_per_s"])))
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        pass
    return out


def _median_rate(rows: Sequence[tuple[int, float]]) -> float | None:
    """The median samples/s of metrics rows (their positive, finite rates); None without."""
    rates = [r for _, r in rows if r > 0 and math.isfinite(r)]
    return float(np.median(rates)) if rates else None


def quality_of(rec: Mapping[str, Any], which: str, model: str) -> float:
    """One record's number for a quality definition (``which``: a timestep, ``weighted`` or
    ``generated``; ``model``: ``ema`` or ``raw``)."""
    from nas.quality._eval import weighted_validation_loss

    if which == "generated":
        return float(rec["generated"]["score"])
    losses = {int(t): float(v) for t, v in rec[model].items()}
    return weighted_validation_loss(losses) if which == "weighted" else losses[int(which)]
