"""Spreading a round's connection starts over event-loop passes instead of opening them all in one burst.

Started in one pass, a thousand connects cost the loop a few hundred milliseconds of CPU during which
no reply is read: every attempt's ttfb then carries that wait, and the replies are read in lockstep.
A few starts per pass let the replies that arrived be read, and stamped, between the starts; the
round costs the same CPU. Pacing by passes rather than by a clock adapts to the machine: a starved
prober starts fewer connections per second instead of queueing more.
"""

from __future__ import annotations

import asyncio
import collections

# Measured: scripts/bench_scheduling.py (README "Scheduling").
STARTS_PER_PASS = 8


class StartPacer:
    """Lets at most `per_pass` callers through per event-loop pass; the rest wait their turn, in order."""

    def __init__(self, per_pass: int = STARTS_PER_PASS) -> None:
        self.per_pass = per_pass
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._released = 0
        self._ticking: asyncio.AbstractEventLoop | None = None

    async def turn(self) -> None:
        """Wait for this caller's turn to start a connection."""
        if self.per_pass <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._ticking is not loop:  # first caller of this pass (or of this loop: a new round)
            self._ticking, self._released = loop, 0
            self._waiting.clear()
            loop.call_soon(self._next_pass)
        if not self._waiting and self._released < self.per_pass:
            self._released += 1
            return
        waiter = loop.create_future()
        self._waiting.append(waiter)
        await waiter

    def _next_pass(self) -> None:
        """Once per loop pass while anyone waits: release the next `per_pass` waiters."""
        self._released = 0
        while self._waiting and self._released < self.per_pass:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled waiter gives its turn away
                waiter.set_result(None)
                self._released += 1
        if self._ticking is not None:
            if self._waiting or self._released:
                self._ticking.call_soon(self._next_pass)
            else:
                self._ticking = None
