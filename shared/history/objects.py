"""What history keeps in the store, where, and in which encoding; decoding checks every shape it relies on.

    history/raw/YYYYMMDDHH.jsonl   one line per round, appended: per-target columns (the round's hour, UTC)
    history/latest.json            per target its latest full result, status and since when; roll-up bookkeeping
    history/hourly/YYYYMMDD.json   per UTC day, each rolled-up hour's per-target aggregates (columns)

Times are epoch seconds. A round is appended as b"\\n" + JSON: a line cut short by a crash or a full disk
is ended by the next round's append instead of swallowing it, and a reader skips lines that do not parse.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from shared.history.errors import HistoryError
from shared.verdict.status import Status

VERSION = 1
HOUR = 3600
DAY = 24 * HOUR
RAW_KEEP_S = DAY  # full resolution
HOURLY_KEEP_S = 30 * DAY  # hourly aggregates
LAST_TIME = 253402300799  # 9999-12-31T23:59:59Z

RAW_PREFIX = "history/raw/"
HOURLY_PREFIX = "history/hourly/"
LATEST = "history/latest.json"

STATUS_LETTER = {Status.UP: "u", Status.DEGRADED: "g", Status.DOWN: "d", Status.UNKNOWN: "?"}
LETTER_STATUS = {letter: status for status, letter in STATUS_LETTER.items()}
_NUMBER = (int, float)
_OPTIONAL_NUMBER = {int, float, type(None)}
_OPTIONAL_TEXT = {str, type(None)}


class RawRound(NamedTuple):
    """One decoded raw line: the round's time and per-target columns of equal length."""

    at: float
    targets: list[str]
    status: str  # one letter per target (STATUS_LETTER)
    total_ms: list[float | None]
    ttfb_ms: list[float | None]
    code: list[str | None]
    zones: list[str]  # per target, one letter per address


class HourColumns(NamedTuple):
    """One rolled-up hour: per-target aggregates in columns of equal length."""

    targets: list[str]
    rounds: list[int]  # rounds with a known status (unknown ones are left out, as from uptime)
    up_rounds: list[int]  # of those, up or degraded
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    worst_code: list[str | None]


