"""The ``nas`` command line: a thin layer over library functions, one per subcommand."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nas import __version__
from nas.errors import NasError

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

EPILOG = """\
examples:
  nas space --space search_spaces/temporal.yaml          describe the default space
  nas space --space search_spaces/temporal.yaml --json   the same, for machines
  nas space --space ./my_space.yaml                      your own space file

A space file names a backbone (bundled: sd15, pruned, tiny; or a local diffusers UNet folder),
the video geometry, and the temporal op choices per slot. See docs/concepts.md.
"""


def _fmt_count(n: int | float, unit: str = "") -> str:
    for div, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def _fmt_bytes(n: int) -> str:
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n} B"


def _range(bounds: Sequence[int], fmt: Callable[[int], str]) -> str:
    lo, hi = bounds
    return fmt(lo) if lo == hi else f"{fmt(lo)} .. {fmt(hi)}"


def _attn_label(flags: dict[str, bool]) -> str:
    if flags["down"] and flags["up"]:
        return "yes"
    if flags["down"] or flags["up"]:
        return "down only" if flags["down"] else "up only"
    return "no"


def render_space_summary(s: dict[str, Any]) -> str:
    """The human-readable text of ``nas space``."""
    sp, bb, geo, rg = s["space"], s["backbone"], s["geometry"], s["ranges"]
    out = [f"Space {sp['name']!r}  ({sp['source']}, hash {sp['hash']})"]
    if sp["description"]:
        out.append(f"  {sp['description']}")
    frozen = "frozen" if bb["freeze_spatial"] else "trainable"
    out += [
        "",
        f"Backbone   {bb['source']}: {_fmt_count(bb['params'])} params ({frozen}), "
        f"{_fmt_count(bb['macs_per_step'], 'MAC')} per step, channels {bb['block_out_channels']}"
        + (f", weights {bb['weights']}" if bb["weights"] else ", random init (no weights)"),
        f"Geometry   {geo['frames']} frames x {geo['latent_height']}x{geo['latent_width']} "
        f"latent x {geo['latent_channels']} ch, text {geo['text_length']}x{geo['text_dim']}, batch "
        f"{geo['batch']}{' with CFG' if geo['cfg'] else ''} (UNet batch {geo['effective_batch']}), "
        f"{geo['steps']} steps, {geo['precision']}",
        "",
        f"{'level':<6}{'latent':<9}{'C':>6}  {'spatial attn':<13}slots",
    ]
    for lv in s["levels"]:
        out.append(
            f"{lv['level']:<6}{'x'.join(map(str, lv['latent'])):<9}{lv['channels']:>6}  "
            f"{_attn_label(lv['spatial_attention']):<13}{' '.join(lv['slots'])}"
        )
    out += [
        "",
        f"{'slot':<10}{'C x T x H x W':<20}{'choices':>8}  {'temporal params':<20}"
        f"{'MACs / step':<22}{'largest tensor':<20}",
    ]
    sets: dict[tuple[str, ...], list[str]] = {}
    for sl in s["slots"]:
        sh = sl["shape"]
        shape = f"{sh['C']}x{sh['T']}x{sh['H']}x{sh['W']}"
        n = len(sl["choices"]) if sl["group"] else 0
        tie = f" (tied: {','.join(sl['tied_with'])})" if sl["tied_with"] else ""
        out.append(
            f"{sl['slot']:<10}{shape:<20}{n if n else 'fixed':>8}  "
            f"{_range(sl['params'], _fmt_count):<20}{_range(sl['macs'], _fmt_count):<22}"
            f"{_range(sl['peak_bytes'], _fmt_bytes):<20}{tie}"
        )
        sets.setdefault(tuple(sl["choices"]), []).append(sl["slot"])
    out += ["", "Choices"]
    for choices, slots in sets.items():
        out.append(f"  {', '.join(slots)}:")
        out.append(f"    {' | '.join(choices)}")
    refs = s["reference_arches"]
    steps = geo["steps"]
    out += [
        "",
        f"Space size       {s['size']:,} arches ({s['searchable_groups']} searchable groups)",
        f"Parameters       {_range(rg['params'], _fmt_count)} "
        f"(temporal {_range(rg['temporal_params'], _fmt_count)})",
        f"MACs per step    {_range(rg['macs_per_step'], _fmt_count)}",
        f"MACs per video   {_range(rg['macs_per_video'], _fmt_count)} ({steps} steps)",
        f"all-none arch    {refs['all_none']['params']:,} params, "
        f"{_fmt_count(refs['all_none']['macs_per_step'], 'MAC')} per step",
        f"all-attn1d arch  {refs['all_attn1d']['params']:,} params "
        f"({refs['all_attn1d']['temporal_params']:,} temporal, attn1d at "
        f"{refs['all_attn1d']['slots_with_op']} slots), "
        f"{_fmt_count(refs['all_attn1d']['macs_per_step'], 'MAC')} per step",
        "",
        "Params are exact; MACs count conv/linear/attention matmuls of one UNet call; "
        "'largest tensor' is the biggest activation an op creates (attention scores unfused).",
    ]
    out[-2:-2] = _render_pipeline(s)
    return "\n".join(out)


def cmd_space(args: argparse.Namespace) -> int:
    from nas.cost import space_summary
    from nas.space import load_space

    space = load_space(args.space)
    summary = space_summary(space)
    if args.device:
        summary["per_video"] = per_video_stages(space, args.device, args.tables)
        for note in summary["per_video"]["notes"]:  # what the table leaves out
            print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_space_summary(summary))
    return 0


def per_video_stages(space: Any, device: str, tables: str | None) -> dict[str, Any]:
    """The reference arches (all-none, all-attn1d) per video on ``device``, by stage, for
    every decode choice: where a video's time goes, from the device's table."""
    import numpy as np

    from nas.cost import CostModel, Table, find_table
    from nas.space import arch_indices, reference_arch

    folder = find_table(device, tables)
    cm = CostModel(space, Table.load(folder))
    decode = [c.key for c in space.decode] or [None]
    rows = []
    for op in ("none", "attn1d"):
        arch, hits = reference_arch(space, op)
        if op != "none" and not hits:
            continue
        base = arch_indices(space, arch)[: len(space.groups)]
        for j, key in enumerate(decode):
            idx = [*base, j] if key is not None else base
            e = cm.evaluate_indices(np.asarray([idx]))
            rows.append(
                {
                    "arch": f"all-{op}",
                    "decode": key,
                    **{k: float(v[0]) for k, v in e.items()},
                }
            )
    return {
        "device": device,
        "table": str(folder),
        "sources": list(cm.sources),
        "memory_budget_mb": cm.memory_budget_mb,
        "notes": list(cm.notes),
        "arches": rows,
    }


def _render_pipeline(s: dict[str, Any]) -> list[str]:
    p = s.get("pipeline")
    out: list[str] = []
    if p is not None:
        out += ["", "Pipeline"]
        te = p["text_encoder"]
        w = "weights " + str(te["weights"]) if te and te["weights"] else "random init (no weights)"
        out.append(
            f"  text encoder  {te['model']} ({te['family']}, {w})" if te else "  text encoder  none"
        )
        for d in p["decoders"]:
            w = f"weights {d['weights']}" if d["weights"] else "random init (no weights)"
            px = "x".join(map(str, d["pixels"]))
            out.append(
                f"  decoder {d['name'] + ' ':<6}{d['model']} ({d['family']}, {px} pixels, {w})"
            )
        keys = ", ".join(f"{c['key']} ({c['calls']} calls)" for c in p["decode"])
        out.append(f"  decode        {keys}")
    pv = s.get("per_video")
    if pv:
        out += [
            "",
            f"Per video on {pv['device']} ({', '.join(pv['sources'])} rows; {pv['table']})",
            f"  {'arch':<12}{'decode':<18}{'text s':>8}{'UNet s':>8}{'decode s':>10}"
            f"{'total s':>9}{'peak MB':>9}",
        ]
        for r in pv["arches"]:
            out.append(
                f"  {r['arch']:<12}{r['decode'] or '-':<18}{r['latency_s_text']:>8.3f}"
                f"{r['latency_s_unet']:>8.3f}{r['latency_s_decode']:>10.3f}"
                f"{r['latency_s_video']:>9.3f}{r['peak_mem_mb']:>9.0f}"
            )
    return out


def _profile_list_devices() -> int:
    from profilers import get_device, list_devices

    print(f"{'device':<12}{'backend':<13}{'precision':<11}{'budget MB':>10}  measures here?")
    for name in list_devices():
        d = get_device(name)
        ok, why = d.can_measure_here()
        mode = "yes" if ok else ("estimates" if d.backend == "coreml" else "no")
        print(
            f"{d.name:<12}{d.backend:<13}{d.precision:<11}{d.memory_budget_mb:>10.0f}  "
            f"{mode}: {why}"
        )
    return 0


def _timing_protocol(args: argparse.Namespace) -> Any:
    """The timing protocol from --quick, --band and --no-memory (profile, validate latency)."""
    from profilers import TimingProtocol

    band = {"band": args.band} if getattr(args, "band", None) is not None else {}
    if band and not args.band > 0:
        raise NasError(f"--band must be > 0 (a share of the median, e.g. 0.05), got {args.band}")
    if args.quick:
        return TimingProtocol(
            warmup=1, min_repeats=3, max_repeats=5, max_seconds=5.0, memory=not args.no_memory,
            **band,
        )  # fmt: skip
    return TimingProtocol(memory=not args.no_memory, **band)


def _table_dir(args: argparse.Namespace, device: str) -> Path:
    from nas.cost import user_tables

    return Path(args.out) if args.out else user_tables() / device


def cmd_profile(args: argparse.Namespace) -> int:
    if args.list_devices:
        return _profile_list_devices()
    from nas.cost import Table
    from profilers import get_device, import_rows, profile_space

    if args.device is None:
        raise NasError("--device is required (see `nas profile --list-devices`)")
    device = get_device(args.device)
    out = _table_dir(args, device.name)
    if out.exists() and not out.is_dir():
        raise NasError(f"{out} is a file: --out is the table's folder (table.csv, meta.json)")
    if getattr(args, "profile_command", None) == "import":
        table = Table.load(out) if (out / "table.csv").is_file() else Table()
        table.meta.setdefault(
            "device",
            {
                "name": device.name,
                "backend": device.backend,
                "precision": device.precision,
                "memory_budget_mb": device.memory_budget_mb,
            },
        )
        keys = import_rows(table, args.file, device)
        table.save(out)
        print(f"imported {len(keys)} row(s) into {out / 'table.csv'}")
        return 0
    if args.space is None:
        raise NasError("--space is required, e.g. --space search_spaces/temporal.yaml")
    from nas.space import load_space

    space = load_space(args.space)
    ok, why = device.can_measure_here()
    if not ok and device.backend != "coreml":
        raise NasError(f"cannot measure {device.name} here: {why}")
    if not ok:
        print(f"note: {why}", file=sys.stderr)
    protocol = _timing_protocol(args)
    report = profile_space(
        space,
        device,
        out,
        protocol=protocol,
        force=args.force,
        limit=args.limit,
        progress=not args.no_progress,
    )
    counts: dict[str, int] = {}
    for r in report.table.rows.values():
        counts[r.source] = counts.get(r.source, 0) + 1
    print(
        f"{out / 'table.csv'}: {len(report.table.rows)} rows "
        f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); this run: "
        f"{len(report.done)} done, {len(report.failed)} failed, {report.kept} kept"
    )
    for key in report.failed[:10]:
        print(f"  failed: {key}: {report.table.rows[key].reason}")
    if counts.get("estimated"):
        print("note: estimated rows are not measurements: no device ran them")
    if report.interrupted:
        print(
            "interrupted: finished rows are saved; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 0


def _space_for_arch(space_arg: str | None, arch_file: str) -> Any:
    """The space an arch file belongs to: --space, else the bundled space it names."""
    from nas import list_spaces
    from nas.space import load_space, load_yaml_file

    if space_arg:
        return load_space(space_arg)
    run_space = Path(arch_file).resolve().parent.parent / "space.yaml"
    if Path(arch_file).resolve().parent.name == "archs" and run_space.is_file():
        return load_space(run_space)  # an arch from a search run dir: the run's own space
    raw = load_yaml_file(Path(arch_file))
    named = raw.get("space") if isinstance(raw, dict) else None
    if named is not None and not isinstance(named, dict):
        raise NasError(
            f"{arch_file}: space: expected a mapping (name, hash), got {named!r}; or give --space"
        )
    name = named.get("name") if isinstance(named, dict) else None
    if isinstance(name, str) and name in list_spaces():
        return load_space(name)
    if name is None:
        raise NasError(f"{arch_file}: give --space: the file names no space (space.name)")
    raise NasError(f"{arch_file}: give --space: its space {name!r} is not a bundled space")


def _load_arch(space: Any, arch_file: str, force: bool = False) -> Any:
    """The arch file against ``space``. One written for another space or another version of
    it (another hash) whose choices still fit is refused, naming both, unless ``force``."""
    from nas.space import load_arch, other_space_note

    arch = load_arch(space, arch_file)
    note = other_space_note(space, arch_file)
    if note and not force:
        raise NasError(
            f"{note}; its choices fit, so --force uses it as an arch of {space.name!r} "
            f"(id {arch.arch_id})"
        )
    if note:
        print(
            f"warning: {note}; used as an arch of {space.name!r} (id {arch.arch_id}), as "
            "--force asks",
            file=sys.stderr,
        )
    return arch


def cmd_export(args: argparse.Namespace) -> int:
    from nas.export import export_arch, held_back_summary

    space = _space_for_arch(args.space, args.arch)
    arch = _load_arch(space, args.arch, args.force)
    if args.pipeline:
        return _export_pipeline(args, space, arch)
    if args.decoder:
        raise NasError("--decoder goes with --pipeline (the UNet alone has no decoder)")
    suffix = ".onnx" if args.format == "onnx" else ".mlpackage"
    out = Path(args.out) if args.out else Path(args.arch).with_suffix(suffix)
    report = export_arch(
        space, arch, out, args.format, checkpoint=args.checkpoint, dynamic=not args.static_shapes
    )
    print(f"wrote {report.path} ({args.format}, inputs {report.inputs})")
    if report.dynamic:
        axes = ", ".join(f"{k} {v}" for k, v in report.dynamic.items())
        print(f"dynamic axes: {axes} (sample is batch x C x frames x H x W)")
    if report.max_abs_error is not None:
        sizes = " and ".join("x".join(map(str, c["sample"])) for c in report.checked)
        print(f"ONNX Runtime vs PyTorch at {sizes}: max abs error {report.max_abs_error:.2e}")
    if report.weight_bytes is not None:
        print(f"weights: {report.weight_bytes / 2**20:.1f} MiB")
    top = sorted(report.op_histogram.items(), key=lambda kv: -kv[1])[:12]
    print("ops: " + ", ".join(f"{k} {v}" for k, v in top))
    if report.held_back and args.verbose:
        print("third-party messages:\n" + "\n".join(f"  {m}" for m in report.held_back))
    elif report.held_back:
        print(f"note: {held_back_summary(report.held_back)} (--verbose shows them)")
    return 0


def _export_pipeline(args: argparse.Namespace, space: Any, arch: Any) -> int:
    from nas.export import held_back_summary
    from nas.pipeline import export_pipeline

    out = (
        Path(args.out)
        if args.out
        else Path(args.arch).with_name(Path(args.arch).stem + "-pipeline")
    )
    res = export_pipeline(
        space,
        arch,
        out,
        args.format,
        checkpoint=args.checkpoint,
        decoder=args.decoder,
        dynamic=not args.static_shapes,
    )
    for name, rep in res.parts.items():
        size = f", weights {rep.weight_bytes / 2**20:.1f} MiB" if rep.weight_bytes else ""
        check = (
            f", ONNX Runtime vs PyTorch max abs error {rep.max_abs_error:.2e}"
            if rep.max_abs_error is not None
            else ""
        )
        print(f"{name}: wrote {rep.path}{size}{check}")
    print(f"how to chain them: {res.manifest}")
    if res.held_back and args.verbose:
        print("third-party messages:\n" + "\n".join(f"  {m}" for m in res.held_back))
    elif res.held_back:
        print(f"note: {held_back_summary(res.held_back)} (--verbose shows them)")
    return 0


def _validate_proxy(args: argparse.Namespace) -> int:
    from datetime import datetime

    import torch

    from nas.quality import (
        ProxyValidationConfig,
        validate_proxies,
        validation_status,
        validation_worker,
    )
    from nas.space import GeometryOverride, load_space

    if args.threads is not None:
        if args.threads < 1:
            raise NasError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    given = {
        "n": args.n,
        "seeds": args.seeds,
        "steps": args.steps,
        "proxy_steps": args.proxy_steps,
        "width_mult": args.width_mult,
        "difficulty": args.difficulty,
        "background": args.background,
        "colours": args.colours,
        "lr": args.lr,
        "quality": args.quality,
        "proxies": tuple(args.proxies.split(",")) if args.proxies else None,
        "seed": args.seed,
        "proxy_geometry": (
            GeometryOverride.parse(args.proxy_geometry) if args.proxy_geometry else None
        ),
        **_validate_proxy_scale_args(args),
    }
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    config = ProxyValidationConfig(**kwargs, geometry=GeometryOverride.parse(args.geometry))
    if args.worker and not args.out:
        raise NasError("--worker needs --out: the folder of the run it helps")
    if args.status:
        if not args.out:
            raise NasError("--status needs --out: the folder of the run to report on")
        st = validation_status(space, args.out, config)
        print(json.dumps(st.to_dict(), indent=2) if args.json else st.text())
        return 0
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("experiments/runs") / f"{stamp}-validate-proxy"
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.worker:
            counts = validation_worker(space, out, config, progress=not args.no_progress, log=say)
            print(
                f"worker: nothing left to claim in {out}: {counts['done']} full trainings done, "
                f"{counts['left']} held by other processes; the run without --worker waits "
                "for them and writes the results"
            )
            return 0
        res = validate_proxies(space, out, config, progress=not args.no_progress, log=say)
    except KeyboardInterrupt:
        print(
            f"interrupted: finished trainings are in {out / 'trained.jsonl'} and the one in "
            "progress checkpointed; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print(res.table_text())
    print(f"per-arch figures: {out / 'proxy_validation.csv'}")
    print(f"summary: {out / 'summary.json'}; plot: {out / 'proxy_validation.html'}")
    return 0


def _validate_proxy_scale_args(args: argparse.Namespace) -> dict[str, Any]:
    """``nas validate proxy``'s ground-truth, early-proxy and scale-transfer settings."""
    from nas.space import GeometryOverride

    return {
        "batch_size": args.batch_size,
        "text_dropout": args.text_dropout,
        "train_spatial": False if args.freeze_spatial else None,
        "gen_n": args.gen_n,
        "sample_steps": args.sample_steps,
        "student_steps": args.student_steps,
        "evaluator_steps": args.evaluator_steps,
        "early_steps": args.early_steps,
        "latency_device": args.latency_device,
        "transfer_n": args.transfer_n,
        "transfer_width_mult": args.transfer_width_mult,
        "transfer_steps": args.transfer_steps,
        "transfer_geometry": (
            GeometryOverride.parse(args.transfer_geometry) if args.transfer_geometry else None
        ),
        "device": args.train_device,
        "precision": args.train_precision,
        "compile": True if args.train_compile else None,
    }


