"""The profiler interface: convert -> run -> parse, one table row at a time."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
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
    """How a row is timed: warm-up, then repeats until the figure is trustworthy or a cap.

    After ``min_repeats``, stops as soon as either holds: the p10-p90 band of the repeats is
    within ``band`` of the median (a quiet measurement), or the median is known to within
    ``rel_tol`` (the half-width of its 95 % interval, from the spread of the repeats and their
    number: a noisy row takes more repeats). Caps: ``max_repeats`` and ``max_seconds`` (after
    at least three repeats). A row's p10 / p90 and repeats record the band and the count.
    """

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 30
    max_seconds: float = 30.0
    rel_tol: float = 0.02
    memory: bool = True  # measure peak memory (in a fresh subprocess where the backend can)
    band: float = 0.05  # target p10-p90 width, relative to the median

    def __post_init__(self) -> None:
        if self.min_repeats < 1 or self.max_repeats < self.min_repeats:
            raise ValueError(
                f"repeats: need 1 <= min_repeats <= max_repeats, got {self.min_repeats}, "
                f"{self.max_repeats}"
            )
        if not self.band > 0 or not self.rel_tol > 0:
            raise ValueError(f"band and rel_tol must be > 0, got {self.band}, {self.rel_tol}")

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def settled(self, times: list[float]) -> bool:
        """Whether ``times`` (the repeats so far) meet the band or the median's precision."""
        if len(times) < self.min_repeats:
            return False
        p10, p50, p90 = percentiles(times)
        if p50 <= 0:
            return True
        if p90 - p10 <= self.band * p50:
            return True
        # the median's standard error ~ 1.253 sigma / sqrt(n); sigma from the p10-p90 band of a
        # normal (2 x 1.2816 sigma wide), which outliers beyond it do not inflate
        sigma = (p90 - p10) / 2.563
        return 1.96 * 1.253 * sigma / math.sqrt(len(times)) <= self.rel_tol * p50


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
    start = clock()
    while len(times) < protocol.max_repeats:
        t0 = clock()
        run()
        times.append((clock() - t0) * 1e3)
        if protocol.settled(times):
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
