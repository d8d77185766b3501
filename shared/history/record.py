"""Writing history: each round appended to its hour, the latest results merged, finished hours rolled up.

Called only while the caller holds the store lease (appends are not merged, and the roll-up reads then
rewrites), so two rounds never write history at once. A regular round costs one read of latest.json, one
append of the round's line and one write of latest.json; the first round of a new hour also rolls the
finished hours into their day's hourly object and prunes raw hours past 24 h and days past 30 days.
A damaged latest.json or day object is logged and replaced: history never stops recording.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shared import logs
from shared.history.aggregate import roll_up
from shared.history.errors import HistoryError
from shared.history.objects import (
    DAY,
    HOUR,
    HOURLY_KEEP_S,
    HOURLY_PREFIX,
    LATEST,
    RAW_KEEP_S,
    RAW_PREFIX,
    STATUS_LETTER,
    HourColumns,
    RawRound,
    day_name,
    day_start,
    decode_day,
    decode_latest,
    encode_day,
    encode_latest,
    encode_round,
    hour_start,
    iter_rounds,
    new_latest,
    raw_hour,
    raw_name,
)
from shared.state.store import Store
from shared.verdict.result import ProbeResult


@dataclass(frozen=True)
class RecordReport:
    """What recording one round cost and did: the round summary's `history` part."""

    bytes_written: int
    objects_written: int
    rolled_hours: int  # finished hours rolled into hourly aggregates this round
    pruned: int  # objects removed (raw hours past 24 h, days past 30 days)
    skipped_lines: int  # damaged raw lines left out of a roll-up
    ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_round(store: Store, results: Sequence[ProbeResult], *, now: float | None = None) -> RecordReport:
    """Record one round at `now` (epoch seconds, default the clock). Only under the caller's store lease.

    Raises StoreError when the store fails; whatever was written before stays consistent (a failed roll-up
    is retried by the next round, since latest.json still lists the hour as pending)."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    writer = _Writer(store)
    latest = _load_latest(store)
    hour = hour_start(now)
    writer.append(raw_name(hour), encode_round(_raw_round(now, results)))
    _merge_latest(latest, results, now)
    pending = set(latest["pending"]) | {hour}
    due = sorted(h for h in pending if h < hour)
    rolled = pruned = skipped = 0
    if due:
        rolled, skipped = _roll_up_hours(store, writer, latest, due, now)
        pending.difference_update(due)
        pruned = _prune(store, latest, now)
    latest["pending"] = sorted(pending)
    latest["round_at"] = now
    writer.put(LATEST, encode_latest(latest))
    return RecordReport(
        bytes_written=writer.bytes,
        objects_written=writer.objects,
        rolled_hours=rolled,
        pruned=pruned,
        skipped_lines=skipped,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


def record_with_lease(
    store: Store, results: Sequence[ProbeResult], ttl_s: float, *, owner: str | None = None
) -> RecordReport | None:
    """Record a round that has no alert step to hold the lease for it: take the lease, record, release.
    None when another round holds the lease (that round writes its own history)."""
    owner = owner or f"history/{uuid.uuid4().hex[:12]}"
    if not store.acquire_lease(owner, ttl_s):
        return None
    try:
        return record_round(store, results)
    finally:
        store.release(owner)


class _Writer:
    """The store's writes, counted."""

    def __init__(self, store: Store) -> None:
        self.store, self.bytes, self.objects = store, 0, 0

    def append(self, name: str, data: bytes) -> None:
        self.store.append_object(name, data)
        self.bytes, self.objects = self.bytes + len(data), self.objects + 1

    def put(self, name: str, data: bytes) -> None:
        self.store.put_object(name, data)
        self.bytes, self.objects = self.bytes + len(data), self.objects + 1


