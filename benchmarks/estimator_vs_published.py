"""The Core ML estimator, fitted on Apple's published SD-2.1 figures and checked on held-out ones.

The published figures, their sources and what each includes are in
``profilers/published/figures.yaml``. Only the figures marked ``role: fit`` (Apple's SD-2.1-base
diffusion speeds of August 2023, ml-stable-diffusion README) are used to fit the estimator's
shared constants; every ``held_out`` figure is printed beside them and never used to fit.

What is fitted: the conv and matmul efficiencies (attention shares matmul's), the fraction of the
DRAM bandwidth reached and the per-op overhead, shared by every chip; each chip keeps its stated
peak and bandwidth (the YAML's ``chips:``). The execution model is the estimator's
(profilers/_estimator.py): elementwise fusion on, and each figure's attention model
(SPLIT_EINSUM_V2: ``split_heads`` with 512-query chunks). Least squares on log(estimate /
published). The residuals' 10th and 90th percentiles (published / estimate) are the band the
device YAMLs give estimated rows (``uncertainty:``).

Programs (built once, then cached as JSON under ``--cache``): Apple's SD-2.1-base UNet from
diffusers (random weights: latency does not depend on their values), traced at batch 2, converted
to an FP16 ML Program for iOS18 and palettised to 6 bits; DistilBERT in Apple's ane_transformers
layout (iOS16, FP16). ``--tiny`` swaps in a tiny UNet and a 1-layer DistilBERT to check that the
script runs (its ratios mean nothing).

Run: ``python benchmarks/estimator_vs_published.py`` (about 4 minutes and 7 GB the first time,
seconds once cached).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.mil import OP_CLASSES, MilSummary, import_coremltools, inspect_mlprogram  # noqa: E402
from profilers import AttentionModel, Estimator, group_costs, quiet, roofline  # noqa: E402

FIGURES = ROOT / "profilers" / "published" / "figures.yaml"
CACHE = Path.home() / ".cache" / "nas" / "estimator"

# Apple's SD-2.1-base UNet (stabilityai/stable-diffusion-2-1-base unet/config.json); the other
# fields are diffusers' defaults, which match that config.
SD21_BASE = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
}
TINY_UNET = {
    **SD21_BASE,
    "sample_size": 16,
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4, 4, 4],
    "norm_num_groups": 8,
}


@dataclass(frozen=True)
class Chip:
    name: str
    peak_tflops: float
    bandwidth_gbs: float
    source: str


@dataclass(frozen=True)
class Figure:
    id: str
    device: str
    chip: str
    ms: float  # per UNet call (1000 / it/s) or per forward pass
    role: str  # fit | held_out
    program: str
    attention: str
    source: dict[str, str]


def load_figures(path: Path = FIGURES) -> tuple[dict[str, Chip], list[Figure]]:
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    chips = {k: Chip(k, float(v["peak_tflops"]), float(v["bandwidth_gbs"]), str(v["source"]))
             for k, v in raw["chips"].items()}  # fmt: skip
    figures = []
    for f in raw["figures"]:
        ms = float(f["ms"]) if "ms" in f else 1000.0 / float(f["its"])
        figures.append(Figure(f["id"], f["device"], f["chip"], ms, f["role"], f["program"],
                              f["attention"], dict(f["source"])))  # fmt: skip
    return chips, figures


def attention_model(label: str) -> AttentionModel:
    kind, _, chunk = label.partition("/chunk=")
    return AttentionModel(kind, int(chunk or 0))


# --------------------------------------------------------------------------- programs


def _convert(traced: Any, shapes: dict[str, tuple[int, ...]], target: str, folder: Path,
             nbits: int) -> MilSummary:  # fmt: skip
    """FP16 ML Program for ``target`` (palettised to ``nbits`` when > 0), inspected."""
    ct = import_coremltools()
    with quiet():
        ml = ct.convert(
            traced,
            inputs=[ct.TensorType(name=n, shape=s, dtype=np.float16) for n, s in shapes.items()],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, target),
            compute_precision=ct.precision.FLOAT16,
            compute_units=ct.ComputeUnit.CPU_AND_NE,
            skip_model_load=True,
        )
        if nbits:
            import coremltools.optimize.coreml as cto

            cfg = cto.OptimizationConfig(
                global_config=cto.OpPalettizerConfig(nbits=nbits, mode="uniform")
            )
            ml = cto.palettize_weights(ml, cfg)
        path = folder / "program.mlpackage"
        ml.save(str(path))
    del ml
    gc.collect()
    return inspect_mlprogram(path, float_bytes=2)


def build_sd21(tiny: bool, folder: Path) -> MilSummary:
    import torch
    from diffusers import UNet2DConditionModel

    class Step(torch.nn.Module):
        def __init__(self, unet: Any) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.unet(x, t, encoder_hidden_states=c, return_dict=False)[0]
            return out

    cfg = TINY_UNET if tiny else SD21_BASE
    torch.manual_seed(0)
    module = Step(UNet2DConditionModel(**cfg)).eval()  # type: ignore[arg-type]
    side = int(cfg["sample_size"])  # type: ignore[call-overload]
    x, t = torch.randn(2, 4, side, side), torch.full((2,), 981.0)
    c = torch.randn(2, 77, int(cfg["cross_attention_dim"]))  # type: ignore[call-overload]
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(module, (x, t, c), check_trace=False)  # type: ignore[no-untyped-call]
    del module
    gc.collect()
    shapes = {"sample": tuple(x.shape), "timestep": tuple(t.shape),
              "encoder_hidden_states": tuple(c.shape)}  # fmt: skip
    return _convert(traced, shapes, "iOS18", folder, 6)


def build_distilbert(tiny: bool, folder: Path) -> MilSummary:
    """DistilBERT in Apple's ane_transformers layout: (B, C, 1, S) tensors, 1x1 convs, per-head
    einsum attention, LayerNorm over channels; iOS16 (no fused attention op)."""
    import torch
    from torch import nn

    dim, heads, ffn, layers, seq = 768, 12, 3072, (1 if tiny else 6), 128

    class Norm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.b = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            zc = x - x.mean(1, keepdim=True)
            out = zc * torch.rsqrt((zc * zc).mean(1, keepdim=True) + 1e-12)
            return (out + self.b.view(1, -1, 1, 1)) * self.w.view(1, -1, 1, 1)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Conv2d(dim, dim, 1) for _ in range(4))
            self.f1, self.f2 = nn.Conv2d(dim, ffn, 1), nn.Conv2d(ffn, dim, 1)
            self.n1, self.n2 = Norm(), Norm()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.q(x), self.k(x).transpose(1, 3), self.v(x)
            hd = dim // heads
            outs = []
            for h in range(heads):
                w = torch.einsum("bchq,bkhc->bkhq", q[:, h * hd:(h + 1) * hd],
                                 k[..., h * hd:(h + 1) * hd]) * hd**-0.5  # fmt: skip
                outs.append(torch.einsum("bkhq,bchk->bchq", w.softmax(dim=1),
                                         v[:, h * hd:(h + 1) * hd]))  # fmt: skip
            x = self.n1(x + self.o(torch.cat(outs, dim=1)))
            return self.n2(x + self.f2(nn.functional.gelu(self.f1(x))))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*(Block() for _ in range(layers)))
            self.pre, self.cls = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.blocks(x)[..., :1]
            out: torch.Tensor = self.cls(torch.relu(self.pre(h)))
            return out

    torch.manual_seed(0)
    x = torch.randn(1, dim, 1, seq)
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(Model().eval(), (x,))  # type: ignore[no-untyped-call]
    return _convert(traced, {"x": tuple(x.shape)}, "iOS16", folder, 0)


BUILDERS = {"sd21_base": build_sd21, "distilbert_ane": build_distilbert}


def program(name: str, tiny: bool, cache: Path) -> MilSummary | None:
    """The named program's summary, from ``cache`` or built (None: not buildable here)."""
    if name not in BUILDERS:
        return None
    ct = import_coremltools()
    f = cache / f"{name}{'_tiny' if tiny else ''}_ct{ct.__version__}.json"
    if f.is_file():
        return MilSummary.from_dict(json.loads(f.read_text()))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="estimator-") as tmp:
        summary = BUILDERS[name](tiny, Path(tmp))
    cache.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(summary.to_dict()))
    print(f"# built {name}: {len(summary.ops)} ops, {summary.flops / 1e12:.3f} TFLOP, "
          f"{summary.weight_bytes / 1e6:.1f} MB weights, in {time.perf_counter() - t0:.0f} s"
          f" (cached: {f})")  # fmt: skip
    return summary