def cmd_validate(args: argparse.Namespace) -> int:
    if args.what == "proxy":  # needs no profilers
        return _validate_proxy(args)
    return _validate_latency(args)


def _validate_latency(args: argparse.Namespace) -> int:
    """``nas validate latency``: measure (or resume) one folder, or --combine several."""
    from datetime import datetime

    from nas.space import GeometryOverride, load_space
    from profilers import get_device, validate_latency

    space = load_space(args.space)
    if args.combine:
        return _validate_combine(args, space)
    if args.device is None:
        raise NasError("validate latency: --device is required (see `nas profile --list-devices`)")
    if args.samples is None:
        args.samples = 20
    if args.seed is None:  # --seed's default is per subcommand (proxy: the untuned arch seed)
        args.seed = 0
    device = get_device(args.device)
    ok, why = device.can_measure_here()
    if not ok:
        raise NasError(f"cannot validate {device.name} here: it needs measurements ({why})")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("experiments/runs") / f"{stamp}-validate-latency"
    print(f"validate latency: --seed {args.seed} --select {args.select} into {out}", flush=True)
    try:
        res = validate_latency(
            space,
            device,
            out,
            samples=args.samples,
            seed=args.seed,
            geometry=GeometryOverride.parse(args.geometry),
            protocol=_timing_protocol(args),
            progress=not args.no_progress,
            pipeline=args.pipeline,
            select=args.select,
            passes=args.passes,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: every finished measurement is kept in {out}; run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return 130
    what = "whole pipelines (text encoder + steps + decoder, per video)" if args.pipeline else ""
    n = len(res.records)
    print(f"{n} {what or 'arches'} of {space.name} on {device.name} at {res.geometry}")
    for note in res.notes:
        print(f"note: {note}")
    print(res.table_text())
    print(res.network_text())
    print(res.share_text())
    for line in (res.pieces_text(), res.residual_text()):  # each "" when it has nothing
        if line:
            print(line)
    print(f"per-arch figures: {out / 'validate_latency.csv'}")
    return 0


def _validate_combine(args: argparse.Namespace, space: Any) -> int:
    """``nas validate latency --combine DIR ...``: the figures of several run folders."""
    import json

    from profilers import combine_runs, stats_text

    for d in args.combine:
        sel = Path(d) / "selection.json"
        if sel.is_file():
            held = json.loads(sel.read_text(encoding="utf-8")).get("space", "")
            if held.split("@")[0] != space.name:
                raise NasError(f"{d} validated space {held!r}, not {space.name!r}")
    for geometry, stats in combine_runs(args.combine).items():
        print(f"{geometry}:")
        print(stats_text(stats))
    return 0


def _adversarial_kwargs(args: argparse.Namespace, given: dict[str, Any]) -> dict[str, Any]:
    """``nas train --stage adversarial``'s settings; the teacher's data, width and geometry
    are the defaults of what was not given."""
    from nas.quality import teacher_config

    out: dict[str, Any] = {
        k: v
        for k, v in {
            "stage": args.stage,
            "teacher": args.teacher,
            "few_steps": args.few_steps,
            "teacher_guidance": args.teacher_guidance,
            "adv_weight": args.adv_weight,
            "distill_weight": args.distill_weight,
            "guided_weight": args.guided_weight,
            "disc_lr": args.disc_lr,
        }.items()
        if v is not None
    }
    if args.joint_images:
        out["joint_images"] = True
    if args.stage != "adversarial" or args.teacher is None:
        return out
    tc = teacher_config(args.teacher)
    for k in ("width_mult", "data", "difficulty", "background", "colours", "freeze_spatial"):
        if k not in given:
            out[k] = getattr(tc, k)
    if not args.geometry:
        out["geometry"] = tc.geometry
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from datetime import datetime

    from nas.extras import require

    for module in ("torch", "diffusers", "safetensors"):
        require(module, purpose="nas train")
    from nas.quality import TrainConfig, find_checkpoint, train, train_geometry
    from nas.space import GeometryOverride

    space = _space_for_arch(args.space, args.arch)
    arch = _load_arch(space, args.arch, args.force)
    if args.out:
        out = Path(args.out)
    elif args.resume:
        raise NasError("--resume needs --out DIR: the run folder to continue")
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("experiments/runs") / f"{stamp}-train-{arch.arch_id}"
    skipped: list[str] = []
    existing = find_checkpoint(out, on_skip=lambda p, why: skipped.append(f"{p.name} ({why})"))
    if existing is not None and not args.resume:
        raise NasError(
            f"{out} already has a checkpoint ({existing.name}): pass --resume to continue it, "
            "or give another --out"
        )
    if existing is None and args.resume:
        raise NasError(f"--resume: {out} has no checkpoint to continue (checkpoints/step_*)")
    given = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ema_decay": args.ema_decay,
        "objective": args.objective,
        "precision": args.precision,
        "width_mult": args.width_mult,
        "data": args.data,
        "difficulty": args.difficulty,
        "background": args.background,
        "colours": args.colours,
        "text_dropout": args.text_dropout,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
        "log_every": args.log_every,
        "num_workers": args.num_workers,
        "device": args.device,
        "compile": True if args.compile else None,
    }
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if args.no_grad_clip:
        kwargs["grad_clip"] = None
    if args.train_spatial:
        kwargs["freeze_spatial"] = False
    kwargs["geometry"] = GeometryOverride.parse(args.geometry)
    kwargs.update(_adversarial_kwargs(args, kwargs))
    config = TrainConfig(**kwargs)
    main = int(os.environ.get("RANK", "0")) == 0
    if existing is not None and main:
        if skipped:
            print(
                f"warning: passed over unusable checkpoint(s) {'; '.join(skipped)}; resuming "
                f"from the last good one, {existing.name}",
                file=sys.stderr,
                flush=True,
            )
        print(f"resuming {out} from {existing.name}", flush=True)
    res = train(space, arch, config, out, progress=not args.no_progress, stop_on_signal=True)
    if main:
        g = train_geometry(space, config)
        head = res.losses[: min(10, len(res.losses))]
        tail = res.losses[-min(10, len(res.losses)) :]
        print(
            f"trained {arch.arch_id} on {space.name} (width x{config.width_mult:g}, "
            f"{g.frames}x{g.latent_height}x{g.latent_width} latent, {config.data}): steps "
            f"{res.start_step} -> {res.step}"
            + (
                f", loss {sum(head) / len(head):.4f} (first {len(head)}) -> "
                f"{sum(tail) / len(tail):.4f} (last {len(tail)}), "
                f"{res.samples_per_s:.1f} samples/s"
                if res.losses
                else ""
            )
        )
        print(f"checkpoint  {res.checkpoint}  (ema.safetensors: EMA weights; model.safetensors)")
        print(f"metrics     {res.metrics}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from nas.extras import require

    for module in ("torch", "diffusers", "safetensors", "av"):
        require(module, purpose="nas generate")
    from nas.pipeline import generate

    space = _space_for_arch(args.space, args.arch)
    arch = _load_arch(space, args.arch, args.force)
    res = generate(
        space,
        arch,
        args.prompt,
        args.out,
        checkpoint=args.checkpoint,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        decoder=args.decoder,
        fps=args.fps,
        scale=args.scale,
        device=args.device,
        progress=not args.no_progress,
    )
    _, t, h, w = res.video.shape
    print(f"wrote {res.mp4} ({t} frames of {h}x{w} at {args.fps} fps) and {res.png}")
    print(
        f"text: {res.text_encoder}; {res.sampler} x{res.steps} steps"
        + (f", guidance {res.guidance:g}" if res.guidance != 1 else "")
        + f"; decoder: {res.decoder}"
    )
    print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in res.seconds.items()))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from nas.extras import require

    for module in ("torch", "diffusers", "safetensors", "av"):
        require(module, purpose="nas encode")
    from nas.pipeline import encode_videos
    from nas.space import GeometryOverride, load_space

    space = load_space(args.space)
    rep = encode_videos(
        space,
        args.data,
        args.vae,
        args.out,
        geometry=GeometryOverride.parse(args.geometry),
        batch=args.batch,
        device=args.device,
        progress=not args.no_progress,
    )
    shape = "x".join(map(str, rep.latent_shape))
    print(
        f"wrote {len(rep.files)} latents files to {rep.out} (latents {shape} from "
        f"{rep.pixel_size[0]}x{rep.pixel_size[1]} frames, vae {rep.vae}; text: "
        f"{rep.text_encoder or 'none: nas train encodes captions with the toy text encoder'})"
    )
    print(f"train on them: nas train --arch A --space {args.space} --data {rep.out}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search import compose_config, expand_sweep

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"search.workers={args.workers}")
    if args.storage is not None:
        overrides.append(f"search.storage={args.storage}")
    if args.study is not None:
        overrides.append(f"search.study={args.study}")
    if args.trials is not None:
        overrides.append(f"search.trials={args.trials}")
    sweep = expand_sweep(overrides) if args.multirun else [overrides]
    if len(sweep) > 1 and args.resume:
        raise NasError(
            "-m runs one search per combination; --resume takes one run dir (to resume a "
            "sweep, run the same command again)"
        )
    if len(sweep) > 1 and not any(o.startswith("name=") for o in overrides):
        sweep = _named_runs(sweep, Path(args.space).stem)
    configs = [compose_config(o, conf_dir=args.config_dir) for o in sweep]  # mistakes first
    studies = [c.search.study for c, _ in configs if c.search.study is not None]
    if len(set(studies)) < len(studies):
        raise NasError(
            f"-m: the runs would share the study {studies[0]!r}; sweep search.study too, or "
            "leave it unset (each run dir then has its own study)"
        )
    if args.print_config:
        import yaml

        for ovs, (_, raw) in zip(sweep, configs, strict=True):
            if len(sweep) > 1:
                print(f"# {' '.join(ovs)}")
            print(yaml.safe_dump(raw, sort_keys=False), end="")
        return 0
    for cfg, _ in configs:
        if "quality" in cfg.search.objectives and cfg.proxy.name != "none":
            from nas.extras import require

            for module in ("torch", "diffusers"):  # before a run dir exists
                require(
                    module,
                    purpose=f"the quality proxy (proxy={cfg.proxy.name}; "
                    "experiment=cost_only needs none)",
                )
    varying = [i for i in range(len(sweep[0])) if len({o[i] for o in sweep}) > 1]
    for n, (ovs, (cfg, raw)) in enumerate(zip(sweep, configs, strict=True)):
        if len(sweep) > 1:
            swept = " ".join(ovs[i] for i in varying)
            if n:
                print()
            print(f"=== run {n + 1} of {len(sweep)}: {swept}", flush=True)
        rc = _search_one(args, cfg, raw)
        if rc != 0:
            return rc
    return 0


