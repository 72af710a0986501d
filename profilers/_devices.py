"""Device descriptions: ``profilers/devices/*.yaml`` parsed into frozen dataclasses."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError
from profilers._estimator import AttentionModel, NeuralEngineRules

__all__ = ["Device", "Estimator", "get_device", "list_devices", "load_device"]

BACKENDS = ("coreml", "onnxruntime", "torch")


@dataclass(frozen=True)
class Estimator:
    """Roofline constants for estimating Core ML rows when no Apple device is reachable, and
    the execution model they apply to (profilers/_estimator.py's docstring)."""

    peak_tflops: float
    bandwidth_gbs: float
    per_op_overhead_us: float
    efficiency: dict[str, float] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    attention: AttentionModel = field(default_factory=AttentionModel)
    fusion: bool = False  # fuse elementwise ops into their producer (docs/profiling.md)
    bandwidth_efficiency: float = 1.0  # fraction of bandwidth_gbs reached
    neural_engine: NeuralEngineRules = field(default_factory=NeuralEngineRules)
    # latency p10 / p90 as multiples of the estimate (the calibration residuals' quantiles)
    p10_ratio: float = 1.0
    p90_ratio: float = 1.0
    calibration: str = ""  # where the fitted constants and the band come from


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    backend: str  # coreml | onnxruntime | torch
    precision: str  # fp16 | fp32
    compute_units: str  # coreml: ALL/CPU_AND_NE/...; torch: cpu/cuda; ort: CPU
    memory_budget_mb: float
    threads: int = 1
    target: str = ""  # Core ML deployment target, e.g. iOS18
    estimator: Estimator | None = None
    path: str = ""

    def can_measure_here(self) -> tuple[bool, str]:
        """Whether this machine can measure rows for the device, and why not."""
        if self.backend == "onnxruntime":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return False, "onnxruntime is not installed"
            return True, "ONNX Runtime on this CPU"
        if self.backend == "torch":
            if self.compute_units == "cuda":
                import torch

                if not torch.cuda.is_available():
                    return False, "no CUDA device on this machine"
                return True, f"CUDA: {torch.cuda.get_device_name(0)}"
            return True, "PyTorch on this CPU"
        if platform.system() != "Darwin":
            return False, (
                "Core ML runs models only on macOS (an iPhone is measured from a Mac it is "
                "attached to); rows are converted here for real and their latency estimated"
            )
        if self.name.startswith("iphone"):
            return False, "needs an attached iPhone: measured through coremltools' remote_device"
        return True, "Core ML on this Mac"


def _data_dir() -> Path:
    return Path(str(resources.files("profilers") / "devices"))


def list_devices() -> list[str]:
    return sorted(p.stem for p in _data_dir().glob("*.yaml"))


def _require(m: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in m:
        raise NasError(f"{where}: {key}: is required")
    v = m[key]
    if (isinstance(v, bool) and kind is not bool) or not isinstance(v, kind):
        raise NasError(f"{where}: {key}: {v!r} has the wrong type")
    return v


def load_device(path: str | Path) -> Device:
    p = Path(path)
    try:
        m = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise NasError(f"{p}: cannot read device file: {e}") from None
    where = str(p)
    if not isinstance(m, dict):
        raise NasError(f"{where}: expected a mapping")
    allowed = {
        "name",
        "description",
        "backend",
        "precision",
        "compute_units",
        "memory_budget_mb",
        "threads",
        "target",
        "estimator",
    }
    unknown = set(m) - allowed
    if unknown:
        raise NasError(f"{where}: {sorted(unknown)[0]}: unknown key; allowed: {sorted(allowed)}")
    backend = _require(m, "backend", str, where)
    if backend not in BACKENDS:
        raise NasError(f"{where}: backend: {backend!r} is not one of {list(BACKENDS)}")
    precision = _require(m, "precision", str, where)
    if precision not in ("fp16", "fp32"):
        raise NasError(f"{where}: precision: {precision!r} is not one of ['fp16', 'fp32']")
    est = _estimator(m["estimator"], where) if "estimator" in m else None
    return Device(
        name=_require(m, "name", str, where),
        description=str(m.get("description", "")),
        backend=backend,
        precision=precision,
        compute_units=str(m.get("compute_units", "")),
        memory_budget_mb=float(_require(m, "memory_budget_mb", (int, float), where)),
        threads=int(m.get("threads", 1)),
        target=str(m.get("target", "")),
        estimator=est,
        path=str(p),
    )


_ESTIMATOR_KEYS = {
    "peak_tflops", "bandwidth_gbs", "per_op_overhead_us", "efficiency", "sources", "attention",
    "fusion", "bandwidth_efficiency", "neural_engine", "uncertainty", "calibration",
}  # fmt: skip


def _estimator(raw: Any, where: str) -> Estimator:
    """The ``estimator:`` section; every mistake a one-line error naming the key."""
    ew = f"{where}: estimator"
    if not isinstance(raw, dict):
        raise NasError(f"{ew}: expected a mapping")
    unknown = set(raw) - _ESTIMATOR_KEYS
    if unknown:
        allowed = sorted(_ESTIMATOR_KEYS)
        raise NasError(f"{ew}: {sorted(unknown)[0]}: unknown key; allowed: {allowed}")
    num = (int, float)
    attn = raw.get("attention") or {}
    ne = raw.get("neural_engine") or {}
    band = raw.get("uncertainty") or {}
    for key, sub in (("attention", attn), ("neural_engine", ne), ("uncertainty", band)):
        if not isinstance(sub, dict):
            raise NasError(f"{ew}: {key}: expected a mapping")
    try:
        model = AttentionModel(str(attn.get("model", "fused")), int(attn.get("chunk", 0)))
        rules = NeuralEngineRules(
            max_dim=int(ne.get("max_dim", 0)),
            unsupported_ops=frozenset(str(o) for o in ne.get("unsupported_ops") or ()),
            fallback_unit=str(ne.get("fallback_unit", "GPU")),
            fallback_tflops=float(ne.get("fallback_tflops", 1.0)),
            fallback_bandwidth_gbs=float(ne.get("fallback_bandwidth_gbs", 0.0)),
        )
    except (TypeError, ValueError) as e:
        raise NasError(f"{ew}: {e}") from None
    p10, p90 = float(band.get("p10", 1.0)), float(band.get("p90", 1.0))
    if not 0 < p10 <= 1.0 <= p90:
        raise NasError(f"{ew}: uncertainty: need 0 < p10 <= 1 <= p90, got {p10:g} and {p90:g}")
    bw_eff = float(raw.get("bandwidth_efficiency", 1.0))
    if not 0 < bw_eff <= 1.0:
        raise NasError(f"{ew}: bandwidth_efficiency: {bw_eff:g} is not in (0, 1]")
    return Estimator(
        peak_tflops=float(_require(raw, "peak_tflops", num, ew)),
        bandwidth_gbs=float(_require(raw, "bandwidth_gbs", num, ew)),
        per_op_overhead_us=float(_require(raw, "per_op_overhead_us", num, ew)),
        efficiency={str(k): float(v) for k, v in (raw.get("efficiency") or {}).items()},
        sources=tuple(str(s) for s in raw.get("sources") or ()),
        attention=model,
        fusion=bool(raw.get("fusion", False)),
        bandwidth_efficiency=bw_eff,
        neural_engine=rules,
        p10_ratio=p10,
        p90_ratio=p90,
        calibration=str(raw.get("calibration", "")),
    )


def get_device(name_or_path: str) -> Device:
    """A bundled device by name (``iphone16pm``) or a device YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return load_device(p)
    f = _data_dir() / f"{name_or_path}.yaml"
    if not f.is_file():
        raise NasError(
            f"unknown device {name_or_path!r}; devices: {', '.join(list_devices())} "
            "(or give a device YAML file)"
        )
    return load_device(f)