def _raw_round(now: float, results: Sequence[ProbeResult]) -> RawRound:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return RawRound(
        at=round(now, 3),
        targets=[r.target for r in results],
        status="".join(STATUS_LETTER[r.status] for r in results),
        total_ms=[ms(r.phases_ms.get("total")) for r in results],
        ttfb_ms=[ms(r.phases_ms.get("ttfb")) for r in results],
        code=[None if r.diagnosis is None else str(r.diagnosis.code) for r in results],
        zones=["".join(STATUS_LETTER[a.status] for a in r.addresses) for r in results],
    )


def _load_latest(store: Store) -> dict[str, Any]:
    """latest.json, or a fresh one rebuilt from the listing: every raw hour pending (re-rolling an hour is
    harmless), every day object known to readers."""
    data = store.get_object(LATEST)
    if data is not None:
        try:
            return decode_latest(data)
        except HistoryError as exc:
            _log().error("history_object_replaced", object=LATEST, error=str(exc))
    fresh = new_latest()
    fresh["pending"] = sorted(h for h in map(raw_hour, store.list_objects(RAW_PREFIX)) if h is not None)
    fresh["hourly"] = {n: uuid.uuid4().hex[:12] for n in store.list_objects(HOURLY_PREFIX) if day_start(n) is not None}
    return fresh


def _merge_latest(latest: dict[str, Any], results: Sequence[ProbeResult], now: float) -> None:
    """The round's targets replace their entries (a partial round leaves the others); `since` moves only
    when the status changes; targets silent for 30 days (gone from the config) are dropped."""
    targets: dict[str, Any] = latest["targets"]
    for r in results:
        status = str(r.status)
        prior = targets.get(r.target)
        since = prior["since"] if prior is not None and prior["status"] == status else now
        targets[r.target] = {"status": status, "since": since, "at": now, "result": r.to_dict()}
    for name in [n for n, entry in targets.items() if entry["at"] <= now - HOURLY_KEEP_S]:
        del targets[name]


def _roll_up_hours(
    store: Store, writer: _Writer, latest: dict[str, Any], hours: list[int], now: float
) -> tuple[int, int]:
    """Roll finished raw hours into their days' hourly objects; returns (hours rolled, damaged lines)."""
    by_day: dict[str, list[int]] = {}
    for hour in hours:
        if hour + HOUR > now - HOURLY_KEEP_S:  # older ones would be pruned at once
            by_day.setdefault(day_name(hour), []).append(hour)
    rolled = skipped = 0
    for name, day_hours in by_day.items():
        columns = _load_day(store, name)
        for hour in day_hours:
            data = store.get_object(raw_name(hour))
            if data is None:
                continue  # pruned or never written (latest.json was rebuilt)
            entries = list(iter_rounds(data))
            good = [e for e in entries if e is not None]
            skipped += len(entries) - len(good)
            if good:
                columns[hour] = roll_up(good)
                rolled += 1
        writer.put(name, encode_day(columns))
        latest["hourly"][name] = uuid.uuid4().hex[:12]  # readers' cache key for this version of the day
    if skipped:
        _log().warning("history_lines_skipped", lines=skipped, reason="damaged raw lines (a write cut short)")
    return rolled, skipped


def _load_day(store: Store, name: str) -> dict[int, HourColumns]:
    data = store.get_object(name)
    if data is None:
        return {}
    try:
        return decode_day(data, name)
    except HistoryError as exc:
        _log().error("history_object_replaced", object=name, error=str(exc))
        return {}


def _prune(store: Store, latest: dict[str, Any], now: float) -> int:
    """Remove raw hours whose every round is older than 24 h and days whose every hour is older than 30 days."""
    pruned = 0
    for name in store.list_objects(RAW_PREFIX):
        hour = raw_hour(name)
        if hour is not None and hour + HOUR <= now - RAW_KEEP_S:
            store.delete_object(name)
            pruned += 1
    for name in store.list_objects(HOURLY_PREFIX):
        day = day_start(name)
        if day is not None and day + DAY <= now - HOURLY_KEEP_S:
            store.delete_object(name)
            latest["hourly"].pop(name, None)
            pruned += 1
    return pruned


def _log() -> Any:
    return logs.get_logger("vpcprobe.history")