def _named_runs(sweep: list[list[str]], stem: str) -> list[list[str]]:
    """Each run of a sweep named after what it varies (``temporal-tpe-1``), so its run dir
    says which it is; the same command gives the same names, so a re-run resumes each."""
    import re

    varying = [i for i in range(len(sweep[0])) if len({o[i] for o in sweep}) > 1]
    out = []
    for ovs in sweep:
        tag = "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", ovs[i].split("=", 1)[1]) for i in varying)
        out.append([*ovs, f"name={stem}-{tag}"])
    return out


def _search_one(args: argparse.Namespace, cfg: Any, raw: dict[str, Any]) -> int:
    """One search of ``nas search`` (one run of a sweep): run it, draw its dashboard, print
    the front and where it is."""
    from nas.report import write_dashboard
    from nas.search import run_search

    result = run_search(
        args.space, cfg, raw, resume=args.resume, new=args.new, progress=not args.no_progress
    )
    write_dashboard(result.run_dir)
    print()
    print(
        f"{len(result.records)} trials, {result.feasible} feasible; "
        f"Pareto front: {len(result.front)} arch(es); hypervolume {result.hypervolume:.3f} "
        "(normalised)"
    )
    if result.front:
        print(result.table())
    if result.exact_note:
        print(result.exact_note)
    if result.stopped_early:
        print(f"stopped early ({result.stopped_early}); re-run the same command to resume")
    print(f"\nrun dir: {result.run_dir}")
    print(f"  dashboard: {result.run_dir / 'dashboard.html'}")
    print(f"  train an arch: nas train --arch {result.run_dir / 'archs'}/<arch_id>.yaml")
    return 130 if result.stopped_early == "interrupted" else 0


