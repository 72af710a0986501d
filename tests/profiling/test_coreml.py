"""Core ML profiler: real conversion, MIL inspection, the roofline, the iPhone path with fakes."""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("coremltools")

from nas.cost import RowSpec, rows_for_space
from nas.mil import MilOp, MilSummary, inspect_mlprogram, op_class
from profilers import (
    CoreMLProfiler,
    Device,
    Estimator,
    RowModule,
    TimingProtocol,
    backbone_configs,
    build_row_module,
    convert_row,
    estimate_row,
    get_device,
    measure_path,
    measure_remote,
    parse_operation_execution,
    roofline,
)

ROOT = Path(__file__).resolve().parents[2]
FAST = TimingProtocol(warmup=1, min_repeats=3, max_repeats=5, max_seconds=5.0)


def _device(name: str) -> Device:
    # by file: under a bare `pytest`, tests/profilers (no __init__.py) shadows the package name
    # `profilers` as a namespace package, so the bundled-name lookup would search tests/profilers
    return get_device(str(ROOT / "profilers" / "devices" / f"{name}.yaml"))


def _build(row: RowSpec, groups: int = 8) -> RowModule:
    from nas.space import load_space

    backbones = backbone_configs(load_space("search_spaces/tiny.yaml"))
    return build_row_module(row, groups=groups, backbones=backbones)


def _params(built: RowModule) -> int:
    return sum(p.numel() for p in built.module.parameters())


@dataclass
class Converted:
    row: RowSpec
    params: int
    summary: MilSummary


@pytest.fixture(scope="module")
def iphone() -> Device:
    return _device("iphone16pm")


@pytest.fixture(scope="module")
def converted(
    tiny_space: Any, iphone: Device, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Converted]:
    """Every row of the tiny space, converted for real (iOS18, FP16) and inspected."""
    groups = tiny_space.backbone.config.norm_num_groups
    out: dict[str, Converted] = {}
    for row in rows_for_space(tiny_space, "fp16"):
        built = _build(row, groups)
        folder = tmp_path_factory.mktemp("coreml")
        _, path = convert_row(built, iphone, folder)
        out[row.key] = Converted(row, _params(built), inspect_mlprogram(path, float_bytes=2))
    return out


# ---------------------------------------------------------------- conversion and inspection


@pytest.mark.slow
def test_every_tiny_row_converts_with_weights_and_ops(converted: dict[str, Converted]) -> None:
    assert len(converted) == 21
    for key, c in converted.items():
        s = c.summary
        assert s.ops, key
        if c.row.is_network:  # call and glue: data movement (and one add), no weights
            assert {o.op_class for o in s.ops} <= {"elementwise", "memory"}, key
            assert s.weight_bytes <= 256, key
            continue
        assert s.flops > 0, key
        assert s.op_histogram.get("const", 0) > 0, key
        assert {o.op_class for o in s.ops} <= {"conv", "matmul", "attention", "elementwise",
                                               "memory"}  # fmt: skip
        # FP16 weights = parameters x 2 bytes, up to what conversion changes: norms left at their
        # default affine (1, 0) are folded away, bias-free linears get a zero bias, sinusoidal
        # position tables become constants
        expected = 2 * c.params
        assert abs(s.weight_bytes - expected) <= 0.06 * expected + 256, (key, s.weight_bytes)


@pytest.mark.slow
def test_attention_rows_use_the_fused_sdpa_op(converted: dict[str, Converted]) -> None:
    attn = [c for c in converted.values() if c.row.op in ("attn", "attn1d", "attn3d")]
    assert len(attn) == 4
    for c in attn:
        assert c.summary.op_histogram.get("scaled_dot_product_attention", 0) >= 1, c.row.key
        assert any(o.op_class == "attention" for o in c.summary.ops)
    convs = [c for c in converted.values() if c.row.op in ("conv1d", "conv3d", "conv_in")]
    for c in convs:
        assert "scaled_dot_product_attention" not in c.summary.op_histogram
        assert any(o.op_class == "conv" for o in c.summary.ops), c.row.key


