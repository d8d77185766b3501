"""Reading history: the view /status, /status.json and /metrics show, built from the store.

A 24 h view of 1000 targets at one round a minute is 1.44 million points, so a reader parses each
finished raw hour and each version of a day object once per process and keeps the result (points as
columns, series.py): a raw hour is final once it has ended (appends go to the hour of the writer's clock;
SETTLE_S covers a slow append and clock skew), and latest.json names every day object's current version.
A warm read parses only the current hour and latest.json.

A view has two JSON shapes, one method each: summary_dict() is what the status page shows (the 24 h as
the sparkline's slots, uptime over 24 h / 7 d / 30 d), full_dict() every point and hourly aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar

from shared.history.aggregate import percent
from shared.history.columns import HourPoint, Hours, Point, Series
from shared.history.errors import HistoryError
from shared.history.objects import (
    DAY,
    HOUR,
    HOURLY_KEEP_S,
    LATEST,
    RAW_KEEP_S,
    RAW_PREFIX,
    HourColumns,
    RawRound,
    day_start,
    decode_day,
    decode_latest,
    iter_rounds,
    raw_hour,
)
from shared.history.slots import SLOT_FIELDS, day_slots
from shared.state.store import Store

__all__ = ["HistoryError", "HistoryView", "HourPoint", "Hours", "Point", "Series", "TargetHistory", "read_view"]

T = TypeVar("T")
SETTLE_S = 300.0
UPTIME_WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}

@dataclass(frozen=True)
class TargetHistory:
    target: str
    kind: str  # "dashscope" | "eas"
    url: str
    latest: dict | None  # the latest ProbeResult.to_dict() of this target, as `check --json` prints it
    since: str | None  # RFC 3339: when the current status began (the first round with it)
    points: Series  # last 24 h, oldest first
    hours: Hours  # hourly aggregates older than 24 h, up to 30 days, oldest first
    uptime: dict[str, float | None]  # {"24h", "7d", "30d"}: % of known rounds up or degraded; None without data
    tls_days_left: int | None

    @property
    def status(self) -> str | None:
        """The current status: the latest result's, else the latest point's; None without a round."""
        if self.latest and isinstance(self.latest.get("status"), str):
            return self.latest["status"]
        return self.points[-1].status.value if len(self.points) else None

    def summary_dict(self, now: float) -> dict[str, Any]:
        """What the status page shows of this target, JSON-ready: the latest result (diagnosis, remedy, zone
        addresses, certificate), the last 24 h as the sparkline's slots (rows in `fields` order), uptime."""
        slots = day_slots(self.points, now)
        return {
            **self._head(),
            "slots": None if slots is None else slots.to_dict(),
        }

    def full_dict(self) -> dict[str, Any]:
        """Every point of the last 24 h and every hourly aggregate of 30 days, as rows in `fields` order."""
        return {
            **self._head(),
            "points": self.points.rows(),
            "hours": self.hours.rows(),
        }

    def _head(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "status": self.status,
            "since": self.since,
            "latest": self.latest,
            "uptime": dict(self.uptime),
            "tls_days_left": self.tls_days_left,
        }


@dataclass(frozen=True)
class HistoryView:
    generated_at: str  # RFC 3339
    round_at: str | None  # RFC 3339 of the latest recorded round
    targets: tuple[TargetHistory, ...]  # in config order when `order` is given, else by name

    def only(self, names: Collection[str]) -> HistoryView:
        """The view of the named targets alone (in the view's order)."""
        return replace(self, targets=tuple(t for t in self.targets if t.target in names))

    def summary_dict(self, now: float) -> dict[str, Any]:
        """The default body of GET /status.json: per target what the status page shows (~5 KiB a target)."""
        return {
            **self._head(),
            "fields": {"slots": list(SLOT_FIELDS)},
            "targets": [t.summary_dict(now) for t in self.targets],
        }

    def full_dict(self) -> dict[str, Any]:
        """GET /status.json?points=full: every point and hourly aggregate (a day of 1000 targets at one round a
        minute is 1.44 M points, ~60 MiB), as rows whose columns are named once in `fields`."""
        return {
            **self._head(),
            "fields": {"points": list(Series.FIELDS), "hours": list(Hours.FIELDS)},
            "targets": [t.full_dict() for t in self.targets],
        }

    def _head(self) -> dict[str, Any]:
        return {"generated_at": self.generated_at, "round_at": self.round_at}


class _RawHour(NamedTuple):
    """A parsed raw hour: per target its rounds (by time) and (available, known) round counts."""

    points: dict[str, Series]
    counts: dict[str, tuple[int, int]]


