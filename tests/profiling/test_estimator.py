"""The Core ML estimator's execution model on tiny MIL programs, converted for real.

Attention memory per model (hand-computed), fusion rules, the Neural Engine fallback, the
calibration band and infeasible-by-memory rows (and what the CostModel makes of them).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("coremltools")

import torch
import torch.nn.functional as F
from torch import nn

from nas.cost import CostModel, RowSpec, Table, rows_for_space
from nas.errors import NasError
from nas.mil import MilSummary, inspect_mlprogram
from nas.space import reference_arch
from profilers import (
    AttentionModel,
    Device,
    Estimator,
    NeuralEngineRules,
    attention_memory,
    estimate_row,
    fusion_groups,
    get_device,
    load_device,
    quiet,
    roofline,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def _convert(module: nn.Module, shapes: list[tuple[int, ...]], tmp: Path,
             target: str = "iOS18") -> MilSummary:  # fmt: skip
    import coremltools as ct

    inputs = tuple(torch.randn(*s) for s in shapes)
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(module.eval(), inputs)  # type: ignore[no-untyped-call]
        ml = ct.convert(
            traced,
            inputs=[
                ct.TensorType(name=f"x{i}", shape=s, dtype=np.float16) for i, s in enumerate(shapes)
            ],
            outputs=[ct.TensorType(name="out", dtype=np.float16)],
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, target),
            compute_precision=ct.precision.FLOAT16,
            skip_model_load=True,
        )
        path = tmp / "m.mlpackage"
        ml.save(str(path))
    return inspect_mlprogram(path, float_bytes=2)


class _SDPA(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


class _ConvSiluResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(x)) + x


class _ConvTwoReaders(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return F.silu(y) * y  # y is read twice: it must reach memory


class _LinearGeluSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(F.gelu(self.fc(x)), dim=-1)


EST = Estimator(peak_tflops=10.0, bandwidth_gbs=100.0, per_op_overhead_us=10.0)


@pytest.fixture(scope="module")
def sdpa(tmp_path_factory: pytest.TempPathFactory) -> MilSummary:
    # q, k, v: (batch 1, 2 heads, 64 tokens, head dim 8); fp16: 2,048 bytes each
    return _convert(_SDPA(), [(1, 2, 64, 8)] * 3, tmp_path_factory.mktemp("sdpa"))


# ---------------------------------------------------------------- attention models


def test_sdpa_program_has_one_fused_attention_op(sdpa: MilSummary) -> None:
    attn = [o for o in sdpa.ops if o.op_class == "attention"]
    assert len(attn) == 1
    assert attn[0].attention == (1, 2, 64, 64)  # batch without heads, heads, L, S


@pytest.mark.parametrize(
    ("model", "transient", "workspace", "peak"),
    [
        # fused: q + k + v + out = 4 x 2,048 B, nothing else
        (AttentionModel("fused"), 0, 0, 8192),
        # one head's scores and softmax: 2 x 64 x 64 x 2 B; its q, k, v: (64 + 2 x 64) x 8 x 2 B
        (AttentionModel("split_heads"), 16384, 3072, 8192 + 16384 + 3072),
        # one head and 16 queries: 2 x 16 x 64 x 2 B; (16 + 2 x 64) x 8 x 2 B
        (AttentionModel("split_heads", chunk=16), 4096, 2304, 8192 + 4096 + 2304),
        # every head at once: 2 x 2 x 64 x 64 x 2 B; 2 x (64 + 2 x 64) x 8 x 2 B
        (AttentionModel("materialized"), 32768, 6144, 8192 + 32768 + 6144),
    ],
)
def test_attention_memory_per_model(
    sdpa: MilSummary, model: AttentionModel, transient: int, workspace: int, peak: int
) -> None:
    op = next(o for o in sdpa.ops if o.op_class == "attention")
    traffic, t, w = attention_memory(op, model, 2)
    assert (t, w) == (transient, workspace)
    # the scores cross DRAM four times unless fused: 4 x 2 heads x 64 x 64 x 2 B
    assert traffic == (0 if model.kind == "fused" else 65536)
    est = roofline(sdpa, replace(EST, attention=model))
    assert est.peak_mem_bytes == peak
    assert est.attention == model.label


def test_split_attention_is_slower_than_fused(sdpa: MilSummary) -> None:
    fused = roofline(sdpa, EST).latency_ms
    split = roofline(sdpa, replace(EST, attention=AttentionModel("split_heads"))).latency_ms
    # memory-bound: q, k, v, out + 65,536 bytes of scores at 100 GB/s, + 10 us overhead
    assert split == pytest.approx((8192 + 65536) / 100e9 * 1e3 + 0.01)
    assert fused < split


def test_attention_model_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="not one of"):
        AttentionModel("flash")
    with pytest.raises(ValueError, match="split_heads only"):
        AttentionModel("fused", chunk=512)


# ---------------------------------------------------------------- fusion rules


def test_bias_activation_and_residual_fuse_into_the_conv(tmp_path: Path) -> None:
    s = _convert(_ConvSiluResidual(), [(1, 8, 16, 16)], tmp_path)
    types = [o.op_type for o in s.ops]
    assert types == ["conv", "silu", "add"]  # the bias is the conv's own input
    group, edges = fusion_groups(s.ops)
    assert group == [0, 0, 0]
    assert len(edges) == 2  # conv -> silu and silu -> add never reach memory
    fused = roofline(s, replace(EST, fusion=True, per_op_overhead_us=0))
    unfused = roofline(s, replace(EST, per_op_overhead_us=0))
    # x: 8 x 16 x 16 x 2 B = 4,096 B; weights 8 x 8 x 9 x 2 + 8 x 2 = 1,168 B.
    # Unfused: conv 4,096 + 4,096 + 1,168; silu 2 x 4,096; add 3 x 4,096 = 29,840 B.
    # Fused: read x and the weights, read x again for the residual, write once = 13,456 B.
    assert unfused.latency_ms == pytest.approx(29840 / 100e9 * 1e3)
    assert fused.latency_ms == pytest.approx(13456 / 100e9 * 1e3)
    assert (fused.fused_ops, fused.groups) == (2, 1)


def test_a_tensor_read_twice_is_not_fused(tmp_path: Path) -> None:
    s = _convert(_ConvTwoReaders(), [(1, 8, 16, 16)], tmp_path)
    group, edges = fusion_groups(s.ops)
    conv = [o.op_type for o in s.ops].index("conv")
    silu = [o.op_type for o in s.ops].index("silu")
    assert group[silu] == silu and not edges & set(s.ops[conv].outputs)


def test_activation_fuses_into_linear_but_softmax_does_not(tmp_path: Path) -> None:
    s = _convert(_LinearGeluSoftmax(), [(4, 16)], tmp_path)
    types = [o.op_type for o in s.ops]
    group, _ = fusion_groups(s.ops)
    assert group[types.index("gelu")] == types.index("linear")
    assert group[types.index("softmax")] == types.index("softmax")


# ---------------------------------------------------------------- the Neural Engine fallback


def test_a_dimension_over_the_limit_runs_on_the_fallback_unit(sdpa: MilSummary) -> None:
    rules = NeuralEngineRules(max_dim=32, fallback_tflops=1.0, fallback_bandwidth_gbs=10.0)
    on = roofline(sdpa, replace(EST, attention=AttentionModel("split_heads")))
    off = roofline(sdpa, replace(EST, attention=AttentionModel("split_heads"), neural_engine=rules))
    assert off.off_ane and "64 > 32" in off.off_ane[0]
    assert off.latency_ms > on.latency_ms
    # fused attention never materialises the 64 x 64 scores: only the 64-token tensors count
    fused = roofline(sdpa, replace(EST, neural_engine=rules))
    assert fused.off_ane  # (1, 2, 64, 8) outputs: 64 > 32 too
    unsupported = NeuralEngineRules(unsupported_ops=frozenset({"scaled_dot_product_attention"}))
    assert roofline(sdpa, replace(EST, neural_engine=unsupported)).off_ane


# ---------------------------------------------------------------- device YAML


def test_device_yaml_reads_the_execution_model(tmp_path: Path) -> None:
    d = get_device(str(ROOT / "profilers" / "devices" / "iphone16pm.yaml"))
    assert d.estimator is not None
    assert d.estimator.attention.kind in ("fused", "split_heads", "materialized")
    assert d.estimator.p10_ratio <= 1.0 <= d.estimator.p90_ratio
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "profilers" / "devices" / "iphone16pm.yaml").read_text()
    bad.write_text(text.replace("model: split_heads", "model: flash"))
    with pytest.raises(NasError, match="attention 'flash' is not one of"):
        load_device(bad)


# ---------------------------------------------------------------- rows: band and infeasibility


def _device(budget_mb: float, **est: Any) -> Device:
    d = get_device(str(ROOT / "profilers" / "devices" / "iphone16pm.yaml"))
    assert d.estimator is not None
    return replace(d, memory_budget_mb=budget_mb, estimator=replace(d.estimator, **est))


def test_estimated_rows_carry_the_calibration_band(sdpa: MilSummary) -> None:
    spec = RowSpec("attn3d", "ffn_ratio=0,heads=2", 16, 1, 8, 8, 1, "fp16")
    row = estimate_row(spec, sdpa, _device(4096, p10_ratio=0.8, p90_ratio=1.3))
    assert row.latency_ms_p50 is not None
    assert row.latency_ms_p10 == pytest.approx(0.8 * row.latency_ms_p50)
    assert row.latency_ms_p90 == pytest.approx(1.3 * row.latency_ms_p50)
    assert "attention " in row.reason and row.source == "estimated"


def test_a_row_over_the_budget_is_priced_and_marked_infeasible(sdpa: MilSummary) -> None:
    spec = RowSpec("attn3d", "ffn_ratio=0,heads=2", 16, 1, 8, 8, 1, "fp16")
    budget = 20000 / 2**20  # 20,000 bytes: the split model's 27,648 do not fit, fused 8,192 do
    split = estimate_row(spec, sdpa, _device(budget, attention=AttentionModel("split_heads")))
    fused = estimate_row(spec, sdpa, _device(budget, attention=AttentionModel("fused")))
    assert split.reason.startswith("infeasible: peak memory")
    assert split.ok and split.latency_ms_p50  # still priced: the search sees it over budget
    assert not fused.reason.startswith("infeasible")


def test_cost_model_puts_an_arch_with_an_infeasible_row_over_budget(tiny_space: Any) -> None:
    from _tiny_table import tiny_table

    table: Table = tiny_table(tiny_space, device="hand", budget_mb=100.0)
    spec = next(r for r in rows_for_space(tiny_space, "fp32") if r.op == "attn3d")
    row = table.rows[spec.key]
    note = "infeasible: peak memory 150 MB exceeds the hand budget 100 MB"
    table.put(replace(row, source="estimated", peak_mem_mb=150.0, reason=note))
    model = CostModel(tiny_space, table)
    uses = [a for a in _reference_archs(tiny_space) if spec.key in _keys(tiny_space, a)]
    others = [a for a in _reference_archs(tiny_space) if spec.key not in _keys(tiny_space, a)]
    assert uses and others
    for arch in uses:
        assert model.evaluate(arch).peak_mem_mb > model.memory_budget_mb
    for arch in others:
        assert model.evaluate(arch).peak_mem_mb < model.memory_budget_mb


def _reference_archs(space: Any) -> list[Any]:
    return [reference_arch(space, op)[0] for op in ("none", "conv1d", "attn1d", "attn3d")]


def _keys(space: Any, arch: Any) -> set[str]:
    from nas.cost import arch_rows

    return {r.key for r in arch_rows(space, arch, "fp32")}


def test_infeasible_arch_count_matches_brute_force(tiny_space: Any) -> None:
    """benchmarks/attention_memory.py counts arches over budget without enumerating them."""
    import itertools

    from _tiny_table import tiny_table

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from attention_memory import count_over

    from nas.space import dim_sizes

    table: Table = tiny_table(tiny_space, device="hand", budget_mb=100.0,
                              work_mb={"attn3d": 3.0, "attn1d": 2.0, "conv3d": 1.5})  # fmt: skip
    model = CostModel(tiny_space, table)
    idx = np.asarray(list(itertools.product(*(range(n) for n in dim_sizes(tiny_space)))))
    peaks = model.evaluate_indices(idx)["peak_mem_mb"]
    counts = []
    for budget in np.quantile(peaks, [0.0, 0.3, 0.7, 1.0]) + 1e-3:
        over, total, largest = count_over(model, float(budget))
        assert total == len(idx) and largest == pytest.approx(peaks.max())
        assert over == int((peaks > budget).sum())  # weights: whole MiB, exact in 1/64 MB
        counts.append(over)
    assert counts[0] > 0 and counts[-1] == 0 and len(set(counts)) >= 3


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  fusion: true", "  fusion: true\n  fuse_more: true", "fuse_more: unknown key"),
        ("uncertainty: {p10: 0.752", "uncertainty: {p10: 1.5", "uncertainty: need 0 < p10 <= 1"),
        ("bandwidth_efficiency: 1.0", "bandwidth_efficiency: 1.5", "bandwidth_efficiency: 1.5 is"),
        ("    chunk: 0", "    chunk: -3", "attention chunk"),
        ("max_dim: 16384", "max_dim: lots", "estimator: invalid literal"),
    ],
)
def test_malformed_estimator_sections_are_one_error(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (ROOT / "profilers" / "devices" / "iphone16pm.yaml").read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(NasError, match=message):
        load_device(bad)
