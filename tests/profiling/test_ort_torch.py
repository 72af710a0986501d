"""ONNX Runtime and PyTorch profilers on the tiny space's rows (real measurements, CPU)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn

from nas.cost import RowSpec, rows_for_space, temporal_row
from nas.space import OpChoice
from profilers import (
    ExportError,
    MismatchError,
    OrtProfiler,
    RowModule,
    TimingProtocol,
    TorchProfiler,
    backbone_configs,
    build_row_module,
    get_device,
)

FAST = TimingProtocol(warmup=1, min_repeats=3, max_repeats=5, max_seconds=2, memory=False)
FAST_MEM = TimingProtocol(warmup=1, min_repeats=3, max_repeats=5, max_seconds=2, memory=True)


@pytest.fixture(scope="module")
def tiny_rows(tiny_space: Any) -> list[RowSpec]:
    return rows_for_space(tiny_space, "fp32")


@pytest.fixture(scope="module")
def groups(tiny_space: Any) -> int:
    # Temporal rows do not carry the GroupNorm group count; the runner passes the backbone's.
    return int(tiny_space.backbone.config.norm_num_groups)


@pytest.fixture(scope="module")
def ort_profiler() -> OrtProfiler:
    return OrtProfiler()


def _build(row: RowSpec, groups: int) -> RowModule:
    from nas.space import load_space

    backbones = backbone_configs(load_space("search_spaces/tiny.yaml"))
    return build_row_module(row, groups=groups, backbones=backbones)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _check_timing(r: Any, spec: RowSpec) -> None:
    assert r.spec == spec
    assert r.source == "measured", r.reason
    assert r.reason == ""
    assert 0 < r.latency_ms_p10 <= r.latency_ms_p50 <= r.latency_ms_p90
    assert 3 <= r.repeats <= 5
    assert r.measured_at


def test_tiny_rows_cover_every_kind(tiny_rows: list[RowSpec]) -> None:
    kinds = {r.op for r in tiny_rows}
    assert len(tiny_rows) == 21
    backbone = {"conv_in", "time_embed", "resnet", "attn", "downsample", "upsample", "conv_out"}
    assert backbone <= kinds and {"call", "glue"} <= kinds
    assert {"conv1d", "conv3d", "attn1d", "attn3d"} <= kinds


def test_ort_measures_every_tiny_row(
    tiny_rows: list[RowSpec], groups: int, ort_profiler: OrtProfiler
) -> None:
    device = get_device("cpu-ort")
    for spec in tiny_rows:
        built = _build(spec, groups)
        r = ort_profiler.measure(spec, built, device, FAST)
        _check_timing(r, spec)
        assert r.compute_unit == "CPU"
        assert r.peak_mem_mb is None  # memory=False
        assert ort_profiler.last_exporter == "torchscript"
        # The graph's initializers are the parameters at fp32, except that the TorchScript
        # exporter merges initializers with identical values (freshly initialised GroupNorm /
        # LayerNorm weights of ones and biases of zeros), so it can only be a little smaller.
        want = 4 * _params(built.module)
        assert r.weight_bytes is not None
        if spec.is_network:  # no parameters; the call row's constant 1.0 is an initializer
            assert r.weight_bytes <= 4, spec.key
            continue
        assert 0.97 * want <= r.weight_bytes <= want, spec.key


def test_ort_memory_on_larger_rows(
    tiny_rows: list[RowSpec], groups: int, ort_profiler: OrtProfiler
) -> None:
    device = get_device("cpu-ort")
    resnet = max((r for r in tiny_rows if r.op == "resnet"), key=lambda r: r.height * r.channels)
    attn = next(r for r in tiny_rows if r.op == "attn1d")
    for spec in (resnet, attn):
        r = ort_profiler.measure(spec, _build(spec, groups), device, FAST_MEM)
        _check_timing(r, spec)
        assert r.peak_mem_mb is not None and r.peak_mem_mb > 0, spec.key
        assert r.peak_mem_mb < 200  # tiny blocks: the runtime start-up is not charged
    assert "memory_method" in ort_profiler.versions()


@pytest.mark.parametrize("op", ["xattn1d", "xattn3d"])
def test_ort_cross_attention_rows(
    op: str, tiny_space: Any, groups: int, ort_profiler: OrtProfiler
) -> None:
    slot = tiny_space.slots[0]
    spec = temporal_row(OpChoice.make(op, heads=2), slot, tiny_space, "fp32")
    assert "text=" in spec.options
    built = _build(spec, groups)
    assert built.input_names == ("x", "context")
    r = ort_profiler.measure(spec, built, get_device("cpu-ort"), FAST)
    _check_timing(r, spec)
    assert r.weight_bytes is not None
    assert 0.97 * 4 * _params(built.module) <= r.weight_bytes <= 4 * _params(built.module)


def test_ort_versions(ort_profiler: OrtProfiler) -> None:
    v = ort_profiler.versions()
    for k in ("onnxruntime", "onnx", "torch", "python", "cpu", "threads", "memory_method"):
        assert v[k], k
    assert v == ort_profiler.versions()  # stable: the runner compares them across runs


def test_torch_cpu_rows(tiny_rows: list[RowSpec], groups: int) -> None:
    prof = TorchProfiler()
    device = get_device("torch-cpu")
    threads = torch.get_num_threads()
    picks = [r for r in tiny_rows if r.op in ("resnet", "attn", "attn1d", "conv3d")][:4]
    for spec in picks:
        built = _build(spec, groups)
        r = prof.measure(spec, built, device, FAST)
        _check_timing(r, spec)
        assert r.compute_unit == "CPU"
        assert r.peak_mem_mb is None
        assert r.weight_bytes == 4 * _params(built.module)
    assert torch.get_num_threads() == threads  # restored
    assert prof.versions()["torch"] == torch.__version__


def test_torch_cpu_memory_in_subprocess(tiny_rows: list[RowSpec], groups: int) -> None:
    spec = next(r for r in tiny_rows if r.op == "attn")
    r = TorchProfiler().measure(spec, _build(spec, groups), get_device("torch-cpu"), FAST_MEM)
    _check_timing(r, spec)
    assert r.peak_mem_mb is not None and 0 < r.peak_mem_mb < 200


def test_torch_cpu_fp16_casts_a_copy(tiny_rows: list[RowSpec], groups: int) -> None:
    # the CUDA path's casting, exercised on the CPU: the caller's module stays fp32
    device = replace(get_device("torch-cpu"), precision="fp16")
    for spec in [r for r in tiny_rows if r.op in ("resnet", "attn1d")][:2]:
        built = _build(spec, groups)
        r = TorchProfiler().measure(spec, built, device, FAST)
        _check_timing(r, spec)
        assert r.weight_bytes == 2 * _params(built.module)
        assert next(built.module.parameters()).dtype == torch.float32


@pytest.mark.gpu
def test_torch_cuda(tiny_rows: list[RowSpec], groups: int) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    device = get_device("cuda")
    prof = TorchProfiler()
    for spec in [r for r in tiny_rows if r.op in ("resnet", "attn", "attn3d")][:3]:
        built = _build(spec, groups)
        r = prof.measure(spec, built, device, FAST_MEM)
        _check_timing(r, spec)
        assert r.compute_unit.startswith("cuda:")
        assert r.peak_mem_mb is not None and r.peak_mem_mb > 0
        bpe = 2 if device.precision == "fp16" else 4
        assert r.weight_bytes == bpe * _params(built.module)
        # the caller's module stays where it was
        assert next(built.module.parameters()).device.type == "cpu"


# -- failures ----------------------------------------------------------------------------------


class _Svd(nn.Module):
    """``linalg_svd`` has no ONNX export in either exporter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.linalg.svd(x)[1]
        return out