def cmd_report(args: argparse.Namespace) -> int:
    from nas.report import write_dashboard
    from nas.search import write_outputs

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise NasError(f"{run_dir} is not a directory (pass a run dir written by nas search)")
    result = write_outputs(run_dir)
    write_dashboard(run_dir)
    print(
        f"{len(result.records)} trials, {result.feasible} feasible; Pareto front: "
        f"{len(result.front)} arch(es)"
    )
    print(run_dir / "dashboard.html")
    return 0


def _add_arch_args(p: argparse.ArgumentParser) -> None:
    """--arch and --space, for commands that act on one arch file (see _space_for_arch)."""
    p.add_argument("--arch", required=True, metavar="YAML", help="arch file (YAML or JSON)")
    p.add_argument(
        "--space",
        metavar="YAML",
        help="its search space (default: the bundled space the arch file names)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="use an arch written for another space or version of it when its choices fit",
    )


def _add_space_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "space",
        help="describe a search space: slots, shapes, choices, size, params and MACs",
        description="Load a temporal search space, validate it, and summarise it: levels and "
        "slots with their tensor shapes, the op choices per slot, the exact space size, the "
        "parameter and MAC ranges per denoising step, and the all-none and all-attn1d arches.",
        epilog="examples:\n  nas space --space search_spaces/temporal.yaml\n"
        "  nas space --space search_spaces/tiny.yaml --json | python -m json.tool\n\n"
        "A relative path that does not exist falls back to the spaces bundled with nas\n"
        "(temporal, tiny), so the first example works from any directory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--space",
        required=True,
        metavar="YAML",
        help="search-space file (or a bundled name: temporal, tiny)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--device",
        metavar="NAME",
        help="also price the reference arches per video on this device's table, stage by "
        "stage (text encoder, UNet steps, decoder) for every decode choice of the pipeline",
    )
    p.add_argument(
        "--tables",
        metavar="DIR",
        help="folder of tables (default: $NAS_TABLES, ./latency_tables, then the shipped ones)",
    )
    p.set_defaults(func=cmd_space)


