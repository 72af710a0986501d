"""PyTorch eager profiler: a row's module on this CPU or on the local CUDA GPU.

- CPU (``compute_units: cpu``): ``torch.set_num_threads(device.threads)`` for the measurement
  (restored afterwards), wall-clock repeats per the timing protocol. Peak memory (when the
  protocol asks) comes from a fresh subprocess (``profilers._memprobe``, torch mode) that loads
  the pickled module, runs it once and reports the rise of its resident-set high-water mark
  over a baseline taken after the inputs were loaded: weights + activations + outputs.
- CUDA (``compute_units: cuda``): a copy of the module and the inputs on the GPU, cast to fp16
  where the device's precision is fp16; CUDA events time each repeat (each repeat synchronises).
  Peak memory is ``torch.cuda.max_memory_allocated`` over the run, minus what was allocated
  before the module was moved to the GPU (the inputs were already there): weights +
  activations + outputs, the same quantity as on CPU.

Everything runs under ``torch.no_grad()`` with the module in ``eval()`` mode.
"""

from __future__ import annotations

import copy
import os
import platform
import sys
from typing import Any

import torch
from torch import nn

from nas.cost import RowSpec, TableRow
from profilers._base import TimingProtocol, measured_row, scratch_dir, time_repeats
from profilers._blocks import RowModule
from profilers._devices import Device
from profilers._memprobe import memory_method, run_probe

__all__ = ["TorchProfiler", "cpu_name", "flat_outputs"]

_MIB = 2**20


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS, else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def flat_outputs(out: Any) -> list[torch.Tensor]:
    """The tensors of a module's output (a tensor, or nested tuples/lists/dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flat_outputs(o)]
    return []


def _cast(t: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return t.to(device, dtype) if t.is_floating_point() else t.to(device)


def _weight_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


class TorchProfiler:
    """Eager PyTorch on CPU or CUDA (see the module docstring for what is measured)."""

    name = "torch"

    def __init__(self, *, memprobe_timeout: float = 900.0) -> None:
        self.memprobe_timeout = memprobe_timeout

    def versions(self) -> dict[str, str]:
        v = {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": cpu_name(),
            "cpu_count": str(os.cpu_count()),
            "threads": "torch.set_num_threads(device.threads) on CPU",
            "memory_method_cpu": f"subprocess {memory_method()}",
            "memory_method_cuda": "torch.cuda.max_memory_allocated",
        }
        if torch.cuda.is_available():
            v["cuda"] = str(torch.version.cuda)
            v["gpu"] = torch.cuda.get_device_name(0)
        return v

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        dtype = torch.float16 if device.precision == "fp16" else torch.float32
        if device.compute_units == "cuda":
            return self._measure_cuda(row, built, dtype, protocol)
        if device.compute_units not in ("", "cpu"):
            raise ValueError(f"torch profiler: unknown compute_units {device.compute_units!r}")
        return self._measure_cpu(row, built, device, dtype, protocol)

    def _measure_cpu(
        self,
        row: RowSpec,
        built: RowModule,
        device: Device,
        dtype: torch.dtype,
        protocol: TimingProtocol,
    ) -> TableRow:
        cpu = torch.device("cpu")
        module = built.module
        if dtype != torch.float32:  # leave the caller's module as it is
            module = copy.deepcopy(module).to(dtype)
        module.eval()
        inputs = tuple(_cast(t, cpu, dtype) for t in built.inputs)
        old_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, device.threads))
        try:
            with torch.no_grad():
                times = time_repeats(lambda: module(*inputs), protocol)
        finally:
            torch.set_num_threads(old_threads)
        peak = self._cpu_memory(module, inputs, device.threads) if protocol.memory else None
        return measured_row(
            row, times, compute_unit="CPU", peak_mem_mb=peak, weight_bytes=_weight_bytes(module)
        )

    def _cpu_memory(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int
    ) -> float:
        """Peak memory of loading and running ``module`` once, in a fresh process, MiB."""
        pre = sorted({type(m).__module__ for m in module.modules()} - {"builtins", "__main__"})
        with scratch_dir("nas-torchmem-") as d:
            mpath, ipath = d / "module.pt", d / "inputs.pt"
            try:
                torch.save(module, mpath)
            except Exception as e:
                raise RuntimeError(
                    f"memory probe: cannot pickle the module ({type(e).__name__}: {e}); "
                    "measure without memory"
                ) from None
            torch.save(inputs, ipath)
            args = ["torch", str(mpath), str(ipath), "--threads", str(max(1, threads))]
            for name in pre:
                args += ["--preimport", name]
            res = run_probe(args, self.memprobe_timeout)
        return float(res["peak_mb"])

    def _measure_cuda(
        self, row: RowSpec, built: RowModule, dtype: torch.dtype, protocol: TimingProtocol
    ) -> TableRow:
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device on this machine")
        dev = torch.device("cuda")
        gpu = torch.cuda.get_device_name(dev)
        try:
            times, peak, weight_bytes = _run_cuda(built, dev, dtype, protocol)
        except torch.cuda.OutOfMemoryError as e:
            first = _one_line(str(e).split(". ")[0])
            raise RuntimeError(f"CUDA out of memory on {gpu}: {first}") from None
        finally:
            torch.cuda.empty_cache()
        return measured_row(
            row,
            times,
            compute_unit=f"cuda:{gpu}",
            peak_mem_mb=peak if protocol.memory else None,
            weight_bytes=weight_bytes,
        )


def _one_line(text: str, limit: int = 200) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _run_cuda(
    built: RowModule, dev: torch.device, dtype: torch.dtype, protocol: TimingProtocol
) -> tuple[list[float], float, int]:
    """CUDA-event times (ms), peak MiB (weights + activations + outputs) and weight bytes."""
    inputs = tuple(_cast(t, dev, dtype) for t in built.inputs)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    module = copy.deepcopy(built.module).to(dev, dtype).eval()  # the caller's stays on the CPU
    gpu_ms: list[float] = []

    def run() -> None:
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        module(*inputs)
        end.record()
        end.synchronize()
        gpu_ms.append(start.elapsed_time(end))

    with torch.no_grad():
        module(*inputs)  # the memory run (and a first warm-up)
        torch.cuda.synchronize(dev)
        peak = (torch.cuda.max_memory_allocated(dev) - base) / _MIB
        times = time_repeats(run, protocol)
    return gpu_ms[-len(times) :], peak, _weight_bytes(module)
