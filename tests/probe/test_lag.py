"""The event-loop lag monitor: the arithmetic on known late spans, and a real blocked loop measured."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.probe.lag import HOPS, LagMonitor


def spans(*late: tuple[float, float]) -> LagMonitor:
    """A monitor whose wake-ups were due / came at these times (seconds)."""
    lag = LagMonitor()
    for due, woke in late:
        lag._record(due, woke)
    return lag


def test_behind_counts_only_the_overlap_with_the_window():
    lag = spans((1.0, 1.3), (1.305, 1.306), (2.0, 2.5))
    assert lag.behind_ms(0.0, 10.0) == pytest.approx(801.0)
    assert lag.behind_ms(1.1, 1.2) == pytest.approx(100.0)  # inside one span
    assert lag.behind_ms(1.2, 2.1) == pytest.approx(100.0 + 1.0 + 100.0)  # two partial edges, one whole
    assert lag.behind_ms(1.31, 1.99) == 0.0 and lag.behind_ms(3.0, 4.0) == 0.0 and lag.behind_ms(2.0, 2.0) == 0.0


def test_max_and_worst_stretch():
    lag = spans((1.0, 1.3), (2.0, 2.05), (2.1, 2.15), (2.2, 2.25))
    assert lag.max_ms(0.0, 10.0) == pytest.approx(300.0)
    assert lag.max_ms(1.5, 10.0) == pytest.approx(50.0)
    assert lag.worst_ms(0.0, 10.0, 0.5) == pytest.approx(300.0)  # the one long stall beats the three short
    assert lag.worst_ms(1.5, 10.0, 0.5) == pytest.approx(150.0)


def test_lost_is_capped_by_hops_times_the_worst_lag():
    """A loop always 20 ms late costs an attempt a few hops of 20 ms, not its whole timeout."""
    always_late = spans(*((t / 100, t / 100 + 0.02) for t in range(0, 500, 3)))
    assert always_late.behind_ms(0.0, 5.0) > 3000.0
    assert always_late.lost_ms(0.0, 5.0, 1.0) == pytest.approx(HOPS * 20.0)
    blocked = spans((0.0, 0.3), (0.305, 0.605), (0.61, 0.91))
    assert blocked.lost_ms(0.0, 1.0, 0.5) == pytest.approx(495.0, abs=1.0)  # all of the timeout, nearly
    assert spans().lost_ms(0.0, 1.0, 0.5) == 0.0


def test_summary_percentiles():
    lag = spans(*((i, i + (0.3 if i == 50 else 0.001)) for i in range(100)))
    s = lag.summary()
    assert (s.samples, s.p50_ms, s.max_ms) == (100, pytest.approx(1.0), pytest.approx(300.0))
    assert s.behind_ms == pytest.approx(399.0) and s.to_dict()["max"] == 300.0


def test_a_blocked_loop_is_measured_within_tolerance():
    """A task that blocks the loop for 200 ms: the monitor sees one late wake-up of ~200 ms, and the
    window around it shows it; an idle stretch shows next to nothing."""

    async def main() -> tuple[LagMonitor, float, float, float]:
        async with LagMonitor() as lag:
            await asyncio.sleep(0.05)
            idle_end = time.perf_counter()
            time.sleep(0.2)  # the loop is blocked: nothing else runs
            blocked_end = time.perf_counter()
            await asyncio.sleep(0.05)
        return lag, idle_end, blocked_end, time.perf_counter()

    lag, idle_end, blocked_end, end = asyncio.run(main())
    s = lag.summary()
    assert 190.0 <= s.max_ms <= 260.0, s
    assert 185.0 <= lag.behind_ms(idle_end, blocked_end + 0.01) <= 260.0
    assert lag.max_ms(blocked_end + 0.03, end) < 50.0
    assert s.samples >= 10  # it kept sampling around the stall


def test_a_stall_still_in_progress_when_the_round_ends_is_counted():
    async def main() -> LagMonitor:
        lag = LagMonitor()
        lag.start()
        await asyncio.sleep(0.02)
        time.sleep(0.15)  # blocked right up to the end of the round
        await lag.stop()
        return lag

    s = asyncio.run(main()).summary()
    assert 140.0 <= s.max_ms <= 220.0, s
