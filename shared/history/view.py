"""Reading history: the view /status, /status.json and /metrics show, built from the store.

A 24 h view of 1000 targets at one round a minute is 1.44 million points, so a reader parses each
finished raw hour and each version of a day object once per process and keeps the result: a raw hour is
final once it has ended (appends go to the hour of the writer's clock; SETTLE_S covers a slow append and
clock skew), and latest.json names every day object's current version. A warm read parses only the
current hour and latest.json.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain, repeat
from typing import Any, NamedTuple

from shared.history.aggregate import AVAILABLE, KNOWN, percent
from shared.history.errors import HistoryError
from shared.history.objects import (
    DAY,
    HOUR,
    HOURLY_KEEP_S,
    LATEST,
    LETTER_STATUS,
    RAW_KEEP_S,
    RAW_PREFIX,
    day_start,
    decode_day,
    decode_latest,
    iter_rounds,
    raw_hour,
)
from shared.state.store import Store
from shared.verdict.status import Status

__all__ = ["HistoryError", "HistoryView", "HourPoint", "Point", "TargetHistory", "read_view"]

SETTLE_S = 300.0
UPTIME_WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
POINT_FIELDS = ("at", "status", "total_ms", "ttfb_ms", "code")
HOUR_FIELDS = ("hour", "rounds", "up_rounds", "p50_ms", "p95_ms", "worst_code")


@dataclass(frozen=True, slots=True)
class Point:
    """One round of one target, full resolution (last 24 h)."""

    at: float  # epoch seconds of the round
    status: Status
    total_ms: float | None
    ttfb_ms: float | None
    code: str | None  # diagnosis code, None when up


@dataclass(frozen=True, slots=True)
class HourPoint:
    """One hourly aggregate (older than 24 h, kept 30 days)."""

    hour: float  # epoch seconds of the hour start (UTC)
    rounds: int  # rounds with a known status: unknown rounds are left out, as from uptime
    up_rounds: int  # of those, up or degraded (available)
    p50_ms: float | None  # nearest-rank percentiles of the available rounds' total
    p95_ms: float | None
    worst_code: str | None  # the most severe status's most frequent code


@dataclass(frozen=True)
class TargetHistory:
    target: str
    kind: str  # "dashscope" | "eas"
    url: str
    latest: dict | None  # the latest ProbeResult.to_dict() of this target, as `check --json` prints it
    since: str | None  # RFC 3339: when the current status began (the first round with it)
    points: tuple[Point, ...]  # last 24 h, oldest first
    hours: tuple[HourPoint, ...]  # hourly aggregates older than 24 h, up to 30 days, oldest first
    uptime: dict[str, float | None]  # {"24h", "7d", "30d"}: % of known rounds up or degraded; None without data
    tls_days_left: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; points and hours as rows in the order of HistoryView.to_dict()'s `fields`."""
        return {
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "latest": self.latest,
            "since": self.since,
            "points": [[p.at, p.status.value, p.total_ms, p.ttfb_ms, p.code] for p in self.points],
            "hours": [[h.hour, h.rounds, h.up_rounds, h.p50_ms, h.p95_ms, h.worst_code] for h in self.hours],
            "uptime": dict(self.uptime),
            "tls_days_left": self.tls_days_left,
        }


@dataclass(frozen=True)
class HistoryView:
    generated_at: str  # RFC 3339
    round_at: str | None  # RFC 3339 of the latest recorded round
    targets: tuple[TargetHistory, ...]  # in config order when `order` is given, else by name

    def to_dict(self) -> dict[str, Any]:
        """The body of GET /status.json: points and hours are rows (a day of 1000 targets is 1.44 M points),
        their columns named once in `fields`."""
        return {
            "generated_at": self.generated_at,
            "round_at": self.round_at,
            "fields": {"points": list(POINT_FIELDS), "hours": list(HOUR_FIELDS)},
            "targets": [t.to_dict() for t in self.targets],
        }


class _RawHour(NamedTuple):
    """A parsed raw hour: per target its points (by time) and (available, known) round counts."""

    points: dict[str, tuple[Point, ...]]
    counts: dict[str, tuple[int, int]]


class _Day(NamedTuple):
    """A parsed day object: per target its hours (by time) and (up_rounds, rounds) sums."""

    hours: dict[str, tuple[HourPoint, ...]]
    sums: dict[str, tuple[int, int]]