# --------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class Params:
    eff_conv: float
    eff_matmul: float  # attention shares it
    bandwidth_efficiency: float
    overhead_us: float

    def estimator(self, chip: Chip, attention: AttentionModel) -> Estimator:
        eff = {"conv": self.eff_conv, "matmul": self.eff_matmul, "attention": self.eff_matmul,
               "elementwise": 1.0, "memory": 1.0}  # fmt: skip
        return Estimator(chip.peak_tflops, chip.bandwidth_gbs, self.overhead_us, eff,
                         attention=attention, fusion=True,
                         bandwidth_efficiency=self.bandwidth_efficiency)  # fmt: skip


START = Params(0.55, 0.45, 1.0, 20.0)


class Costs:
    """A program's fusion groups under one attention model, as arrays for fast re-evaluation."""

    def __init__(self, summary: MilSummary, attention: AttentionModel) -> None:
        gc = group_costs(summary, START.estimator(Chip("", 1.0, 1.0, ""), attention), 2)
        self.conv = np.asarray(gc.flops["conv"])
        self.matmul = np.asarray(gc.flops["matmul"]) + np.asarray(gc.flops["attention"])
        rest = [c for c in OP_CLASSES if c not in ("conv", "matmul", "attention")]
        self.other = np.sum([np.asarray(gc.flops[c]) for c in rest], axis=0)
        self.bytes = np.asarray(gc.bytes)

    def ms(self, p: Params, chip: Chip) -> float:
        peak = chip.peak_tflops * 1e12
        t_c = self.conv / (peak * p.eff_conv) + self.matmul / (peak * p.eff_matmul)
        t_c = t_c + self.other / peak
        t_m = self.bytes / (chip.bandwidth_gbs * 1e9 * p.bandwidth_efficiency)
        return float(np.maximum(t_c, t_m).sum() * 1e3 + len(self.bytes) * p.overhead_us * 1e-3)


