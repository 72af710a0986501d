"""``nas validate latency``: does the cost model predict whole networks?

Selects arches that span the predicted latency range (``select="stratified"``: the all-none
arch, the heaviest arch by the cost model, each op everywhere it is offered, then one arch per
stratum of predicted latency drawn from a seeded pool; ``"random"``: seeded uniform samples),
measures each **whole** VideoUNet end to end with the same backend and protocol as the rows,
twice in two separate passes (the second in reverse order), and compares with the cost model
built from the per-row table made at the same validation geometry (its network rows, ``call``
and ``glue``, included: nothing is fitted). Reports the share within +-10 %, RMSPE and Kendall
tau with a bootstrap 95 % interval for latency and peak memory, the measured-vs-measured
ceiling (pass 2 against pass 1), and the temporal ops' share of the step at this geometry.

Every measurement is appended to ``<folder>/measurements.csv`` as it is made, and the arches
to ``<folder>/selection.json``: rerunning the same command resumes after a crash or Ctrl-C, and
a rerun with another ``seed`` in the same folder adds its arches to the same run (the figures
cover every arch measured there). Each such piece times its own table (``table`` for the first,
``table-<select>-seed<N>`` after) right before its whole networks, and its arches are predicted
from it: a machine that runs a few % slower on another day then moves the rows and the networks
alike, and the pooled ranking compares like with like. Runs at other geometries go to other folders;
:func:`profilers.combine_runs` reads several.

With ``pipeline=True`` (a space with a ``pipeline:``), each measured network is the whole
pipeline a user waits for: the text encoder once, every denoising step of the UNet (Euler
steps, the batch doubled with guidance) and the decoder over every chunk of frames, as one
graph; it is compared with the cost model's per-video latency.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.cost import CostModel, RowSpec, Table
from nas.errors import NasError
from nas.fileio import atomic_write_text, read_utf8
from nas.space import (
    Arch,
    GeometryOverride,
    SearchSpace,
    arch_from_indices,
    dim_sizes,
    reference_arch,
    with_geometry,
)
from profilers._base import Profiler, TimingProtocol, now_iso
from profilers._blocks import RowModule, whole_network
from profilers._devices import Device
from profilers._runner import get_profiler, profile_space
from profilers._validate_stats import kendall_by_piece, residual_by_op, stats_text, summarize

__all__ = [
    "DEFAULT_VALIDATION_GEOMETRY",
    "SELECTIONS",
    "ValidationResult",
    "select_arches",
    "validate_latency",
]

DEFAULT_VALIDATION_GEOMETRY = GeometryOverride(
    frames=4, latent_height=16, latent_width=16, batch=1, cfg=False
)
SELECTIONS = ("stratified", "random")
_CACHE_COLS = [
    "arch_id", "pass", "measured_ms", "measured_ms_p10", "measured_ms_p90", "repeats",
    "measured_mem_mb", "measured_at",
]  # fmt: skip


@dataclass
class ValidationResult:
    """One folder's figures: per-arch records, statistics by metric, the temporal share."""

    records: list[dict[str, Any]]
    stats: dict[str, dict[str, float]]
    folder: Path
    geometry: str  # "frames=4, latent_height=16, ..."
    temporal_share: dict[str, float]  # min, median, max over the arches; heaviest
    network: dict[str, float | None]  # the table's network terms at this geometry (CostModel)
    notes: tuple[str, ...] = ()
    residuals: dict[str, float] | None = None  # residual_by_op: ms per slot of each op

    def residual_text(self) -> str:
        """The per-op residual diagnostic, one line ("" when there are too few arches)."""
        r = self.residuals
        if not r:
            return ""
        ops = ", ".join(f"{k} {v:+.2f}" for k, v in r.items() if k != "fixed")
        return (
            "measured - predicted, by least squares over the arches (a diagnostic, not used "
            f"by the model): {r['fixed']:+.2f} ms fixed; ms per slot: {ops}"
        )

    def table_text(self) -> str:
        return stats_text(self.stats)

    def pieces_text(self) -> str:
        """Latency Kendall within each ``--seed`` piece of the folder ("" for one piece)."""
        pieces = kendall_by_piece(self.records)
        if len(pieces) < 2:
            return ""
        each = ", ".join(f"seed {k}: {t:.3f} ({n} arches)" for k, (n, t) in pieces.items())
        return (
            f"latency Kendall tau within each piece (timed in one stretch; pooled pairs across "
            f"pieces also carry the machine's drift between them): {each}"
        )

    def network_text(self) -> str:
        """The network rows' terms at this geometry, measured by ``nas profile``."""
        n = self.network
        text = (
            f"network rows at this geometry (measured, not fitted): call {n['call_ms']:.3f} ms "
            f"(taken out of each row), glue {n['glue_ms']:.2f} ms, session {n['session_mb']:.1f} "
            f"MB, whole-network memory {n['network_mb']:.0f} MB (unet row)"
        )
        if n.get("unet_residual_ms") is not None:
            text += (
                f"; the backbone alone measured {n['unet_residual_ms']:+.2f} ms off its rows "
                "(the model anchors every arch on it)"
            )
        return text

    def share_text(self) -> str:
        s = self.temporal_share
        return (
            f"temporal ops' share of the predicted step at this geometry: "
            f"{s['min'] * 100:.0f} % to {s['max'] * 100:.0f} % (median {s['median'] * 100:.0f} "
            f"%) over these arches; {s['heaviest'] * 100:.0f} % in the heaviest"
        )