@pytest.mark.slow
def test_conv_flops_match_the_analytic_count(converted: dict[str, Converted]) -> None:
    conv_in = next(c for c in converted.values() if c.row.op == "conv_in")
    r = conv_in.row  # 3x3 conv, cin=4 -> 16, on (b*t) x 8 x 8
    out = (r.batch * r.frames) * r.channels * r.height * r.width
    assert conv_in.summary.flops == 2 * out * 4 * 9


@pytest.mark.slow
def test_estimated_rows_are_marked(converted: dict[str, Converted], iphone: Device) -> None:
    for c in converted.values():
        t = estimate_row(c.row, c.summary, iphone)
        assert t.source == "estimated"
        assert t.repeats == 0
        assert t.latency_ms_p50 is not None and t.latency_ms_p50 > 0
        est = iphone.estimator
        assert est is not None  # p10 / p90: the calibration band around the estimate
        assert t.latency_ms_p10 == pytest.approx(est.p10_ratio * t.latency_ms_p50)
        assert t.latency_ms_p90 == pytest.approx(est.p90_ratio * t.latency_ms_p50)
        assert f"attention {est.attention.label}" in t.reason
        assert "roofline estimate from the converted MIL program" in t.reason
        assert "no Apple device measured it" in t.reason
        assert t.compute_unit == "CPU_AND_NE"
        assert t.weight_bytes == c.summary.weight_bytes and t.flops == c.summary.flops
        assert t.peak_mem_mb is not None and t.peak_mem_mb * 2**20 >= c.summary.weight_bytes


def test_profiler_measure_on_linux_estimates(tiny_space: Any, iphone: Device) -> None:
    row = next(r for r in rows_for_space(tiny_space, "fp16") if r.op == "attn1d")
    prof = CoreMLProfiler(system="Linux")
    t = prof.measure(row, _build(row), iphone, FAST)
    assert t.source == "estimated" and t.spec == row
    assert t.reason.startswith("roofline estimate from the converted MIL program (")
    v = prof.versions()
    assert v["measure"] == "measure: estimated (no Apple device)"
    assert {"coremltools", "torch", "numpy", "python", "os"} <= set(v)


def test_bigger_shape_estimates_slower(iphone: Device, tmp_path: Path) -> None:
    def estimate(c: int, h: int) -> float:
        row = RowSpec("conv1d", "depthwise=false,kernel=3", c, 4, h, h, 1, "fp16")
        _, path = convert_row(_build(row), iphone, tmp_path / f"{c}x{h}")
        ms = estimate_row(row, inspect_mlprogram(path, float_bytes=2), iphone).latency_ms_p50
        assert ms is not None
        return ms

    small, wider, larger = estimate(16, 8), estimate(16, 16), estimate(64, 16)
    assert small < wider < larger


@pytest.mark.parametrize("target", ["iOS17", "iOS18"])  # iOS17 keeps the LUT as attributes
def test_palettised_weights_count_at_their_stored_size(
    iphone: Device, tmp_path: Path, target: str
) -> None:
    import coremltools.optimize.coreml as cto

    row = RowSpec("conv1d", "depthwise=false,kernel=3", 64, 4, 4, 4, 1, "fp16")
    mlmodel, path = convert_row(_build(row), replace(iphone, target=target), tmp_path)
    dense = inspect_mlprogram(path, float_bytes=2)
    cfg = cto.OpPalettizerConfig(nbits=6, mode="uniform", weight_threshold=1024)
    pal = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=cfg))
    small = inspect_mlprogram(pal, float_bytes=2)
    big = 64 * 64 * 3  # the temporal conv's weight: palettised; biases and norms stay FP16
    assert dense.weight_bytes - small.weight_bytes == pytest.approx(big * (2 - 6 / 8), abs=200)
    assert any(t.startswith("constexpr_lut_to_dense") for t in small.op_histogram)
    assert small.flops == dense.flops