class _BakedItem(nn.Module):
    """A Python-side ``.item()``: the TorchScript tracer bakes the value into a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.abs().max())


def _custom(module: nn.Module) -> tuple[RowSpec, RowModule]:
    spec = RowSpec("custom", "", 4, 1, 3, 4, 1, "fp32")
    return spec, RowModule(module, (torch.randn(2, 3, 4),), ("x",))


def test_export_error_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", boom)
    spec, built = _custom(_BakedItem())
    with pytest.raises(ExportError, match=r"ONNX export failed .*exporter exploded"):
        OrtProfiler().measure(spec, built, get_device("cpu-ort"), FAST)


def test_unexportable_module_fails_with_both_reasons() -> None:
    spec, built = _custom(_Svd())
    with pytest.raises(ExportError) as ei:
        OrtProfiler().measure(spec, built, get_device("cpu-ort"), FAST)
    msg = str(ei.value)
    assert msg.startswith("ONNX export failed")
    assert "torchscript:" in msg and "dynamo:" in msg and "linalg_svd" in msg
    assert "\n" not in msg


def test_baked_constant_is_a_mismatch() -> None:
    spec, built = _custom(_BakedItem())
    with pytest.raises(MismatchError, match=r"does not match PyTorch.*perturbed inputs"):
        OrtProfiler(exporter="torchscript").measure(spec, built, get_device("cpu-ort"), FAST)
    # "auto" falls back to the dynamo exporter, which keeps the data dependence
    prof = OrtProfiler()
    r = prof.measure(spec, built, get_device("cpu-ort"), FAST)
    assert r.source == "measured" and prof.last_exporter == "dynamo"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exporter"):
        OrtProfiler(exporter="nope")
    with pytest.raises(ValueError, match="opset"):
        OrtProfiler(opset=13)
    spec = RowSpec("conv1d", "kernel=3", 16, 4, 8, 8, 1, "fp16")
    with pytest.raises(ValueError, match="fp32"):
        OrtProfiler().measure(spec, _custom(_Svd())[1], get_device("cpu-ort"), FAST)
