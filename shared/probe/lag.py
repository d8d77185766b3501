"""The event loop's own lag during a round: how late the prober itself was.

A probe that times out while the loop was busy elsewhere (too many targets, a starved CPU) may say
nothing about the upstream. A small task sleeps `interval` over and over and records how late each
wake-up came: between when it was due and when it woke, the loop was behind, and so was every timer
and socket read of the round. Those late spans are disjoint and in time order, so "how long was the
loop behind during [t0, t1]" is two bisections and a prefix sum.

Times are `time.perf_counter()` seconds (the clock the probe's phase marks use).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from dataclasses import dataclass

# 5 ms: a stall is seen to within 5 ms, and the monitor's own cost (one wake-up per 5 ms) stays
# far below 1% of a core.
DEFAULT_INTERVAL_S = 0.005
# The loop wake-ups one probe attempt waits for on its critical path: connect, send, headers, body.
HOPS = 4


@dataclass(frozen=True)
class LagSummary:
    """The round's lag in ms: percentiles of the wake-ups' lateness, and the time the loop was behind."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    behind_ms: float  # total time the loop was late, over the whole round

    def to_dict(self) -> dict[str, float | int]:
        return {
            "samples": self.samples,
            "p50": round(self.p50_ms, 1),
            "p99": round(self.p99_ms, 1),
            "max": round(self.max_ms, 1),
            "behind": round(self.behind_ms, 1),
        }


class LagMonitor:
    """Runs beside a round (`async with LagMonitor() as lag:`) and answers questions about it afterwards."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._due: list[float] = []  # when each wake-up was due ...
        self._woke: list[float] = []  # ... and when it came (woke >= due)
        self._late: list[float] = []  # woke - due
        self._behind: list[float] = [0.0]  # prefix sums of _late
        self._task: asyncio.Task[None] | None = None
        self._pending_due: float | None = None

    async def __aenter__(self) -> LagMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vpcprobe-lag-monitor")

    async def stop(self) -> None:
        """Stop sampling; a wake-up overdue right now (the loop is late at this moment) counts too."""
        if self._task is None:
            return
        due, self._pending_due = self._pending_due, None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        now = time.perf_counter()
        if due is not None and now > due:
            self._record(due, now)

    async def _run(self) -> None:
        while True:
            due = time.perf_counter() + self.interval_s
            self._pending_due = due
            await asyncio.sleep(self.interval_s)
            self._pending_due = None
            self._record(due, time.perf_counter())

    def _record(self, due: float, woke: float) -> None:
        if self._woke and due < self._woke[-1]:
            due = self._woke[-1]  # keep the spans disjoint (the final, overdue one may overlap)
        self._due.append(due)
        self._woke.append(woke)
        self._late.append(max(woke - due, 0.0))
        self._behind.append(self._behind[-1] + self._late[-1])

    def behind_ms(self, t0: float, t1: float) -> float:
        """How long, within [t0, t1], the loop was late (the overlap of [t0, t1] with the late spans)."""
        if t1 <= t0 or not self._woke:
            return 0.0
        # Spans wholly inside, then the partial spans at either edge.
        first = bisect.bisect_right(self._woke, t0)  # first span ending after t0
        last = bisect.bisect_left(self._due, t1)  # spans [first, last) start before t1
        if last <= first:
            return 0.0
        total = self._behind[last] - self._behind[first]
        total -= max(0.0, t0 - self._due[first])  # the first span's part before t0
        total -= max(0.0, self._woke[last - 1] - t1)  # the last span's part after t1
        return max(total, 0.0) * 1000

    def max_ms(self, t0: float, t1: float) -> float:
        """The latest any wake-up came among the late spans overlapping [t0, t1]."""
        first = bisect.bisect_right(self._woke, t0)
        last = bisect.bisect_left(self._due, t1)
        return max(self._late[first:last], default=0.0) * 1000

    def worst_ms(self, t0: float, t1: float, width_s: float) -> float:
        """The most the loop was late within any `width_s`-long stretch of [t0, t1]."""
        if t1 - t0 <= width_s:
            return self.behind_ms(t0, t1)
        first = bisect.bisect_right(self._woke, t0)
        last = bisect.bisect_left(self._due, t1)
        # The overlap is largest for a stretch that starts where a late span starts (or at t0).
        starts = [t0] + [d for d in self._due[first:last] if t0 < d <= t1 - width_s]
        return max(self.behind_ms(s, s + width_s) for s in starts)

    def lost_ms(self, t0: float, t1: float, timeout_s: float) -> float:
        """What one attempt with `timeout_s`, anywhere in [t0, t1], may have lost to the loop's lag.

        An attempt waits for the loop at each of its few steps (connect, send, headers, body), each by
        the lag at that moment: at most HOPS x the worst lag, and never more than the time the loop was
        behind within one timeout. A loop that is always 20 ms late costs an attempt ~80 ms, not its
        whole timeout; a loop blocked 300 ms at a time costs it all.
        """
        by_hops = HOPS * self.max_ms(t0, t1)
        if by_hops == 0.0:
            return 0.0
        return min(by_hops, self.worst_ms(t0, t1, timeout_s))

    def summary(self) -> LagSummary:
        """The round's lag: percentiles over every wake-up, and how long the loop was behind in all."""
        lags = sorted(late * 1000 for late in self._late)
        if not lags:
            return LagSummary(0, 0.0, 0.0, 0.0, 0.0)

        def pct(q: float) -> float:
            return lags[min(len(lags) - 1, int(q * len(lags)))]

        return LagSummary(len(lags), pct(0.5), pct(0.99), lags[-1], self._behind[-1] * 1000)
