"""Adaptive repeats: a quiet row stops early, a noisy one repeats until its median is known."""

from __future__ import annotations

import itertools

import pytest

from profilers import TimingProtocol, time_repeats


def _run_with(durations_ms: list[float], protocol: TimingProtocol) -> list[float]:
    """time_repeats on a fake clock: the i-th run (warm-ups included) takes durations_ms[i]."""
    now = [0.0]
    cycle = itertools.cycle(durations_ms)

    def clock() -> float:
        return now[0]

    def run() -> None:
        now[0] += next(cycle) / 1e3

    return time_repeats(run, protocol, clock=clock)


def test_a_quiet_row_stops_at_min_repeats() -> None:
    p = TimingProtocol(warmup=1, min_repeats=5, max_repeats=30, band=0.05)
    times = _run_with([100.0, 101.0, 99.0, 100.5, 99.5], p)
    assert len(times) == 5


def test_a_noisy_row_repeats_until_its_median_is_known() -> None:
    noisy = [80.0, 120.0, 95.0, 105.0, 110.0, 90.0]  # p10-p90 band ~ 30 % of the median
    loose = TimingProtocol(
        warmup=0, min_repeats=5, max_repeats=200, max_seconds=1e9, band=0.05, rel_tol=0.05
    )
    times = _run_with(noisy, loose)
    assert 5 < len(times) < 200  # more than the minimum, and it does settle
    assert loose.settled(times) and not loose.settled(times[:-1])
    # a wider target band accepts the same noise at once
    wide = TimingProtocol(warmup=0, min_repeats=5, max_repeats=200, band=0.5)
    assert len(_run_with(noisy, wide)) == 5


def test_caps_bound_the_repeats() -> None:
    noisy = [50.0, 150.0]
    capped = TimingProtocol(warmup=0, min_repeats=3, max_repeats=12, max_seconds=1e9, rel_tol=1e-4)
    assert len(_run_with(noisy, capped)) == 12
    timed = TimingProtocol(warmup=0, min_repeats=3, max_repeats=1000, max_seconds=1.0, rel_tol=1e-4)
    assert len(_run_with(noisy, timed)) == 11  # 100 ms a repeat: over 1 s after the 11th


def test_bad_protocols_are_refused() -> None:
    with pytest.raises(ValueError, match="band"):
        TimingProtocol(band=0.0)
    with pytest.raises(ValueError, match="min_repeats"):
        TimingProtocol(min_repeats=5, max_repeats=3)