# ---------------------------------------------------------------- the roofline itself


def test_op_classes() -> None:
    assert op_class("conv") == op_class("conv_transpose") == "conv"
    assert op_class("linear") == op_class("matmul") == op_class("einsum") == "matmul"
    assert op_class("scaled_dot_product_attention") == "attention"
    assert op_class("reshape") == op_class("transpose") == op_class("concat") == "memory"
    assert op_class("layer_norm") == op_class("softmax") == op_class("add") == "elementwise"


def test_roofline_formula() -> None:
    est = Estimator(peak_tflops=10.0, bandwidth_gbs=100.0, per_op_overhead_us=10.0,
                    efficiency={"conv": 0.5})  # fmt: skip
    compute = MilOp("conv", "a", "conv", flops=10**10, bytes=10**6, weight_bytes=0)
    memory = MilOp("transpose", "b", "memory", flops=0, bytes=10**8, weight_bytes=0)
    s = MilSummary({"conv": 1, "transpose": 1}, weight_bytes=0, ops=[compute, memory])
    r = roofline(s, est)
    # conv: 1e10 / (10e12 * 0.5) = 2 ms; transpose: 1e8 / 100e9 = 1 ms; + 2 x 10 us
    assert r.latency_ms == pytest.approx(2.0 + 1.0 + 0.02)
    assert r.by_class_ms["conv"] == pytest.approx(2.01)
    assert r.by_class_ms["memory"] == pytest.approx(1.01)
    assert (r.compute_bound_ops, r.memory_bound_ops, r.n_ops) == (1, 1, 2)
    # a class missing from the YAML falls back to the documented default (matmul 0.45)
    mm = MilSummary({}, 0, [MilOp("linear", "c", "matmul", 45 * 10**8, 0, 0)])
    assert roofline(mm, replace(est, per_op_overhead_us=0)).latency_ms == pytest.approx(1.0)


# ---------------------------------------------------------------- the iPhone path, with fakes


@dataclass
class _Stats:
    median: float