def _add_profile_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "profile",
        help="build a device's latency/memory table for a space (measured or estimated)",
        description="Measure every block and temporal op a space needs on a device, and the "
        "network rows (call: an empty network, the per-call time and per-session memory; glue: "
        "what the UNet runs between its blocks), and write "
        "latency_tables/<device>/table.csv + meta.json. ONNX Runtime and PyTorch rows are "
        "measured here; Core ML rows are converted here for real and, where no Apple device "
        "is reachable, estimated from the converted program (and marked so). Re-running "
        "resumes: finished rows are kept; --force re-measures them.",
        epilog="examples:\n"
        "  nas profile --list-devices\n"
        "  nas profile --device cpu-ort --space search_spaces/temporal.yaml\n"
        "  nas profile --device iphone16pm --space search_spaces/temporal.yaml\n"
        "  nas profile import --device iphone16pm lab_measurements.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--list-devices", action="store_true", help="list devices and exit")
    p.add_argument("--device", help="device name (see --list-devices) or a device YAML file")
    p.add_argument("--space", metavar="YAML", help="search-space file whose rows to profile")
    p.add_argument("--out", metavar="DIR", help="table folder (default latency_tables/<device>)")
    p.add_argument("--force", action="store_true", help="re-measure rows already in the table")
    p.add_argument("--limit", type=int, metavar="N", help="measure at most N rows this run")
    p.add_argument("--quick", action="store_true", help="fewer repeats (3-5): for smoke runs")
    p.add_argument("--band", type=float, metavar="F", help=_BAND_HELP)
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_profile)
    psub = p.add_subparsers(dest="profile_command", metavar="import")
    pi = psub.add_parser(
        "import",
        help="add rows measured elsewhere (CSV, MLModelBenchmarker or Xcode JSON)",
        description="Import rows measured elsewhere, replacing the table's rows of the same "
        "keys. A .csv file (a phone lab): columns key (or op, options, channels, frames, "
        "height, width, batch, precision), latency_ms_p50; optional latency_ms_p10, "
        "latency_ms_p90, repeats, peak_mem_mb, weight_bytes, compute_unit, measured_at, source "
        "(measured|published), note. A .json file: coremltools' MLModelBenchmarker results "
        '("format": "coremltools.MLModelBenchmarker") or Xcode\'s Core ML performance report '
        '("format": "xcode.coreml-performance-report"), one record per row key; formats and '
        "examples in docs/profiling.md and docs/examples/.",
    )
    pi.add_argument("--device", help="device the rows were measured on")
    pi.add_argument("--out", metavar="DIR", help="table folder (default latency_tables/<device>)")
    pi.add_argument("file", help="measurements: .csv, or .json (MLModelBenchmarker, Xcode)")
    pi.set_defaults(func=cmd_profile, list_devices=False)


def _add_search_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "search",
        help="multi-objective search of temporal layers: latency, memory, proxy quality",
        description="Search the type and placement of the temporal layers of a space with an "
        "Optuna study: latency and peak memory come from the device's table (no model is "
        "built), quality from a proxy (default: the training proxy), and budgets are "
        "constraints checked before the proxy runs. Writes experiments/runs/<time>-<name>/ "
        "with config.yaml, the study storage, trials.csv, pareto.csv, archs/<arch_id>.yaml "
        "and dashboard.html, and prints the Pareto front. Re-running the same command resumes "
        "the run (after Ctrl-C or a killed process) with no completed trial lost or repeated.",
        epilog="configuration (Hydra, from experiments/conf/; trailing key=value overrides):\n"
        "  device=iphone16pm|iphone14pm|mac|cpu-ort|torch-cpu|cuda   the table to read\n"
        "  sampler=gp|nsga2|tpe|random|brute      "
        "(gp the default; nsga2 for experiment=cost_only)\n"
        "                                         sampler.n_startup_trials=10  "
        "sampler.population_size=32\n"
        "  proxy=train|naswot|synflow|params|none proxy.pruner=sha  proxy.options.steps=32\n"
        "  constraints=snapgen|none      constraints.latency_s=5  constraints.memory_mb=3000\n"
        "  search.trials=300  search.seed=1  search.objectives=[latency,memory,quality]\n"
        "  search.latency=step  search.timeout_s=600  experiment=cost_only|quick\n\n"
        "examples:\n"
        "  nas search --space search_spaces/temporal.yaml\n"
        "  nas search --space search_spaces/temporal.yaml device=iphone16pm search.trials=300 "
        "constraints.latency_s=5\n"
        "  nas search --space search_spaces/temporal.yaml experiment=cost_only sampler=tpe\n"
        "  nas search --space search_spaces/temporal.yaml --workers 2\n"
        "  nas search --space search_spaces/temporal.yaml -m sampler=tpe,nsga2 search.seed=0,1"
        "   (4 runs)\n"
        "  nas search --space search_spaces/temporal.yaml --config-dir my_conf experiment=tight\n"
        "  nas search --space S.yaml --storage postgresql://user@host/db --study s1   "
        "(one per machine)\n"
        "  nas search --space search_spaces/temporal.yaml --print-config\n\n"
        "The study storage is a journal file in the run dir unless --storage says otherwise;\n"
        "optuna-dashboard opens either (optuna-dashboard RUN_DIR/study.journal).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--space",
        default="search_spaces/temporal.yaml",
        metavar="YAML",
        help="search-space file or bundled name (default search_spaces/temporal.yaml)",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (below)")
    p.add_argument("--trials", type=int, metavar="N", help="the same as search.trials=N")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local proxy processes (default: one per core; the front does not depend on it)",
    )
    p.add_argument("--storage", metavar="URL", help="an Optuna storage URL or a .journal path")
    p.add_argument("--study", metavar="NAME", help="the study's name in --storage")
    p.add_argument("--resume", metavar="RUN_DIR", help="resume this run dir")
    p.add_argument("--new", action="store_true", help="start a new run even if this one exists")
    p.add_argument(
        "--config-dir",
        metavar="DIR",
        help="your own config files (e.g. experiment/x.yaml), layered over the shipped ones",
    )
    p.add_argument(
        "-m",
        "--multirun",
        action="store_true",
        help="sweep: one search per combination of comma lists (sampler=tpe,nsga2), one run "
        "dir each",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)


def _add_report_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="rewrite a search run's dashboard.html (and its csvs and arch files)",
        description="Regenerate the outputs of a search run dir from its study: trials.csv, "
        "pareto.csv, archs/*.yaml and dashboard.html, the self-contained Pareto dashboard "
        "(front, all trials against the budgets, hypervolume, the temporal op of every front "
        "arch per slot, each arch's latency and memory by level and block kind). Open the page "
        "in a browser from disk; it needs no network. See docs/dashboard.md.",
        epilog="examples:\n"
        "  nas report experiments/runs/20261122-224621-temporal\n"
        '  xdg-open "$(nas report RUN_DIR | tail -1)"    (the page path is printed last)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run dir written by nas search")
    p.set_defaults(func=cmd_report)