# (store, object name, version) -> a parsed object that cannot change under that key
_parsed: dict[tuple[str, str, str], Any] = {}


def read_view(store: Store, *, now: float | None = None, order: Sequence[str] | None = None) -> HistoryView:
    """Everything /status, /status.json and /metrics show, read from the store; never raises for a missing
    history (an empty view), raises StoreError when the store itself fails, and HistoryError (a VpcprobeError)
    naming the object when a history object is damaged beyond skipping a bad line.

    With `order`, the view holds the named targets that have history, in that order (targets gone from the
    config are left out); without it, every recorded target by name."""
    now = time.time() if now is None else now
    data = store.get_object(LATEST)
    if data is None:
        return HistoryView(generated_at=rfc3339(now), round_at=None, targets=())
    latest = decode_latest(data)
    store_id = store.describe()
    used: set[tuple[str, str, str]] = set()
    raw_start = now - RAW_KEEP_S
    raw = _raw_hours(store, store_id, now, used)
    days = _days(store, store_id, latest["hourly"], now, used)
    for key in [k for k in _parsed if k[0] == store_id and k not in used]:
        del _parsed[key]  # pruned or replaced objects

    recorded: dict[str, Any] = latest["targets"]
    names = [n for n in order if n in recorded] if order is not None else sorted(recorded)
    targets = []
    for name in names:
        entry = recorded[name]
        result = entry["result"]
        points, available, known = _points(name, raw, raw_start, now)
        hours = _hours(name, days, now - HOURLY_KEEP_S, raw_start)
        uptime = {}
        for label, span in UPTIME_WINDOWS.items():
            up, rounds = _hour_sums(name, days, now - span, raw_start) if span > RAW_KEEP_S else (0, 0)
            uptime[label] = percent(available + up, known + rounds)
        targets.append(
            TargetHistory(
                target=name,
                kind=result["kind"],
                url=result["url"],
                latest=result,
                since=rfc3339(entry["since"]),
                points=points,
                hours=hours,
                uptime=uptime,
                tls_days_left=result.get("tls_days_left"),
            )
        )
    round_at = latest["round_at"]
    return HistoryView(
        generated_at=rfc3339(now),
        round_at=None if round_at is None else rfc3339(round_at),
        targets=tuple(targets),
    )


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _raw_hours(store: Store, store_id: str, now: float, used: set) -> list[tuple[int, _RawHour]]:
    """The raw hours that hold rounds of the last 24 h, oldest first; finished ones from the cache."""
    out = []
    for name in store.list_objects(RAW_PREFIX):
        hour = raw_hour(name)
        if hour is None or hour + HOUR <= now - RAW_KEEP_S or hour > now:
            continue
        final = hour + HOUR + SETTLE_S <= now
        key = (store_id, name, "final")
        parsed = _parsed.get(key) if final else None
        if parsed is None:
            data = store.get_object(name)
            if data is None:
                continue  # pruned since the listing
            parsed = _parse_raw(data)
            if final:
                _parsed[key] = parsed
        used.add(key)
        out.append((hour, parsed))
    return out


def _parse_raw(data: bytes) -> _RawHour:
    same: dict[Any, Any] = {}  # one object per distinct code or latency, not one per point
    ats: list[float] = []
    point_rows: list[tuple[list[str], list[Point]]] = []
    letter_rows: list[tuple[list[str], str]] = []
    with _collector_paused():
        for entry in iter_rounds(data):
            if entry is None:
                continue  # a damaged line: skipped
            at = float(entry.at)
            ats.append(at)
            statuses = map(LETTER_STATUS.__getitem__, entry.status)
            totals, ttfbs = (
                map(same.setdefault, entry.total_ms, entry.total_ms),
                map(same.setdefault, entry.ttfb_ms, entry.ttfb_ms),
            )
            codes = map(same.setdefault, entry.code, entry.code)
            point_rows.append((entry.targets, list(map(Point, repeat(at), statuses, totals, ttfbs, codes))))
            letter_rows.append((entry.targets, entry.status))
        points = _by_target(point_rows)
    if ats != sorted(ats):  # writers' clocks disagreed: order each target's rounds by time
        points = {name: sorted(series, key=lambda p: p.at) for name, series in points.items()}
    counts = {}
    for name, letters in _by_target(letter_rows).items():
        available = letters.count("u") + letters.count("g")
        counts[name] = (available, available + letters.count("d"))
    return _RawHour({name: tuple(series) for name, series in points.items()}, counts)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Parsing makes up to a million small objects that all live on; the cyclic collector's passes over
    them find nothing and, measured, took two thirds of the parse time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _by_target(rows: list[tuple[list[str], Sequence[Any]]]) -> dict[str, list[Any]]:
    """Rows of (target names, one item per name) regrouped per target, in row order. Consecutive rows with
    the same names (the usual case: every round probes every target) are transposed in one go."""
    out: dict[str, list[Any]] = {}
    start = 0
    for end in range(1, len(rows) + 1):
        if end < len(rows) and rows[end][0] == rows[start][0]:
            continue
        for name, series in zip(rows[start][0], zip(*(items for _, items in rows[start:end]))):
            out.setdefault(name, []).extend(series)
        start = end
    return out