@dataclass
class _Measurement:
    samples: list[float]

    @property
    def statistics(self) -> _Stats | None:
        return _Stats(sorted(self.samples)[len(self.samples) // 2]) if self.samples else None


class MLNeuralEngineComputeDevice:  # named like coremltools' classes: matched by class name
    pass


class MLCPUComputeDevice:
    pass


@dataclass
class _Usage:
    preferred_compute_device: Any


@dataclass
class _OpInfo:
    compute_device_usage: _Usage | None
    measurement: _Measurement


class FakeBenchmarker:
    """Stands in for ``perf_utils.MLModelBenchmarker`` (same async methods and results)."""

    def __init__(self, predict_ms: list[float]) -> None:
        self.predict_ms = predict_ms
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def benchmark_load(self, iterations: int = 1) -> _Measurement:
        self.calls.append(("load", {"iterations": iterations}))
        return _Measurement([123.0])

    async def benchmark_predict(self, inputs: Any = None, iterations: int = 1,
                                warmup: bool = False) -> _Measurement:  # fmt: skip
        self.calls.append(("predict", {"iterations": iterations, "warmup": warmup}))
        return _Measurement(self.predict_ms)

    async def benchmark_operation_execution(self, inputs: Any = None, iterations: int = 1,
                                            warmup: bool = False) -> list[_OpInfo]:  # fmt: skip
        self.calls.append(("ops", {"iterations": iterations}))
        ane, cpu = MLNeuralEngineComputeDevice(), MLCPUComputeDevice()
        return [
            _OpInfo(_Usage(ane), _Measurement([6.0])),
            _OpInfo(_Usage(ane), _Measurement([3.2])),
            _OpInfo(_Usage(cpu), _Measurement([0.8])),
            _OpInfo(None, _Measurement([])),  # an op the plan does not place: ignored
        ]


def test_parse_operation_execution_shares() -> None:
    infos = [
        _OpInfo(_Usage(MLNeuralEngineComputeDevice()), _Measurement([9.0])),
        _OpInfo(_Usage(MLCPUComputeDevice()), _Measurement([1.0])),
    ]
    assert parse_operation_execution(infos) == pytest.approx({"ANE": 0.9, "CPU": 0.1})
    # without Core ML's cost estimates the ops are counted
    no_cost = [_OpInfo(i.compute_device_usage, _Measurement([])) for i in infos]
    assert parse_operation_execution(no_cost) == pytest.approx({"ANE": 0.5, "CPU": 0.5})
    assert parse_operation_execution([]) == {}


def test_measure_remote_parses_a_fake_benchmarker() -> None:
    bench = FakeBenchmarker([10.0, 11.0, 12.0, 13.0, 30.0])
    r = measure_remote(bench, {"x": None}, FAST)
    assert r.predict_ms == [10.0, 11.0, 12.0, 13.0, 30.0]
    assert r.load_ms == 123.0
    assert r.unit_share == pytest.approx({"ANE": 0.92, "CPU": 0.08})
    assert r.compute_unit == "ANE 92%"
    assert [c[0] for c in bench.calls] == ["load", "predict", "ops"]
    assert bench.calls[1][1] == {"iterations": FAST.max_repeats, "warmup": True}


def test_profiler_iphone_path_with_injected_device(tiny_space: Any, iphone: Device) -> None:
    row = next(r for r in rows_for_space(tiny_space, "fp16") if r.op == "conv1d")
    made: list[tuple[Path, str, object]] = []

    def factory(path: Path, device: Device, remote: object) -> FakeBenchmarker:
        assert path.name == "row.mlpackage" and path.is_dir()  # the real converted package
        made.append((path, device.name, remote))
        return FakeBenchmarker([2.0, 2.1, 2.2, 2.3, 2.4])

    phone = object()
    prof = CoreMLProfiler(system="Darwin", remote_device=phone, benchmarker_factory=factory)
    t = prof.measure(row, _build(row), iphone, FAST)
    assert t.source == "measured" and t.repeats == 5
    assert t.latency_ms_p50 == pytest.approx(2.2)
    assert t.compute_unit == "ANE 92%"
    assert made[0][1:] == ("iphone16pm", phone)
    assert "MLModelBenchmarker on iphone16pm" in t.reason


def test_profiler_without_an_iphone_estimates_and_says_why(tiny_space: Any, iphone: Device) -> None:
    row = next(r for r in rows_for_space(tiny_space, "fp16") if r.op == "conv1d")

    def no_phone() -> object:
        raise RuntimeError("no iPhone is connected")

    prof = CoreMLProfiler(system="Darwin", connect=no_phone)
    t = prof.measure(row, _build(row), iphone, FAST)
    assert t.source == "estimated"
    assert "no iPhone measured it (RuntimeError: no iPhone is connected)" in t.reason


def test_measure_paths() -> None:
    mac, phone = _device("mac"), _device("iphone16pm")
    assert measure_path(phone, "Linux")[0] == measure_path(mac, "Linux")[0] == "estimate"
    assert measure_path(mac, "Darwin")[0] == "local"
    assert measure_path(phone, "Darwin")[0] == "remote"


# ---------------------------------------------------------------- macOS only


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts only on macOS")
def test_mac_measures_with_mlmodel_predict(tiny_space: Any) -> None:
    row = next(r for r in rows_for_space(tiny_space, "fp16") if r.op == "conv1d")
    t = CoreMLProfiler().measure(row, _build(row), _device("mac"), FAST)
    assert t.source == "measured" and t.repeats >= FAST.min_repeats
    assert t.latency_ms_p50 is not None and t.latency_ms_p50 > 0