def hour_start(t: float) -> int:
    return int(t // HOUR * HOUR)


def raw_name(hour: int) -> str:
    return f"{RAW_PREFIX}{time.strftime('%Y%m%d%H', time.gmtime(hour))}.jsonl"


def day_name(hour: int) -> str:
    return f"{HOURLY_PREFIX}{time.strftime('%Y%m%d', time.gmtime(hour))}.json"


def raw_hour(name: str) -> int | None:
    """The hour a raw object holds, None for a name that is not one."""
    return _parse_stamp(name, RAW_PREFIX, ".jsonl", "%Y%m%d%H")


def day_start(name: str) -> int | None:
    """The day an hourly object holds, None for a name that is not one."""
    return _parse_stamp(name, HOURLY_PREFIX, ".json", "%Y%m%d")


def _parse_stamp(name: str, prefix: str, suffix: str, fmt: str) -> int | None:
    stamp = name[len(prefix) : -len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
    if not stamp.isdigit():
        return None
    try:
        return calendar.timegm(time.strptime(stamp, fmt))
    except ValueError:
        return None


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


# raw lines
def encode_round(entry: RawRound) -> bytes:
    return b"\n" + _dumps(entry._asdict())


def iter_rounds(data: bytes) -> Iterator[RawRound | None]:
    """Every line of a raw object, decoded; None for a damaged line (the caller skips and counts it)."""
    for line in data.decode("utf-8", "replace").split("\n"):  # one decode per object, not one per line
        if line.strip():
            yield decode_round(line)


def decode_round(line: str) -> RawRound | None:
    try:
        doc = json.loads(line)
        entry = RawRound(**doc)
    except (ValueError, TypeError):  # not JSON, not an object, missing or unknown keys
        return None
    n = len(entry.targets) if isinstance(entry.targets, list) else -1
    columns = (entry.total_ms, entry.ttfb_ms, entry.code, entry.zones)
    if (
        type(entry.at) not in _NUMBER
        or n < 0
        or not isinstance(entry.status, str)
        or len(entry.status) != n
        or not all(isinstance(c, list) and len(c) == n for c in columns)
        or not set(entry.status) <= LETTER_STATUS.keys()
        or not set(map(type, entry.targets)) <= {str}
        or not set(map(type, entry.total_ms)) <= _OPTIONAL_NUMBER
        or not set(map(type, entry.ttfb_ms)) <= _OPTIONAL_NUMBER
        or not set(map(type, entry.code)) <= _OPTIONAL_TEXT
        or not set(map(type, entry.zones)) <= {str}
    ):
        return None
    return entry


# latest.json
def new_latest() -> dict[str, Any]:
    return {"version": VERSION, "round_at": None, "pending": [], "hourly": {}, "targets": {}}


def encode_latest(doc: dict[str, Any]) -> bytes:
    return _dumps(doc)


def decode_latest(data: bytes) -> dict[str, Any]:
    """latest.json, checked: {version, round_at, pending: [hour], hourly: {day object: token},
    targets: {name: {status, since, at, result}}}. Raises HistoryError naming the object and the fault."""
    doc = _object(data, LATEST)
    _expect(doc.get("version") == VERSION, LATEST, f"version {str(doc.get('version'))[:20]!r}, expected {VERSION}")
    _expect(doc.get("round_at") is None or _is_time(doc.get("round_at")), LATEST, "round_at is not a time")
    pending, hourly, targets = doc.get("pending"), doc.get("hourly"), doc.get("targets")
    _expect(isinstance(pending, list) and set(map(type, pending)) <= {int}, LATEST, "pending is not a list of hours")
    _expect(isinstance(hourly, dict) and set(map(type, hourly.values())) <= {str}, LATEST, "hourly is not a map")
    _expect(isinstance(targets, dict), LATEST, "targets is not an object")
    for name, entry in targets.items():
        where = f"targets[{name[:80]!r}]"
        _expect(isinstance(entry, dict), LATEST, f"{where} is not an object")
        _expect(entry.get("status") in LETTER_STATUS.values(), LATEST, f"{where}.status is not a status")
        for key in ("since", "at"):
            _expect(_is_time(entry.get(key)), LATEST, f"{where}.{key} is not a time")
        result = entry.get("result")
        _expect(isinstance(result, dict), LATEST, f"{where}.result is not an object")
        for key in ("kind", "url"):
            _expect(isinstance(result.get(key), str), LATEST, f"{where}.result.{key} is not text")
        days = result.get("tls_days_left")
        _expect(days is None or type(days) is int, LATEST, f"{where}.result.tls_days_left is not a number")
    return doc


# hourly day objects
def encode_day(hours: dict[int, HourColumns]) -> bytes:
    return _dumps({"version": VERSION, "hours": {str(h): c._asdict() for h, c in sorted(hours.items())}})


def decode_day(data: bytes, name: str) -> dict[int, HourColumns]:
    """An hourly day object, checked; raises HistoryError naming the object and the fault."""
    doc = _object(data, name)
    _expect(doc.get("version") == VERSION, name, f"version {str(doc.get('version'))[:20]!r}, expected {VERSION}")
    hours = doc.get("hours")
    _expect(isinstance(hours, dict), name, "hours is not an object")
    out: dict[int, HourColumns] = {}
    for key, columns in hours.items():
        where = f"hours[{key[:20]!r}]"
        _expect(key.isdigit() and int(key) % HOUR == 0, name, f"{where}: not an hour")
        try:
            entry = HourColumns(**columns)
        except TypeError:
            raise HistoryError(f"history object {name} is damaged: {where} lacks or adds columns") from None
        n = len(entry.targets) if isinstance(entry.targets, list) else -1
        _expect(n >= 0 and all(isinstance(c, list) and len(c) == n for c in entry), name, f"{where}: uneven columns")
        _expect(
            set(map(type, entry.targets)) <= {str}
            and set(map(type, entry.rounds)) <= {int}
            and set(map(type, entry.up_rounds)) <= {int}
            and set(map(type, entry.p50_ms)) <= _OPTIONAL_NUMBER
            and set(map(type, entry.p95_ms)) <= _OPTIONAL_NUMBER
            and set(map(type, entry.worst_code)) <= _OPTIONAL_TEXT,
            name,
            f"{where}: a column holds the wrong type",
        )
        out[int(key)] = entry
    return out


def _is_time(value: Any) -> bool:
    """Epoch seconds a datetime can hold (a damaged 1e300 would overflow when shown)."""
    return type(value) in _NUMBER and 0 <= value < LAST_TIME


def _object(data: bytes, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise HistoryError(f"history object {name} is damaged: not JSON ({str(exc)[:80]})") from None
    _expect(isinstance(doc, dict), name, "not a JSON object")
    return doc


def _expect(ok: bool, name: str, fault: str) -> None:
    if not ok:
        raise HistoryError(f"history object {name} is damaged: {fault}")
