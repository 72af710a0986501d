"""The profiler interface: convert -> run -> parse, one table row at a time."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from nas.cost import RowSpec, TableRow
from nas.procs import pid_alive
from profilers._blocks import RowModule
from profilers._devices import Device

__all__ = ["Profiler", "TimingProtocol", "measured_row", "now_iso", "time_repeats"]


@dataclass(frozen=True)
class TimingProtocol:
    """How a row is timed: warm-up, then repeats until the median is stable or a time cap.

    Stops after ``min_repeats`` once the median of all repeats moved less than ``rel_tol``
    over the last three repeats, or at ``max_repeats`` or ``max_seconds``, whichever is first.
    """

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 30
    max_seconds: float = 30.0
    rel_tol: float = 0.02
    memory: bool = True  # measure peak memory (in a fresh subprocess where the backend can)

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Profiler(Protocol):
    """A measurement backend. ``measure`` raises on failure; the runner records the reason."""

    name: str

    def versions(self) -> dict[str, str]:
        """Tool versions that go into the table's meta.json."""
        ...

    def measure(
        self, row: RowSpec, built: RowModule, device: Device, protocol: TimingProtocol
    ) -> TableRow:
        """Convert ``built`` for the device, run it per ``protocol`` and return the row."""
        ...


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def time_repeats(
    run: Callable[[], object],
    protocol: TimingProtocol,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Wall-clock milliseconds of ``run()`` per repeat, after warm-up, per ``protocol``.

    ``run`` must block until the work is done (synchronise a GPU inside it).
    """
    for _ in range(protocol.warmup):
        run()
    times: list[float] = []
    medians: list[float] = []
    start = clock()
    while len(times) < protocol.max_repeats:
        t0 = clock()
        run()
        times.append((clock() - t0) * 1e3)
        medians.append(statistics.median(times))
        if len(times) >= protocol.min_repeats:
            recent = medians[-3:]
            if max(recent) - min(recent) <= protocol.rel_tol * recent[-1]:
                break
        if clock() - start > protocol.max_seconds and len(times) >= 3:
            break
    return times


def percentiles(times_ms: list[float]) -> tuple[float, float, float]:
    """p10, p50, p90 (linear interpolation between order statistics)."""
    xs = sorted(times_ms)

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return q(0.1), q(0.5), q(0.9)


def measured_row(
    row: RowSpec,
    times_ms: list[float],
    *,
    compute_unit: str,
    peak_mem_mb: float | None = None,
    weight_bytes: int | None = None,
    flops: int | None = None,
    reason: str = "",
) -> TableRow:
    """A ``measured`` row from timed repeats: p10/p50/p90, the repeat count and a timestamp."""
    p10, p50, p90 = percentiles(times_ms)
    return TableRow(
        row,
        "measured",
        latency_ms_p10=p10,
        latency_ms_p50=p50,
        latency_ms_p90=p90,
        repeats=len(times_ms),
        peak_mem_mb=peak_mem_mb,
        weight_bytes=weight_bytes,
        flops=flops,
        compute_unit=compute_unit,
        reason=reason,
        measured_at=now_iso(),
    )


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder ``<tmp>/<prefix><pid>-*`` removed on exit. A process killed with
    -9 cannot remove its own: every new one first removes those whose process is gone."""
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{prefix}*-*"):
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    d = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