def _params(x: np.ndarray) -> Params:
    sig = 1.0 / (1.0 + np.exp(-x[:3]))
    return Params(float(sig[0]), float(sig[1]), float(sig[2]), float(math.exp(x[3])))


def fit(figures: list[Figure], costs: dict[tuple[str, str], Costs],
        chips: dict[str, Chip]) -> Params:  # fmt: skip
    """Least squares on log(estimate / published) over the fit figures only."""
    from scipy.optimize import minimize

    used = [f for f in figures if f.role == "fit"]
    assert used and all(f.role == "fit" for f in used)

    def loss(x: np.ndarray) -> float:
        p = _params(x)
        return sum(math.log(costs[f.program, f.attention].ms(p, chips[f.chip]) / f.ms) ** 2
                   for f in used)  # fmt: skip

    def logit(v: float) -> float:
        v = min(max(v, 1e-3), 1 - 1e-3)
        return math.log(v / (1 - v))

    x0 = np.asarray([logit(START.eff_conv), logit(START.eff_matmul), logit(0.9),
                     math.log(START.overhead_us)])  # fmt: skip
    best = minimize(loss, x0, method="Nelder-Mead",
                    options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-8})  # fmt: skip
    return _params(best.x)


# --------------------------------------------------------------------------- report

PAIRS = (("A15", "A14"), ("A16", "A15"), ("M2", "M1"), ("M1", "A14"), ("M2", "A16"))


def _chip_ms(rows: list[tuple[Figure, float]]) -> dict[str, tuple[float, float]]:
    """chip -> (median published ms, median estimated ms) over its figures."""
    out: dict[str, tuple[float, float]] = {}
    for chip in sorted({f.chip for f, _ in rows}):
        mine = [(f.ms, e) for f, e in rows if f.chip == chip]
        out[chip] = (float(np.median([m for m, _ in mine])), float(np.median([e for _, e in mine])))
    return out


def print_chip_ratios(label: str, rows: list[tuple[Figure, float]]) -> list[float]:
    """Speed ratios between chips (how much faster the first), published vs estimated."""
    per = _chip_ms(rows)
    errors = []
    cells = []
    for a, b in PAIRS:
        if a in per and b in per:
            pub = per[b][0] / per[a][0]
            est = per[b][1] / per[a][1]
            errors.append(est / pub - 1)
            cells.append(f"{a}/{b} {pub:.2f} vs {est:.2f} ({100 * (est / pub - 1):+.0f} %)")
    print(f"{label}: " + "; ".join(cells))
    return errors


