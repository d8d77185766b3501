"""A target's last 24 h summarized into at most SLOTS time slots: the status page's sparkline, and what
GET /status.json sends unless full resolution is asked for. One function for both, so they cannot differ.

Up to SLOTS rounds, each round is its own slot. More are bucketed by time (24 h / 120 = 12 min a slot
at most): a slot shows its slowest latency and its worst status, so one slow or failed round is never
averaged away. A down round's total is how long failing took, not latency: it marks the slot, never
the line.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.history.columns import Series
from shared.history.objects import DAY, LETTER_STATUS, STATUS_LETTER
from shared.verdict.status import Status

SLOTS = 120
SLOT_FIELDS = ("at", "total_ms", "status")  # the columns of a JSON slot row
# a slot's status is its worst round's, by letter: down, degraded, unknown, then up
_WORST_FIRST = tuple(STATUS_LETTER[s] for s in (Status.DOWN, Status.DEGRADED, Status.UNKNOWN, Status.UP))
_DOWN, _UP = STATUS_LETTER[Status.DOWN], STATUS_LETTER[Status.UP]


class Slot(NamedTuple):
    at: float  # epoch seconds: the round's time, or the middle of a bucket
    total_ms: float | None  # the slowest total of the slot's rounds that were not down; None: none such
    status: Status  # the worst status among the slot's rounds


@dataclass(frozen=True)
class Slots:
    """The last 24 h (or since the first round, when younger) as slots, oldest first."""

    start: float  # epoch seconds of the left edge
    end: float  # ... and of the right edge (when the view was read)
    slot_s: float | None  # a bucket's width; None when every round is its own slot
    gap_s: float  # slots further apart than this have missing rounds between them: the line breaks there
    slots: tuple[Slot, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: slots as rows in SLOT_FIELDS order, the status as its text."""
        return {
            "start": self.start,
            "end": self.end,
            "slot_s": self.slot_s,
            "gap_s": self.gap_s,
            "slots": [[s.at, s.total_ms, s.status.value] for s in self.slots],
        }


def day_slots(points: Series, now: float) -> Slots | None:
    """The slots of the rounds of the last 24 h before `now`; None when there is none."""
    first = bisect.bisect_left(points.at, now - DAY)
    recent = points[first:] if first else points
    if not len(recent):
        return None
    start = min(max(now - DAY, recent.at[0]), now - 1.0)
    span = now - start
    if len(recent) <= SLOTS:
        slots = tuple(Slot(at, _line_value(letter, total), LETTER_STATUS[letter])
                      for at, letter, total in zip(recent.at, recent.status, recent.total_ms))
        spacing = statistics.median(b - a for a, b in zip(recent.at, recent.at[1:])) if len(recent) > 1 else span
        # one skipped round (twice the spacing) is not a gap yet; two are
        return Slots(start, now, None, 2.5 * spacing, slots)
    slot_s = span / SLOTS
    return Slots(start, now, slot_s, 2 * slot_s, tuple(_buckets(recent, start, slot_s)))


def _buckets(recent: Series, start: float, slot_s: float) -> list[Slot]:
    """Non-empty time buckets of `recent`, a slice at a time cut by bisection (rounds are in time order); a
    thousand targets' day is 120,000 buckets, so the usual one (no failed round, every total) takes C paths."""
    out = []
    at, letters, totals = recent.at, recent.status, recent.total_ms
    lo = 0
    for i in range(SLOTS):
        # the last bucket also takes rounds at or after `now` (a clock a little ahead)
        hi = len(at) if i == SLOTS - 1 else bisect.bisect_left(at, start + (i + 1) * slot_s, lo)
        if hi > lo:
            seen, lines = letters[lo:hi], totals[lo:hi]
            worst = _UP if seen.count(_UP) == hi - lo else next(x for x in _WORST_FIRST if x in seen)
            if worst == _DOWN:
                lines = [t for s, t in zip(seen, lines) if s != _DOWN and t is not None]
            elif None in lines:
                lines = [t for t in lines if t is not None]
            out.append(Slot(round(start + (i + 0.5) * slot_s, 1), max(lines, default=None), LETTER_STATUS[worst]))
        lo = hi
    return out


def _line_value(letter: str, total: float | None) -> float | None:
    return None if letter == _DOWN else total
