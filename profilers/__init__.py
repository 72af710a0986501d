"""Measurement backends (ONNX Runtime, PyTorch, Core ML) and device descriptions.

Profilers write latency/memory tables that ``nas`` reads. Heavy backends (onnxruntime,
coremltools) are imported only when a device that needs them is profiled.
"""

from profilers._base import Profiler, TimingProtocol, percentiles, time_repeats
from profilers._devices import Device, Estimator, get_device, list_devices, load_device
from profilers._import import import_rows
from profilers._runner import PROFILERS, ProfileReport, analytic_costs, get_profiler, profile_space

__all__ = [
    "PROFILERS",
    "Device",
    "Estimator",
    "ProfileReport",
    "Profiler",
    "TimingProtocol",
    "analytic_costs",
    "get_device",
    "get_profiler",
    "import_rows",
    "list_devices",
    "load_device",
    "percentiles",
    "profile_space",
    "time_repeats",
]