def _count(points: Sequence[Point]) -> tuple[int, int]:
    statuses = [p.status for p in points]
    return sum(map(statuses.count, AVAILABLE)), sum(map(statuses.count, KNOWN))


def _points(name: str, raw: list[tuple[int, _RawHour]], start: float, now: float) -> tuple[tuple[Point, ...], int, int]:
    """A target's points of the last 24 h and their (available, known) counts."""
    parts: list[tuple[Point, ...]] = []
    available = known = 0
    for hour, parsed in raw:
        series = parsed.points.get(name)
        if not series:
            continue
        if hour < start or hour + HOUR > now:  # a boundary hour: only its rounds inside the window
            series = tuple(p for p in series if start < p.at <= now)
            a, k = _count(series)
        else:
            a, k = parsed.counts[name]
        parts.append(series)
        available, known = available + a, known + k
    return tuple(chain.from_iterable(parts)), available, known


def _days(store: Store, store_id: str, hourly: dict[str, str], now: float, used: set) -> list[tuple[int, _Day]]:
    """The day objects latest.json lists within 30 days, oldest first; each version parsed once."""
    out = []
    for name, version in sorted(hourly.items()):
        day = day_start(name)
        if day is None or day + DAY <= now - HOURLY_KEEP_S:
            continue
        key = (store_id, name, version)
        parsed = _parsed.get(key)
        if parsed is None:
            data = store.get_object(name)
            if data is None:
                continue  # pruned since latest.json was read
            parsed = _parsed[key] = _parse_day(data, name)
        used.add(key)
        out.append((day, parsed))
    return out


def _parse_day(data: bytes, name: str) -> _Day:
    same: dict[Any, Any] = {}
    rows = []
    with _collector_paused():
        for hour, columns in sorted(decode_day(data, name).items()):
            p50, p95 = (
                map(same.setdefault, columns.p50_ms, columns.p50_ms),
                map(same.setdefault, columns.p95_ms, columns.p95_ms),
            )
            worst = map(same.setdefault, columns.worst_code, columns.worst_code)
            hours = map(HourPoint, repeat(float(hour)), columns.rounds, columns.up_rounds, p50, p95, worst)
            rows.append((columns.targets, list(hours)))
        by_target = {target: tuple(series) for target, series in _by_target(rows).items()}
    sums = {target: (sum(h.up_rounds for h in s), sum(h.rounds for h in s)) for target, s in by_target.items()}
    return _Day(by_target, sums)


def _hours(name: str, days: list[tuple[int, _Day]], start: float, end: float) -> tuple[HourPoint, ...]:
    """A target's hourly aggregates of the hours that begin at `start` or later and end by `end`."""
    out: list[HourPoint] = []
    for day, parsed in days:
        series = parsed.hours.get(name, ())
        if start <= day and day + DAY <= end:
            out.extend(series)
        else:
            out.extend(h for h in series if start <= h.hour and h.hour + HOUR <= end)
    return tuple(out)


def _hour_sums(name: str, days: list[tuple[int, _Day]], start: float, end: float) -> tuple[int, int]:
    """(up_rounds, rounds) over the same hours as _hours, from each whole day's cached sums."""
    up = rounds = 0
    for day, parsed in days:
        if start <= day and day + DAY <= end:
            u, r = parsed.sums.get(name, (0, 0))
        elif day + DAY > start and day < end:
            inside = [h for h in parsed.hours.get(name, ()) if start <= h.hour and h.hour + HOUR <= end]
            u, r = sum(h.up_rounds for h in inside), sum(h.rounds for h in inside)
        else:
            continue
        up, rounds = up + u, rounds + r
    return up, rounds