def report(figures: list[Figure], chips: dict[str, Chip], summaries: dict[str, MilSummary],
           p: Params) -> None:  # fmt: skip
    print(f"{'figure':<26} {'chip':<6} {'role':<9} {'published':>10} {'estimate':>10} "
          f"{'ratio':>6}  source")  # fmt: skip
    done: dict[str, list[tuple[Figure, float]]] = {"fit": [], "held_out": []}
    for f in figures:
        s = summaries.get(f.program)
        if s is None:
            print(f"{f.id:<26} {f.chip:<6} {f.role:<9} {f.ms:>7.0f} ms {'':>10} {'':>6}  "
                  f"not evaluated: no {f.program} program here")  # fmt: skip
            continue
        est = roofline(s, p.estimator(chips[f.chip], attention_model(f.attention)), 2).latency_ms
        done[f.role].append((f, est))
        print(f"{f.id:<26} {f.chip:<6} {f.role:<9} {f.ms:>7.1f} ms {est:>7.1f} ms "
              f"{est / f.ms:>6.2f}  {f.source['published'][:60]}")  # fmt: skip
    for role in ("fit", "held_out"):
        ratios = [e / f.ms for f, e in done[role]]
        if ratios:
            worst = max(ratios, key=lambda r: abs(math.log(r)))
            within = sum(1 / 1.25 <= r <= 1.25 for r in ratios)
            print(f"- {role}: {len(ratios)} figures, ratios {min(ratios):.2f} to "
                  f"{max(ratios):.2f} (worst {worst:.2f}), {within} within 1.25x")  # fmt: skip
    print()
    print("Chip-to-chip speed ratios, published vs estimated (median per chip)")
    fit_err = print_chip_ratios("- fit figures (SD-2.1, Aug 2023)", done["fit"])
    sd_held = [(f, e) for f, e in done["held_out"] if f.program == "sd21_base"]
    held_err = print_chip_ratios("- held out (SD-2.1, June 2023)", sd_held)
    for label, errs in (("fit", fit_err), ("held out", held_err)):
        if errs:
            within = sum(abs(e) <= 0.15 for e in errs)
            print(f"  {label}: {within} of {len(errs)} chip ratios within 15 %")
    band = [f.ms / e for f, e in done["fit"]]
    q10, q90 = (float(np.quantile(band, q)) for q in (0.1, 0.9))
    print()
    print(f"Calibration band (published / estimate over the {len(band)} fit figures): "
          f"p10 {q10:.3f}, p90 {q90:.3f}")  # fmt: skip
    print("Device YAML estimator constants (paste under estimator:):")
    print(f"  efficiency: {{conv: {p.eff_conv:.3f}, matmul: {p.eff_matmul:.3f}, attention: "
          f"{p.eff_matmul:.3f}, elementwise: 1.0, memory: 1.0}}")  # fmt: skip
    print(f"  bandwidth_efficiency: {p.bandwidth_efficiency:.3f}")
    print(f"  per_op_overhead_us: {p.overhead_us:.2f}")
    print(f"  uncertainty: {{p10: {min(q10, 1.0):.3f}, p90: {max(q90, 1.0):.3f}}}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=CACHE,
        help=f"where converted programs are cached as JSON (default {CACHE})",
    )
    ap.add_argument("--rebuild", action="store_true", help="convert again, ignoring the cache")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="tiny stand-in programs: checks the script runs (ratios mean nothing)",
    )
    args = ap.parse_args(argv)  # fmt: skip
    import torch

    ct = import_coremltools()
    words = ["python", "benchmarks/estimator_vs_published.py"]
    words += sys.argv[1:] if argv is None else argv
    print("$ " + " ".join(shlex.quote(a) for a in words))
    print(f"# {platform.platform()}, python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"coremltools {ct.__version__}; figures: {FIGURES.relative_to(ROOT)}")  # fmt: skip
    t0 = time.perf_counter()
    chips, figures = load_figures()
    if args.rebuild:
        for f in args.cache.glob("*.json"):
            f.unlink()
    summaries: dict[str, MilSummary] = {}
    for name in sorted({f.program for f in figures}):
        s = program(name, args.tiny, args.cache)
        if s is not None:
            summaries[name] = s
    costs = {(f.program, f.attention): Costs(summaries[f.program], attention_model(f.attention))
             for f in figures if f.program in summaries}  # fmt: skip
    p = fit(figures, costs, chips)
    print(f"# fitted on {sum(f.role == 'fit' for f in figures)} figures: conv efficiency "
          f"{p.eff_conv:.3f}, matmul/attention {p.eff_matmul:.3f}, bandwidth efficiency "
          f"{p.bandwidth_efficiency:.3f}, per-op overhead {p.overhead_us:.1f} us")  # fmt: skip
    print()
    report(figures, chips, summaries, p)
    a18 = roofline(
        summaries["sd21_base"], p.estimator(chips["A18Pro"], AttentionModel("split_heads", 512)), 2
    )
    print(f"- for reference, SD-2.1 on the A18 Pro (iphone16pm constants): {a18.latency_ms:.0f} ms"
          " per UNet call (no published figure)")  # fmt: skip
    print(f"- wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