class _Day(NamedTuple):
    """A parsed day object: per target its hours (by time) and (up_rounds, rounds) sums."""

    hours: dict[str, Hours]
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
    """A raw hour's rounds regrouped per target as columns: each run of rounds over the same targets (the
    usual case: every round probes every target) is transposed with zip, not walked point by point."""
    rounds = [entry for entry in iter_rounds(data) if entry is not None]  # a damaged line is skipped
    if any(b.at < a.at for a, b in zip(rounds, rounds[1:])):  # writers' clocks disagreed: order by time
        rounds.sort(key=lambda entry: entry.at)
    same: dict[Any, Any] = {}  # one object per distinct code or latency, not one per point
    parts: dict[str, list[Series]] = {}
    for run in _runs(rounds, _round_targets):
        at = tuple(float(entry.at) for entry in run)
        columns = (
            zip(*(entry.status for entry in run)),
            zip(*(entry.total_ms for entry in run)),
            zip(*(entry.ttfb_ms for entry in run)),
            zip(*(entry.code for entry in run)),
        )
        for name, letters, totals, ttfbs, codes in zip(run[0].targets, *columns):
            parts.setdefault(name, []).append(Series(
                at,
                "".join(letters),
                tuple(map(same.setdefault, totals, totals)),
                tuple(map(same.setdefault, ttfbs, ttfbs)),
                tuple(map(same.setdefault, codes, codes)),
            ))
    points = {name: Series.joined(series) for name, series in parts.items()}
    return _RawHour(points, {name: series.counts() for name, series in points.items()})


def _runs(items: Sequence[T], targets_of: Callable[[T], list[str]]) -> list[list[T]]:
    """Consecutive items over the same target list, grouped."""
    runs: list[list[T]] = []
    for item in items:
        if runs and targets_of(runs[-1][0]) == targets_of(item):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _round_targets(entry: RawRound) -> list[str]:
    return entry.targets


def _hour_targets(item: tuple[int, HourColumns]) -> list[str]:
    return item[1].targets


def _points(name: str, raw: list[tuple[int, _RawHour]], start: float, now: float) -> tuple[Series, int, int]:
    """A target's points of the last 24 h and their (available, known) counts."""
    parts: list[Series] = []
    available = known = 0
    for hour, parsed in raw:
        series = parsed.points.get(name)
        if series is None:
            continue
        if hour < start or hour + HOUR > now:  # a boundary hour: only its rounds inside the window
            series = series.between(start, now)
            a, k = series.counts()
        else:
            a, k = parsed.counts[name]
        parts.append(series)
        available, known = available + a, known + k
    return Series.joined(parts) if parts else Series(), available, known


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
    """A day object's hours regrouped per target as columns, runs of hours over the same targets transposed."""
    same: dict[Any, Any] = {}
    parts: dict[str, list[Hours]] = {}
    hours = sorted(decode_day(data, name).items())
    for run in _runs(hours, _hour_targets):
        starts = tuple(float(hour) for hour, _ in run)
        for target, *fields in zip(run[0][1].targets, *(zip(*(getattr(c, f) for _, c in run))
                                                         for f in Hours.FIELDS[1:])):
            parts.setdefault(target, []).append(Hours(starts, *(tuple(map(same.setdefault, f, f)) for f in fields)))
    series = {target: Hours.joined(p) for target, p in parts.items()}
    return _Day(series, {target: h.sums() for target, h in series.items()})


def _hours(name: str, days: list[tuple[int, _Day]], start: float, end: float) -> Hours:
    """A target's hourly aggregates of the hours that begin at `start` or later and end by `end`."""
    parts: list[Hours] = []
    for day, parsed in days:
        series = parsed.hours.get(name)
        if series is None:
            continue
        if not (start <= day and day + DAY <= end):
            series = series.between(start, end - HOUR, from_start=True)  # start <= hour, hour + HOUR <= end
        parts.append(series)
    return Hours.joined(parts)


def _hour_sums(name: str, days: list[tuple[int, _Day]], start: float, end: float) -> tuple[int, int]:
    """(up_rounds, rounds) over the same hours as _hours, from each whole day's cached sums."""
    up = rounds = 0
    for day, parsed in days:
        if start <= day and day + DAY <= end:
            u, r = parsed.sums.get(name, (0, 0))
        elif day + DAY > start and day < end and name in parsed.hours:
            u, r = parsed.hours[name].between(start, end - HOUR, from_start=True).sums()
        else:
            continue
        up, rounds = up + u, rounds + r
    return up, rounds