def _add_export_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "export",
        help="export an arch's whole VideoUNet to ONNX (checked) or Core ML (inspected)",
        description="Build the VideoUNet of an arch file (optionally with trained weights) and "
        "write it as ONNX, checked against PyTorch with ONNX Runtime, or as a Core ML ML "
        "Program (.mlpackage, iOS18 target, the space's precision), with its MIL op histogram "
        "and weight size. Core ML conversion runs on any OS; running it needs macOS.",
        epilog="examples:\n"
        "  nas export --arch archs/1a2b3c4d5e6f.yaml --format onnx\n"
        "  nas export --arch a.yaml --space search_spaces/tiny.yaml --format coreml "
        "--out a.mlpackage\n"
        "  nas export --pipeline --arch a.yaml --space search_spaces/tiny-pipeline.yaml "
        "--format onnx --out a-pipeline/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arch_args(p)
    p.add_argument("--format", required=True, choices=["onnx", "coreml"])
    p.add_argument("--checkpoint", metavar="SAFETENSORS", help="trained weights (nas train)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="output file (a folder with --pipeline); default: next to the arch file",
    )
    p.add_argument(
        "--static-shapes",
        action="store_true",
        help="onnx: only the export size (default: any batch, 1 to the space's frames)",
    )
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="the whole pipeline to a folder (--out): text encoder, UNet and decoder(s), each "
        "checked, and pipeline.json saying how to chain them",
    )
    p.add_argument(
        "--decoder",
        metavar="KEY",
        help="--pipeline: this decoder (or decode choice) only (default: the arch's, else all)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print the third-party messages (warnings, logs) the export holds back",
    )
    p.set_defaults(func=cmd_export)


_BAND_HELP = (
    "target p10-p90 width of a row's repeats, as a share of the median (default 0.05): "
    "repeats go on until the band is that narrow or the median is known to 2 %%, up to 30 "
    "repeats or 30 s"
)


def _add_validate_latency_args(p: argparse.ArgumentParser) -> None:
    """``nas validate latency``'s own flags."""
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="latency: measure each arch's whole pipeline per video (text encoder once, every "
        "denoising step, the decoder over every chunk of frames) against the cost model's "
        "per-video latency; needs a space with a pipeline: section",
    )
    p.add_argument(
        "--select",
        choices=["stratified", "random"],
        default="stratified",
        help="latency: which arches (default stratified: the all-none and heaviest arches, each "
        "op everywhere, then one per stratum of predicted latency; random: uniform samples)",
    )
    p.add_argument(
        "--passes",
        type=int,
        choices=[1, 2],
        default=2,
        help="latency: times each network is measured, in separate passes (default 2: the "
        "measured-vs-measured ceiling)",
    )
    p.add_argument(
        "--combine",
        nargs="+",
        metavar="DIR",
        help="latency: print the figures of these finished run folders together (per "
        "geometry), measuring nothing",
    )
    p.add_argument("--band", type=float, metavar="F", help="latency: " + _BAND_HELP)


_VALIDATE_DESCRIPTION = (
    "validate latency: select N arches spanning the predicted latency range "
    "(the all-none and heaviest arches, each op everywhere, stratified samples from --seed), "
    "measure each whole VideoUNet end to end on the device twice (two passes), and compare "
    "with the cost model built from the per-row table at the same geometry, its measured "
    "network rows (call, glue) included: the share within +-10 %, RMSPE, Kendall tau with a "
    "bootstrap 95 % interval, the pass-2-vs-pass-1 ceiling, peak memory, and the temporal "
    "ops' share of the step. Runs at a small validation geometry (default frames=4, 16x16 "
    "latent, batch 1); --geometry changes it. Resumable: rerun the same command; another "
    "--seed in the same --out adds arches; --combine reads several folders.\n\n"
    "validate proxy: pick N diverse arches (default 12, arch seed 2), train each at proxy "
    "scale (width x0.125, 8 frames of 16x16 latents, 4,000 steps of 8 videos, backbone "
    "trainable) with 2 seeds on caption-informative data, sample 64 held-out captions and "
    "score them (caption following by the evaluator and the tracker, domain FD, flicker: "
    "one scalar, the trained quality; --quality t800_ema takes the validation loss "
    "instead), measure the noise ceiling (rank agreement between seeds), and compare every "
    "proxy (naswot, synflow, params, the cost model's latency, train at 3 budgets, "
    "generate) with the seed-mean quality: Kendall tau and Spearman rho with bootstrap "
    "95 % intervals, each proxy's seed-to-seed noise and its cost relative to one full "
    "training. Writes proxy_validation.csv, summary.json and proxy_validation.html; every "
    "(arch, seed) training checkpoints under --out/runs, so rerunning the same command "
    "resumes it (hours on a GPU, days on 2 CPU cores: docs/benchmarks.md); Ctrl-C or "
    "SIGTERM checkpoints the step in progress first. More processes with --worker and "
    "the same --out train other (arch, seed) runs, then compute other proxy values, at "
    "the same time."
)


def _add_validate_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "validate",
        help="check the cost model (validate latency) or the quality proxies (validate proxy)",
        description=_VALIDATE_DESCRIPTION,
        epilog="examples:\n"
        "  nas validate latency --device cpu-ort --space search_spaces/temporal.yaml "
        "--samples 20\n"
        "  nas validate latency --device cpu-ort --space search_spaces/temporal.yaml "
        "--samples 30 --seed 1 --geometry frames=16 --out runs/vl16\n"
        "  nas validate latency --space search_spaces/temporal.yaml --combine runs/vl4 "
        "runs/vl16\n"
        "  nas validate latency --device cpu-ort --space search_spaces/tiny.yaml --samples 6 "
        "--geometry frames=2\n"
        "  nas validate proxy --space search_spaces/temporal.yaml --out runs/vp     (issue 15)\n"
        "  nas validate proxy --space search_spaces/temporal.yaml --out runs/vp --worker   "
        "(a second process beside it)\n"
        "  nas validate proxy --space search_spaces/temporal.yaml --out runs/vp --status   "
        "(where it stands)\n"
        "  nas validate proxy --space search_spaces/temporal.yaml --quality t800_ema --steps "
        "150 --batch-size 4 --lr 1e-3 --difficulty medium --colours random   (the old one)\n"
        "  nas validate proxy --space search_spaces/tiny.yaml --n 4 --seeds 2 --steps 20 "
        "--proxy-steps 4 --quality t800_ema\n\n"
        "The training proxy (train) trains --proxy-steps steps at --proxy-geometry (default 8x8\n"
        "latents); train@k rows are one longer proxy run measured at rungs.\n"
        "On a busy machine --threads 1 is often much faster than more threads than free cores.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=["latency", "proxy"], help="what to validate")
    p.add_argument("--device", help="latency: a device that measures here (cpu-ort, ...); required")
    p.add_argument("--space", required=True, metavar="YAML", help="search-space file")
    p.add_argument("--samples", type=int, help="latency: arches to measure (default 20)")
    p.add_argument(
        "--seed",
        type=int,
        help="sampling seed (latency: default 0; proxy: the arch seed, default 2, never used "
        "while tuning a proxy)",
    )
    _add_validate_latency_args(p)
    p.add_argument("--n", type=int, metavar="N", help="proxy: arches to train (default 12)")
    p.add_argument(
        "--seeds", type=int, metavar="S", help="proxy: full trainings per arch (default 2)"
    )
    p.add_argument(
        "--steps", type=int, metavar="FULL", help="proxy: full training budget (default 4000)"
    )
    p.add_argument(
        "--proxy-steps", type=int, metavar="K", help="proxy: training-proxy steps (default 16)"
    )
    p.add_argument(
        "--width-mult", type=float, metavar="W", help="proxy: backbone width (default 0.125)"
    )
    p.add_argument(
        "--difficulty", choices=["easy", "medium", "hard"], help="proxy: data (default easy)"
    )
    p.add_argument("--lr", type=float, help="proxy: full trainings' learning rate (default 1e-3)")
    p.add_argument(
        "--proxy-geometry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="proxy: the training proxy's geometry over --geometry, repeatable (default "
        "latent_height=8 latent_width=8)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="proxy: torch CPU threads")
    _add_validate_proxy_args(p)
    p.add_argument(
        "--geometry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="validation geometry override, repeatable (e.g. frames=8)",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default experiments/runs/<time>-...)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (3-5)")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate)


