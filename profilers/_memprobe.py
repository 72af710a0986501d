"""Peak memory of one block, measured in a fresh process.

In-process RSS deltas are useless for a block's memory (allocator caches, earlier peaks), so a
profiler writes the block to disk and starts this script in a new interpreter. The probe imports
its runtime, loads the inputs and runs a trivial warm-up (so the runtime's one-off start-up,
about 8 MiB for ONNX Runtime, is not charged to the block), then takes the **baseline**, loads
the block (an ONNX Runtime session, or a pickled PyTorch module), runs it once and reads the
**peak**. It prints one JSON line on stdout; ``peak - baseline`` is what the block's weights,
session state, activations and outputs add (the inputs are excluded: the previous block
produced them).

Methods (``method`` in the JSON, and in the profilers' ``versions()``):

- ``vmhwm``: Linux. Write ``5`` to ``/proc/self/clear_refs`` to reset the high-water mark to
  the current RSS, read ``VmHWM`` from ``/proc/self/status`` as the baseline, and again after
  the run.
- ``ru_maxrss``: elsewhere (macOS). The high-water mark cannot be reset, so the baseline is the
  process's peak so far; the result is how far the run raised it.

Usage (the profilers run it by path, which skips the ``profilers`` package's imports)::

    python profilers/_memprobe.py onnx MODEL.onnx FEEDS.npz --threads 1
    python profilers/_memprobe.py torch MODULE.pt INPUTS.pt --threads 1 --preimport diffusers.x
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.path and sys.path[0]:
    # Run by path, Python puts this folder first on sys.path: keep its modules from shadowing
    # top-level names.
    try:
        if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
            sys.path.pop(0)
    except OSError:
        pass

__all__ = ["memory_method", "read_peak_kib", "reset_peak"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def memory_method() -> str:
    """``vmhwm`` where the high-water mark can be reset (Linux), else ``ru_maxrss``."""
    if os.path.exists(_CLEAR_REFS) and os.path.exists(_STATUS):
        try:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")
            return "vmhwm"
        except OSError:
            pass
    return "ru_maxrss"


def reset_peak(method: str) -> None:
    if method == "vmhwm":
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")


def read_peak_kib(method: str) -> float:
    """The process's peak resident set so far, KiB."""
    if method == "vmhwm":
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
        raise RuntimeError(f"no VmHWM in {_STATUS}")
    import resource

    rss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss / 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB on Linux


def _relu_model() -> bytes:
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("a", "b")]
    graph = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "warm", io[:1], io[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _probe_onnx(model: str, feeds_path: str, threads: int, method: str) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    def session(m: str | bytes) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        return ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"])

    with np.load(feeds_path) as z:
        feeds = {k: np.ascontiguousarray(z[k]) for k in z.files}
    # The runtime's one-off start-up (thread pool, allocator, code pages: about 8 MiB) is not
    # the block's: pay it with a trivial session before the baseline.
    session(_relu_model()).run(None, {"a": np.ones(4, np.float32)})
    reset_peak(method)
    base = read_peak_kib(method)
    sess = session(model)
    after_load = read_peak_kib(method)
    names = {i.name for i in sess.get_inputs()}
    sess.run(None, {k: v for k, v in feeds.items() if k in names})
    peak = read_peak_kib(method)
    return {"baseline_kib": base, "after_load_kib": after_load, "peak_kib": peak}


def _probe_torch(
    module_path: str, inputs_path: str, threads: int, method: str, preimport: list[str]
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    for name in preimport:  # the pickle's classes: import them before the baseline
        importlib.import_module(name)
    inputs = torch.load(inputs_path, weights_only=True)
    with torch.no_grad():  # the runtime's one-off start-up is not the block's
        x = torch.ones(1, 8, 4, 4)
        y = torch.nn.functional.conv2d(x, torch.ones(8, 8, 3, 3), padding=1)
        y = torch.nn.functional.group_norm(y, 2).flatten(2).transpose(1, 2)
        torch.nn.functional.scaled_dot_product_attention(y, y, y).softmax(-1)
    reset_peak(method)
    base = read_peak_kib(method)
    # our own temporary file, written by the profiler: a full pickle is expected
    module = torch.load(module_path, weights_only=False)
    module.eval()
    after_load = read_peak_kib(method)
    with torch.no_grad():
        module(*inputs)
    peak = read_peak_kib(method)
    return {"baseline_kib": base, "after_load_kib": after_load, "peak_kib": peak}


def _exit_with_parent() -> None:
    """A probe whose parent died (a kill -9 of `nas profile`) stops at once instead of running
    on as an orphan. The parent names itself: a probe that starts after its parent died sees
    the new parent as its own."""
    from nas.procs import exit_with_parent

    exit_with_parent(int(os.environ.get("NAS_PROBE_PARENT", os.getppid())))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("mode", choices=["onnx", "torch"])
    ap.add_argument("model", help="the .onnx file, or the torch.save'd module")
    ap.add_argument("inputs", help="feeds .npz (onnx) or torch.save'd input tuple (torch)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preimport", action="append", default=[])
    args = ap.parse_args(argv)
    _exit_with_parent()
    method = memory_method()
    if args.mode == "onnx":
        out = _probe_onnx(args.model, args.inputs, args.threads, method)
    else:
        out = _probe_torch(args.model, args.inputs, args.threads, method, args.preimport)
    out["method"] = method
    out["peak_mb"] = (out["peak_kib"] - out["baseline_kib"]) / 1024
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


def run_probe(args: list[str], timeout: float = 900.0) -> dict[str, Any]:
    """Run this script in a fresh interpreter with ``args``; its JSON result.

    Raises ``RuntimeError`` with the tail of its stderr when it fails.
    """
    import subprocess

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["NAS_PROBE_PARENT"] = str(os.getpid())
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"memory probe timed out after {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])[-300:]
        if proc.returncode < 0 or proc.returncode == 137:
            tail = f"killed (signal {-proc.returncode if proc.returncode < 0 else 9}), " + tail
        raise RuntimeError(f"memory probe failed (exit {proc.returncode}): {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    sys.exit(main())
