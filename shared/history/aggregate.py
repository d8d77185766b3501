"""The arithmetic of history: which rounds count as available, percentiles, the worst code of an hour.

Uptime: up and degraded rounds count as available, down rounds do not, and unknown rounds (the prober
could not keep up) are left out of the ratio altogether. Latency percentiles are over the available
rounds' `total` only: a refused connect answers in a millisecond and would make a dead hour look fast.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from shared.history.objects import LETTER_STATUS, HourColumns, RawRound
from shared.verdict.status import Status

AVAILABLE = frozenset({Status.UP, Status.DEGRADED})
KNOWN = frozenset({Status.UP, Status.DEGRADED, Status.DOWN})
# which round's code is an hour's worst: the most severe status's most frequent code
SEVERITY = {Status.DOWN: 3, Status.DEGRADED: 2, Status.UNKNOWN: 1, Status.UP: 0}


def nearest_rank(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (a value that was measured, never an interpolation)."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def percent(available: int, known: int) -> float | None:
    """Uptime in percent, None without a known round."""
    return None if known == 0 else round(100.0 * available / known, 3)


def worst_code(seen: Iterable[tuple[Status, str | None]]) -> str | None:
    """The most frequent code among the rounds of the most severe status (ties: alphabetical)."""
    worst: dict[int, Counter[str]] = {}
    for status, code in seen:
        if code is not None:
            worst.setdefault(SEVERITY[status], Counter())[code] += 1
    if not worst:
        return None
    counts = worst[max(worst)]
    return min(counts, key=lambda code: (-counts[code], code))


def roll_up(rounds: Iterable[RawRound]) -> HourColumns:
    """One hour's rounds as per-target aggregates, targets in the order they first appear."""
    totals: dict[str, list[float]] = {}
    known: dict[str, int] = {}
    available: dict[str, int] = {}
    codes: dict[str, list[tuple[Status, str | None]]] = {}
    for entry in rounds:
        for name, letter, total, code in zip(entry.targets, entry.status, entry.total_ms, entry.code):
            status = LETTER_STATUS[letter]
            if name not in known:
                known[name] = available[name] = 0
                totals[name], codes[name] = [], []
            if status in KNOWN:
                known[name] += 1
            if status in AVAILABLE:
                available[name] += 1
                if total is not None:
                    totals[name].append(total)
            codes[name].append((status, code))
    names = list(known)
    ordered = [sorted(totals[n]) for n in names]
    return HourColumns(
        targets=names,
        rounds=[known[n] for n in names],
        up_rounds=[available[n] for n in names],
        p50_ms=[nearest_rank(o, 0.50) for o in ordered],
        p95_ms=[nearest_rank(o, 0.95) for o in ordered],
        worst_code=[worst_code(codes[n]) for n in names],
    )