def _add_validate_proxy_args(p: argparse.ArgumentParser) -> None:
    """``nas validate proxy``'s ground truth (generated quality), early proxy and transfer."""
    p.add_argument(
        "--quality",
        choices=["generated", "t800_ema", "t800_raw", "weighted_ema", "weighted_raw"],
        help="proxy: what trained quality means (default generated: held-out captions sampled "
        "and scored, docs/training.md; t800_ema: the validation loss at t=800)",
    )
    p.add_argument(
        "--proxies",
        metavar="A,B",
        help="proxy: comma-separated proxies (default naswot,synflow,params,latency,train,"
        "generate)",
    )
    p.add_argument(
        "--background",
        type=float,
        metavar="A",
        help="proxy: the procedural data's background amplitude (default 0.15; 0: flat)",
    )
    p.add_argument(
        "--colours",
        choices=["random", "positive"],
        help="proxy: digit colour signs (default positive; --difficulty medium --colours random "
        "is the data before issue 15)",
    )
    p.add_argument(
        "--batch-size", type=int, metavar="B", help="proxy: videos per full-training step (8)"
    )
    p.add_argument(
        "--text-dropout", type=float, metavar="P", help="proxy: share of empty captions (0.1)"
    )
    p.add_argument(
        "--freeze-spatial",
        action="store_true",
        help="proxy: full trainings keep the space's frozen backbone (default: it trains too)",
    )
    p.add_argument(
        "--gen-n", type=int, metavar="N", help="proxy: held-out captions sampled per training (64)"
    )
    p.add_argument(
        "--sample-steps",
        type=int,
        metavar="N",
        help="proxy: Euler steps (no guidance) sampling a full training (default 32)",
    )
    p.add_argument(
        "--student-steps",
        type=int,
        metavar="N",
        help="proxy: also train an adversarial few-step student per training for N steps and "
        "sample it at the space's geometry.steps without guidance (default 0: the flow model)",
    )
    p.add_argument(
        "--evaluator-steps", type=int, metavar="N", help="proxy: video evaluator steps (2000)"
    )
    p.add_argument(
        "--early-steps",
        type=int,
        metavar="N",
        help="proxy: the generate proxy's short training (default 200)",
    )
    p.add_argument(
        "--latency-device",
        metavar="DEVICE",
        help="proxy: the latency row's device table (default iphone16pm)",
    )
    p.add_argument(
        "--transfer-n",
        type=int,
        metavar="N",
        help="proxy: scale transfer: train the first N arches again at --transfer-width-mult / "
        "--transfer-geometry and report the rank agreement between scales (default 0: off)",
    )
    p.add_argument("--transfer-width-mult", type=float, metavar="W", help="proxy: its width")
    p.add_argument(
        "--transfer-geometry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="proxy: its geometry over --geometry, repeatable (e.g. latent_height=32)",
    )
    p.add_argument(
        "--transfer-steps",
        type=int,
        metavar="N",
        help="proxy: its trainings' budget in optimizer steps (default: --steps); a larger "
        "scale at the full budget can outlast the machine (see docs/benchmarks.md)",
    )
    _add_validate_proxy_run_args(p)


def _add_validate_proxy_run_args(p: argparse.ArgumentParser) -> None:
    """``nas validate proxy``'s how-it-runs flags: processes, status, device, precision."""
    p.add_argument(
        "--train-device",
        metavar="DEV",
        help="proxy: where trainings run: auto (default: CUDA if present), cpu, cuda",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="proxy: a helper process: take the full trainings of --out that no other process "
        "holds, then the proxy values none holds, and stop when none is left (start one per "
        "free core or GPU beside the same command without --worker, which waits for the rest "
        "and writes the results)",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="proxy: print where the full trainings of --out stand (done with their quality, "
        "running with the pid, stopped at a step, not started) and the hours left at the "
        "rates so far, then exit; changes nothing. Give the settings the run was started with",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="proxy --status: print it as JSON (each training, and per scale the steps and "
        "hours left) for scripts",
    )
    p.add_argument(
        "--train-precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="proxy: autocast of the full trainings and the generate proxy's (default auto: "
        "bf16 on CUDA, fp32 on CPU); bf16 is 1.8x faster on a CPU with AMX",
    )
    p.add_argument(
        "--train-compile",
        action="store_true",
        help="proxy: torch.compile the full trainings (minutes of compiling per training and "
        "process, then faster steps: docs/benchmarks.md); not part of the trainings' cache key",
    )


def _add_adversarial_args(p: argparse.ArgumentParser) -> None:
    """``nas train --stage adversarial``'s flags."""
    p.add_argument(
        "--stage",
        choices=["flow", "adversarial"],
        help="flow (default): the diffusion objective; adversarial: fine-tune --teacher into a "
        "few-step sampler without guidance (docs/training.md)",
    )
    p.add_argument(
        "--teacher",
        metavar="CKPT",
        help="adversarial: the teacher's nas train run or step_* folder (same arch); its data, "
        "width and geometry are the defaults",
    )
    p.add_argument(
        "--few-steps", type=int, metavar="K", help="adversarial: the student's steps, 1-8 (4)"
    )
    p.add_argument(
        "--teacher-guidance",
        type=float,
        metavar="G",
        help="adversarial: guidance of the teacher the student distils (default 3)",
    )
    p.add_argument(
        "--adv-weight", type=float, metavar="W", help="adversarial: hinge loss weight (0.1)"
    )
    p.add_argument(
        "--distill-weight", type=float, metavar="W", help="adversarial: distillation weight (1)"
    )
    p.add_argument(
        "--guided-weight",
        type=float,
        metavar="W",
        help="adversarial: weight of the student's velocity against the guided teacher's at "
        "each grid point (1)",
    )
    p.add_argument(
        "--disc-lr", type=float, metavar="LR", help="adversarial: discriminator heads' lr (1e-4)"
    )
    p.add_argument(
        "--joint-images",
        action="store_true",
        help="adversarial: every other step trains on one-frame clips (image-video joint)",
    )