def _whole_network(space: SearchSpace, arch: Arch) -> RowModule:
    return whole_network(space, arch)


def _whole_pipeline(space: SearchSpace, arch: Arch) -> RowModule:
    """Text encoder + steps x UNet + decoder over chunks, one module: what a user waits for."""
    import torch
    from torch import nn

    from nas.pipeline import build_decoder, build_text_encoder

    if space.pipeline is None or arch.decoder is None:
        raise NasError(f"space {space.name!r} has no pipeline with a decoder to validate")
    unet = _whole_network(space, arch)
    p = space.pipeline
    choice = p.choice(arch.decoder)
    text = None
    if p.text_encoder is not None:
        text = build_text_encoder(p.text_encoder, load_weights=False).eval()
    decoder = build_decoder(p.decoder(choice.decoder), load_weights=False).eval()
    g = space.geometry

    class _Pipeline(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text, self.unet, self.decoder = text, unet.module, decoder

        def forward(self, ids: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
            ctx = self.text(ids) if self.text is not None else unet.inputs[2]
            x = latents
            for i in range(g.steps):  # Euler steps on a fixed schedule
                t = torch.full((ctx.shape[0],), 999 - i * (1000 // g.steps), dtype=torch.int64)
                inp = torch.cat([x, x]) if g.cfg else x
                v = self.unet(inp, t, ctx)
                if g.cfg:
                    cond, uncond = v.chunk(2)
                    v = uncond + 3.0 * (cond - uncond)
                x = x - v / g.steps
            b, c, f, h, w = x.shape
            flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            frames = [
                self.decoder(flat[i : i + choice.chunk]) for i in range(0, b * f, choice.chunk)
            ]
            out: torch.Tensor = torch.cat(frames)
            return out

    gen = torch.Generator().manual_seed(0)
    vocab = int(p.text_encoder.config["vocab_size"]) if p.text_encoder is not None else 2
    ids = torch.randint(0, vocab, (g.effective_batch, g.text_length), generator=gen)
    latents = torch.randn(
        g.batch, g.latent_channels, g.frames, g.latent_height, g.latent_width, generator=gen
    )
    return RowModule(_Pipeline().eval(), (ids, latents), ("input_ids", "latents"))


# -- which arches ---------------------------------------------------------------------------


def _metric(model: CostModel, pipeline: bool) -> str:
    return "latency_s_video" if pipeline else "latency_ms_step"


def _heaviest(space: SearchSpace, model: CostModel, metric: str) -> list[int]:
    """Per dimension, the choice that costs most (latency is additive over dimensions)."""
    sizes = dim_sizes(space)
    base = [0] * len(sizes)
    out = []
    for j, n in enumerate(sizes):
        cand = np.asarray([[*base[:j], i, *base[j + 1 :]] for i in range(n)])
        out.append(int(np.argmax(model.evaluate_indices(cand)[metric])))
    return out


def _references(space: SearchSpace, model: CostModel, metric: str) -> list[tuple[str, list[int]]]:
    """The all-none arch, the heaviest arch, and each op wherever the space offers it."""
    from nas.space import arch_indices

    refs: list[tuple[str, list[int]]] = []
    ops = sorted({c.op for g in space.groups for c in g.choices})
    none, hits = reference_arch(space, "none")
    if hits:
        refs.append(("all-none", arch_indices(space, none)))
    refs.append(("heaviest", _heaviest(space, model, metric)))
    for op in ops:
        if op != "none":
            arch, hits = reference_arch(space, op)
            if hits:
                refs.append((f"{op} everywhere", arch_indices(space, arch)))
    return refs


def select_arches(
    space: SearchSpace,
    model: CostModel,
    samples: int,
    seed: int,
    select: str = "stratified",
    pipeline: bool = False,
) -> list[tuple[str, list[int]]]:
    """``samples`` distinct arches as ``(label, choice indices)``, ``model`` at the validation
    geometry. ``stratified``: the reference arches first (:func:`_references`), then one arch
    per equal-width stratum of predicted latency, each drawn from a seeded pool of uniform
    samples (then any pool arch, should strata be empty); ``random``: uniform samples."""
    if select not in SELECTIONS:
        raise NasError(f"--select {select!r}: expected one of {list(SELECTIONS)}")
    rng = np.random.default_rng(seed)
    sizes = dim_sizes(space)
    total = int(np.prod(np.asarray(sizes, dtype=float)))
    samples = min(samples, total)
    chosen: dict[tuple[int, ...], str] = {}
    if select == "stratified":
        for label, idx in _references(space, model, _metric(model, pipeline)):
            if len(chosen) < samples:
                chosen.setdefault(tuple(idx), label)
    pool = np.stack([rng.integers(0, n, size=max(2000, 50 * samples)) for n in sizes], axis=1)
    order = rng.permutation(len(pool))
    if select == "stratified" and len(chosen) < samples:
        pred = model.evaluate_indices(pool)[_metric(model, pipeline)]
        k = samples - len(chosen)
        edges = np.linspace(pred.min(), pred.max(), k + 1)
        stratum = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, k - 1)
        for s in range(k):
            for i in order:
                t = tuple(int(v) for v in pool[i])
                if stratum[i] == s and t not in chosen:
                    chosen[t] = f"stratum {s + 1}/{k}"
                    break
    for i in order:  # random, or strata left empty
        if len(chosen) >= samples:
            break
        chosen.setdefault(tuple(int(v) for v in pool[i]), "random")
    return [(label, list(t)) for t, label in chosen.items()]


# -- the run folder: selection.json and the measurement cache ---------------------------------


def _read_selection(folder: Path, ident: dict[str, Any]) -> dict[str, Any]:
    """The folder's selection.json (a fresh one when there is none), checked against this
    run's space, device, geometry and pipeline before anything is measured."""
    path = folder / "selection.json"
    data: dict[str, Any] = {**ident, "arches": [], "runs": []}
    if path.is_file():
        data = json.loads(read_utf8(path))
        for k, v in ident.items():
            if data.get(k) != v:
                raise NasError(
                    f"{folder} holds a validation of another {k} ({data.get(k)!r}, not {v!r}); "
                    "use another --out (and --combine to read several)"
                )
    return data


def _piece_table(data: dict[str, Any], seed: int, select: str) -> str:
    """The table folder (under the run folder) that predicts this piece's arches: ``table``
    for the folder's first piece, a fresh ``table-<select>-seed<N>`` for each later one, so
    that rows and whole networks are timed in the same stretch (a machine that drifts between
    pieces then moves both, not only the measurements). A piece already started keeps its
    table; one started before pieces had tables (no ``table`` key) keeps ``table``."""
    for run in data["runs"]:
        if run["seed"] == seed and run.get("select", "stratified") == select:
            return str(run.get("table", "table"))
    return "table" if not data["runs"] else f"table-{select}-seed{seed}"


def _selection(
    folder: Path, data: dict[str, Any], picked: list[tuple[str, list[int]]],
    space: SearchSpace, seed: int, select: str, table: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """The folder's arches: those of earlier runs, then this run's new ones (saved), each
    with the table folder that predicts it."""
    have = {a["arch_id"] for a in data["arches"]}
    for label, idx in picked:
        arch = arch_from_indices(space, idx)
        if arch.arch_id not in have:
            have.add(arch.arch_id)
            data["arches"].append({"arch_id": arch.arch_id, "indices": idx, "label": label,
                                   "seed": seed, "table": table})  # fmt: skip
    data["runs"].append({"seed": seed, "select": select, "arches": len(picked),
                         "table": table, "at": now_iso()})  # fmt: skip
    atomic_write_text(folder / "selection.json", json.dumps(data, indent=1) + "\n")
    return list(data["arches"])


def _read_cache(path: Path) -> dict[tuple[str, int], dict[str, str]]:
    """Measurements so far by (arch_id, pass); a line cut short by a crash is skipped."""
    if not path.is_file():
        return {}
    out: dict[tuple[str, int], dict[str, str]] = {}
    for rec in csv.DictReader(io.StringIO(read_utf8(path), newline="")):
        try:
            float(rec["measured_ms"])
            key = (rec["arch_id"], int(rec["pass"]))
        except (KeyError, TypeError, ValueError):
            continue
        out[key] = rec
    return out


def _append_cache(path: Path, rec: dict[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    cut = False
    if not new:  # a line a crash cut short would swallow this one: start a fresh line
        with path.open("rb") as fb:
            fb.seek(-1, os.SEEK_END)
            cut = fb.read(1) != b"\n"
    with path.open("a", encoding="utf-8", newline="") as f:
        if cut:
            f.write("\n")
        w = csv.DictWriter(f, fieldnames=_CACHE_COLS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow({k: rec.get(k, "") for k in _CACHE_COLS})
        f.flush()
        os.fsync(f.fileno())


# -- measuring ------------------------------------------------------------------------------


def _measure_all(
    vspace: SearchSpace, arches: list[dict[str, Any]], device: Device, protocol: TimingProtocol,
    folder: Path, prof: Profiler, *, passes: int, pipeline: bool, progress: bool,
) -> dict[tuple[str, int], dict[str, str]]:  # fmt: skip
    """Measure every (arch, pass) not yet in the cache: pass 1 in order, pass 2 reversed (peak
    memory in pass 1 only)."""
    path = folder / "measurements.csv"
    cache = _read_cache(path)
    order = [(a, 1) for a in arches]
    if passes > 1:
        order += [(a, 2) for a in reversed(arches)]
    todo = [(a, p) for a, p in order if (a["arch_id"], p) not in cache]
    g = vspace.geometry
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="validate whole networks", unit="net")
    try:
        for a, p in todo:
            arch = arch_from_indices(vspace, a["indices"])
            spec = RowSpec("network", a["arch_id"], 0, g.frames, g.latent_height,
                           g.latent_width, g.effective_batch, device.precision)  # fmt: skip
            built = _whole_pipeline(vspace, arch) if pipeline else _whole_network(vspace, arch)
            proto = protocol if p == 1 else replace(protocol, memory=False)
            row = prof.measure(spec, built, device, proto)
            rec = {
                "arch_id": a["arch_id"], "pass": p, "measured_ms": row.latency_ms_p50,
                "measured_ms_p10": row.latency_ms_p10, "measured_ms_p90": row.latency_ms_p90,
                "repeats": row.repeats, "measured_mem_mb": row.peak_mem_mb,
                "measured_at": row.measured_at,
            }  # fmt: skip
            _append_cache(path, rec)
            cache[(a["arch_id"], p)] = {k: "" if v is None else str(v) for k, v in rec.items()}
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return cache


# -- figures --------------------------------------------------------------------------------


def _records(
    arches: list[dict[str, Any]], cache: dict[tuple[str, int], dict[str, str]],
    vspace: SearchSpace, models: _Models, geometry: str, pipeline: bool,
) -> list[dict[str, Any]]:  # fmt: skip
    """One record per arch measured at least once: predictions (from the arch's piece's
    table), measurements, the temporal ms of the predicted step."""

    def pred_ms(m: CostModel, arch: Arch) -> float:
        e = m.evaluate(arch)
        return e.latency_s_video * 1e3 if pipeline else e.latency_ms_step

    out = []
    for a in arches:
        first = cache.get((a["arch_id"], 1))
        if first is None:
            continue
        second = cache.get((a["arch_id"], 2))
        arch = arch_from_indices(vspace, a["indices"])
        table = str(a.get("table", "table"))
        model, rows_only = models.get(table)
        m1 = float(first["measured_ms"])
        m2 = float(second["measured_ms"]) if second else None
        temporal = sum(c.ms for c in model.breakdown(arch).cells if c.temporal)
        step = model.evaluate(arch).latency_ms_step
        mem = first.get("measured_mem_mb") or ""
        rec: dict[str, Any] = {
            "geometry": geometry, "arch_id": a["arch_id"], "label": a["label"],
            "seed": a["seed"], "arch": arch.describe(),
            "predicted_ms": pred_ms(model, arch), "predicted_rows_ms": pred_ms(rows_only, arch),
            "measured_ms": m1 if m2 is None else (m1 + m2) / 2,
            "measured_ms_pass1": m1, "measured_ms_pass2": "" if m2 is None else m2,
            "measured_ms_p10": first["measured_ms_p10"],
            "measured_ms_p90": first["measured_ms_p90"], "repeats": first["repeats"],
            "predicted_mem_mb": model.evaluate(arch).peak_mem_mb,
            "measured_mem_mb": float(mem) if mem else "",
            "temporal_share": temporal / step if step > 0 else 0.0,
            "ops": ";".join(f"{k}:{n}" for k, n in sorted(arch.op_counts().items()) if n),
            "table": table,
        }  # fmt: skip
        rec["error_pct"] = (rec["predicted_ms"] - rec["measured_ms"]) / rec["measured_ms"] * 100
        out.append(rec)
    return out


def _write_records(folder: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    atomic_write_text(folder / "validate_latency.csv", buf.getvalue())


class _Models:
    """Cost models (rows + network rows, rows only) of each table folder of a run folder,
    each loaded once."""

    def __init__(self, folder: Path, vspace: SearchSpace) -> None:
        self.folder, self.vspace = folder, vspace
        self._got: dict[str, tuple[CostModel, CostModel]] = {}

    def get(self, name: str) -> tuple[CostModel, CostModel]:
        if name not in self._got:
            table = Table.load(self.folder / name)
            self._got[name] = (
                CostModel(self.vspace, table),
                CostModel(self.vspace, _without_network_rows(table)),
            )
        return self._got[name]


def _without_network_rows(table: Table) -> Table:
    return Table(
        dict(table.meta),
        {k: r for k, r in table.rows.items() if not r.spec.is_network},
        table.folder,
    )


def _share(records: list[dict[str, Any]], heaviest_id: str | None) -> dict[str, float]:
    shares = np.asarray([float(r["temporal_share"]) for r in records] or [0.0])
    heavy = [float(r["temporal_share"]) for r in records if r["arch_id"] == heaviest_id]
    return {
        "min": float(shares.min()),
        "median": float(np.median(shares)),
        "max": float(shares.max()),
        "heaviest": heavy[0] if heavy else float(shares.max()),
    }


def validate_latency(
    space: SearchSpace,
    device: Device,
    folder: str | Path,
    *,
    samples: int = 20,
    seed: int = 0,
    geometry: GeometryOverride | dict[str, Any] | None = None,  # over the default
    protocol: TimingProtocol | None = None,
    progress: bool = True,
    pipeline: bool = False,
    select: str = "stratified",
    passes: int = 2,
    profiler: Profiler | None = None,
) -> ValidationResult:
    """Measure ``samples`` whole arches (``select``, from ``seed``) ``passes`` times each and
    compare with the cost model; files go to ``folder`` (resumable, see the module docstring).

    ``pipeline``: measure and predict the whole pipeline per video (text encoder, steps,
    decoder) instead of one UNet step. ``profiler``: the backend (default: the device's)."""
    if pipeline and not space.decode:
        raise NasError(
            f"--pipeline: space {space.name!r} has no pipeline: section with decoders "
            "(see docs/concepts.md#the-pipeline-around-the-unet)"
        )
    if samples < 2:
        raise NasError("--samples must be at least 2 (a rank correlation needs two arches)")
    if passes not in (1, 2):
        raise NasError(f"--passes must be 1 or 2, got {passes}")
    protocol = protocol or TimingProtocol()
    folder = Path(folder)
    override = DEFAULT_VALIDATION_GEOMETRY.merged(GeometryOverride.coerce(geometry))
    if not pipeline:  # a UNet alone: no text encoder or decoder rows, weights nor choice
        space = replace(space, pipeline=None)
    vspace = with_geometry(space, **override.to_dict())
    geo = ", ".join(f"{k}={v}" for k, v in override.to_dict().items())
    ident = {"space": f"{space.name}@{space.hash}", "device": device.name, "geometry": geo,
             "pipeline": pipeline}  # fmt: skip
    data = _read_selection(folder, ident)
    # 1. this piece's per-row table at the validation geometry (resumable), network rows
    # included, timed right before its whole networks
    name = _piece_table(data, seed, select)
    prof = profiler or get_profiler(device.backend)
    rep = profile_space(
        vspace, device, folder / name, protocol=protocol, progress=progress, profiler=prof
    )
    if rep.interrupted:
        raise KeyboardInterrupt
    models = _Models(folder, vspace)
    model, _ = models.get(name)
    # 2. the arches, then whole networks measured with the same backend and protocol
    picked = select_arches(space, model, samples, seed, select, pipeline)
    arches = _selection(folder, data, picked, space, seed, select, name)
    cache = _measure_all(vspace, arches, device, protocol, folder, prof, passes=passes,
                         pipeline=pipeline, progress=progress)  # fmt: skip
    records = _records(arches, cache, vspace, models, geo, pipeline)
    _write_records(folder, records)
    heaviest = next((a["arch_id"] for a in arches if a["label"] == "heaviest"), None)
    return ValidationResult(
        records, summarize(records), folder, geo, _share(records, heaviest),
        {"call_ms": model.call_ms, "glue_ms": model.glue_ms, "session_mb": model.session_mb,
         "network_mb": model.network_mb, "unet_residual_ms": model.unet_residual_ms},
        model.notes, residual_by_op(records),
    )  # fmt: skip