def _add_train_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train an arch's temporal layers on video data (checkpoints, resume, torchrun)",
        description="Train the VideoUNet of an arch file: its temporal layers (and the spatial "
        "ones with --train-spatial) with AdamW, EMA and rectified flow (or eps prediction), "
        "on the built-in procedural moving-digits videos or a folder of video files or "
        "latents. Writes config.json, arch.yaml, metrics.csv and safetensors checkpoints "
        "(model, EMA, optimizer) to the run folder; --resume continues a run bit for bit. "
        "Under torchrun every process trains on its shard of each batch (DDP).",
        epilog="examples:\n"
        "  nas train --arch archs/1a2b3c4d5e6f.yaml --steps 2000\n"
        "  nas train --arch a.yaml --space search_spaces/tiny.yaml --steps 50 --out runs/t\n"
        "  nas train --arch a.yaml --width-mult 0.25 --difficulty hard \\\n"
        "      --geometry frames=8 --geometry latent_height=16 --geometry latent_width=16\n"
        "  nas train --arch a.yaml --data ./latents --batch-size 2    (*.safetensors / *.npz)\n"
        "  nas train --arch a.yaml --out runs/t --steps 4000 --resume    (continue a run)\n"
        "  torchrun --nproc_per_node 2 -m nas train --arch a.yaml --out runs/ddp\n"
        "  nas train --arch a.yaml --stage adversarial --teacher runs/t --out runs/s4 \\\n"
        "      --steps 1000 --lr 2e-4    (a 4-step student without guidance)\n\n"
        "--batch-size is per process. Folders of latents hold latents (C, T, H, W) and text\n"
        "(L, D) at the (overridden) space geometry; video folders are decoded with PyAV.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arch_args(p)
    p.add_argument("--steps", type=int, metavar="N", help="optimizer steps in all (default 1000)")
    p.add_argument(
        "--batch-size", type=int, metavar="B", help="videos per step and process (default 4)"
    )
    p.add_argument("--lr", type=float, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--ema-decay", type=float, metavar="D", help="EMA decay (default 0.999)")
    p.add_argument(
        "--no-grad-clip", action="store_true", help="do not clip the gradient norm (default: at 1)"
    )
    p.add_argument("--objective", choices=["rectified_flow", "eps"], help="default rectified_flow")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast (default auto: bf16 on CUDA, fp32 on CPU); bf16 also runs on CPU "
        "(fast on CPUs with bf16 units, e.g. AMX), fp16 on CUDA only",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: its first step compiles (minutes, again after each "
        "resume), then steps run faster (1.6x on this CPU: docs/benchmarks.md); worth it "
        "for runs of thousands of steps. A run may resume with or without it (switching "
        "changes the rounding: the run is then close to, not bit for bit, an unbroken one)",
    )
    p.add_argument(
        "--width-mult", type=float, metavar="W", help="backbone width multiplier (default 1)"
    )
    p.add_argument(
        "--geometry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="geometry override, repeatable (frames=8, latent_height=16, text_dim=64, ...)",
    )
    p.add_argument(
        "--data",
        metavar="procedural|PATH",
        help="'procedural' (default) or a folder of video files or latents",
    )
    p.add_argument(
        "--difficulty",
        choices=["easy", "medium", "hard"],
        help="procedural data: 1 digit / 2 bouncing / 3 with occlusion and acceleration "
        "(default easy: the caption carries the motion; medium was the default before)",
    )
    p.add_argument(
        "--background",
        type=float,
        metavar="A",
        help="procedural data: static background amplitude, 0 for flat (default 0.15)",
    )
    p.add_argument(
        "--colours",
        choices=["random", "positive"],
        help="procedural data: digit colour signs; positive (default): brighter than the "
        "background in every channel, so captions inform the mean video; random: the earlier "
        "default",
    )
    p.add_argument(
        "--text-dropout",
        type=float,
        metavar="P",
        help="share of videos trained with an empty caption, for classifier-free guidance "
        "at sampling (default 0; 0.1 is usual)",
    )
    p.add_argument("--train-spatial", action="store_true", help="also train the backbone")
    _add_adversarial_args(p)
    p.add_argument("--seed", type=int, help="init, data order and noise seed (default 0)")
    _add_train_run_args(p)


def _add_train_run_args(p: argparse.ArgumentParser) -> None:
    """``nas train``'s run folder and how it runs."""
    p.add_argument("--out", metavar="DIR", help="run folder (default experiments/runs/<time>-...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="default 500 steps")
    p.add_argument("--log-every", type=int, metavar="N", help="metrics row every N (default 10)")
    p.add_argument("--num-workers", type=int, metavar="N", help="DataLoader workers (default 0)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_generate_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "generate",
        help="generate a video from a prompt: text encoder, denoising steps, decoder -> MP4",
        description="Generate one video for a prompt with an arch's UNet (a nas train "
        "checkpoint, or untrained without --checkpoint): the prompt -> text embeddings -> "
        "--steps denoising steps from seeded noise -> frames, written as an MP4 (H.264, PyAV) "
        "and a PNG strip of the frames beside it. Sampler: Euler steps of the rectified flow "
        "(DDIM for eps checkpoints); --guidance other than 1 applies classifier-free guidance "
        "(for checkpoints trained with --text-dropout); a few-step student (nas train --stage "
        "adversarial) takes its own steps on the few-step grid, guidance baked in. A "
        "checkpoint trained on the procedural data (or video files) works on pixels as "
        "latents with the toy text encoder: its samples are the frames. One trained on "
        "latents (nas encode) uses the space's pipeline: its text encoder and a decoder.",
        epilog="examples:\n"
        "  nas generate --arch a.yaml --space search_spaces/tiny.yaml --checkpoint runs/t \\\n"
        "      --prompt '3 moves left fast' --out clip.mp4 --steps 16 --scale 8\n"
        "  nas generate --arch a.yaml --space my_sd_space.yaml --checkpoint runs/l \\\n"
        "      --prompt 'a dog runs on a beach' --out dog.mp4 --decoder taesd\n\n"
        "--decoder: pixels, a decoder of the space's pipeline (vae) or a decode choice\n"
        "(vae/chunk4). Default: pixels for procedural/video-file checkpoints, else the arch's\n"
        "decode choice (or the space's first).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arch_args(p)
    p.add_argument("--prompt", required=True, help="the caption of the video")
    p.add_argument("--out", required=True, metavar="MP4", help="video file (.mp4); a .png beside")
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="a nas train run folder or step_* folder (default: the untrained UNet)",
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="denoising steps (default: a few-step student's own, else the space's steps)",
    )
    p.add_argument(
        "--guidance", type=float, default=1.0, metavar="G", help="classifier-free guidance (1 none)"
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--decoder", metavar="KEY", help="pixels, a decoder or a decode choice (below)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the MP4 (default 8)")
    p.add_argument(
        "--scale", type=int, default=1, metavar="K", help="upscale frames K times (nearest) to view"
    )
    p.add_argument("--device", default="auto", help="auto (default: CUDA if present), cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)


def _add_encode_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "encode",
        help="precompute VAE latents and text embeddings of video files for nas train --data",
        description="Encode a folder of video files for training at real scale: frames are "
        "sampled and resized to the space's latent geometry times the VAE's factor, encoded "
        "with the VAE's encoder (AutoencoderKL: the posterior's mean x scaling_factor; "
        "AutoencoderTiny), and each caption (NAME.txt beside the video, else the file name) "
        "goes through the space's pipeline text encoder. Writes NAME.safetensors (latents "
        "C x T x h x w, text L x D, the caption) per video and encode.json to --out, which "
        "nas train --data reads.",
        epilog="examples:\n"
        "  nas encode --data clips/ --vae ./sd15/vae --out latents/ --space my_sd_space.yaml\n"
        "  nas encode --data clips/ --vae taesd --out latents/ --space my_sd_space.yaml "
        "--geometry frames=8\n\n"
        "--vae is a local diffusers folder (config.json, weights) or a decoder name of the\n"
        "space's pipeline. Without a pipeline text encoder no text is stored and nas train\n"
        "encodes the captions with its toy text encoder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="DIR", help="folder of video files")
    p.add_argument(
        "--vae", required=True, metavar="PATH|NAME", help="VAE folder, or a pipeline decoder"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the latents")
    p.add_argument(
        "--space",
        default="search_spaces/temporal.yaml",
        metavar="YAML",
        help="the space whose geometry and text encoder to use (default temporal)",
    )
    p.add_argument(
        "--geometry",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="geometry override, repeatable (frames=8, ...), as nas train --geometry",
    )
    p.add_argument("--batch", type=int, default=8, help="frames per encoder call (default 8)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA if present), cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_encode)


# in the order `nas --help` lists them
_SUBCOMMANDS: tuple[Callable[[_Subparsers], None], ...] = (
    _add_space_parser,
    _add_profile_parser,
    _add_search_parser,
    _add_report_parser,
    _add_export_parser,
    _add_validate_parser,
    _add_train_parser,
    _add_encode_parser,
    _add_generate_parser,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake reported as every other one is: one ``error:`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nas",
        description="Hardware-aware architecture search for mobile video diffusion: search the "
        "type and placement of temporal layers on a pruned image UNet under on-device latency "
        "and memory budgets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub: _Subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _trailing_overrides(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: Sequence[str]
) -> None:
    """``nas search`` takes ``key=value`` overrides after its flags too, e.g. ``--space X
    search.trials=3 --no-progress device=cpu-ort`` (argparse leaves the last one over);
    anything else left over is argparse's usual error."""
    bad = [t for t in extra if args.command != "search" or "=" not in t or t.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = [*args.overrides, *extra]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _trailing_overrides(parser, args, extra)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    try:
        rc: int = args.func(args)
        return rc
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # a module of an extra that is not installed: one line, the fix
        from nas.extras import missing_extra

        err = missing_extra(e, f"nas {args.command}")
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nas space ... | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
