"""Validation of the alert state document: the type of every field and the `version`.

A document that fails is damaged. `salvage` keeps every entry that is valid (a target's state, a
pending notification, a batch awaiting its answer, a channel's record) and names each one it had to
drop, so the alert step can rebuild from what is left instead of crashing every later round. The
words an enum field may hold (alert states, severities, notification kinds) are the alert side's:
the caller passes them in (`Vocabulary`), as this package knows nothing about alerting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

VERSION = 1
_EXCERPT = 40  # characters of a bad value quoted in a problem


@dataclass(frozen=True)
class Vocabulary:
    """The words the document's enum fields may hold."""

    states: frozenset[str]
    severities: frozenset[str]
    kinds: frozenset[str]


Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else f"expected text, got {_show(v)}"


def _count(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return None if ok else f"expected a whole number >= 0, got {_show(v)}"


def _number(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e12
    return None if ok else f"expected a number, got {_show(v)}"


def _moment(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"expected an ISO 8601 time, got {_show(v)}"
    try:
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return f"expected an ISO 8601 time, got {_show(v)}"
    return None if parsed.tzinfo is not None else f"expected a time with its UTC offset, got {_show(v)}"


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {_show(v)}"


def _word(words: frozenset[str]) -> Check:
    def run(v: Any) -> str | None:
        if isinstance(v, str) and v in words:
            return None
        return f"expected one of {', '.join(sorted(words))}, got {_show(v)}"

    return run


def _list_of(check: Check) -> Check:
    def run(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"expected a list, got {_show(v)}"
        return next((f"item {i}: {p}" for i, item in enumerate(v) if (p := check(item)) is not None), None)

    return run


def _timings(v: Any) -> str | None:
    if not isinstance(v, dict):
        return f"expected an object of timings, got {_show(v)}"
    bad = next((k for k, t in v.items() if _optional(_number)(t) is not None), None)
    return None if bad is None else f"{str(bad)[:_EXCERPT]}: expected milliseconds, got {_show(v[bad])}"


def _target_fields(w: Vocabulary) -> dict[str, tuple[Check, bool]]:
    """TargetState's fields -> (check, required)."""
    moment, severity = _optional(_moment), _optional(_word(w.severities))
    return {
        "state": (_word(w.states), True),
        "status": (_optional(_text), False),
        "failures": (_count, False),
        "successes": (_count, False),
        "since": (moment, False),
        "severity": (severity, False),
        "started": (moment, False),
        "recovered": (moment, False),
        "notified": (severity, False),
        "last_notified": (moment, False),
        "last_checked": (moment, False),
        "muted_by": (_optional(_text), False),
        "shift": (severity, False),
        "shift_count": (_count, False),
        "seq": (_count, False),
        "unknown_rounds": (_count, False),
        "unknown_since": (moment, False),
        "unjudged_told": (_flag, False),
    }


def _note_fields(w: Vocabulary) -> dict[str, tuple[Check, bool]]:
    """Notification's fields -> (check, required)."""
    text, severity = _optional(_text), _optional(_word(w.severities))
    return {
        "id": (_text, True),
        "target": (_text, True),
        "kind": (_word(w.kinds), True),
        "severity": (severity, True),
        "previous": (severity, True),
        "status": (_text, True),
        "target_kind": (_text, True),
        "url": (_text, True),
        "since": (_text, True),
        "started": (text, True),
        "at": (_text, True),
        "code": (text, False),
        "message": (text, False),
        "remedy": (text, False),
        "http_status": (_optional(_count), False),
        "timings": (_timings, False),
        "failed": (_list_of(_text), False),
        "maintenance": (text, False),
        "route": (_list_of(_text), False),
    }


_INFLIGHT_FIELDS: dict[str, tuple[Check, bool]] = {
    "ids": (_list_of(_text), True),
    "msg_id": (_text, True),
    "attempts": (_count, True),
}
_CHANNEL_FIELDS: dict[str, tuple[Check, bool]] = {
    "sends": (_list_of(_number), False),
    "blocked_until": (_optional(_number), False),
    "last_ok": (_optional(_text), False),
    "last_error": (_optional(_text), False),
}


def _record_problem(record: Any, spec: dict[str, tuple[Check, bool]]) -> str | None:
    """What is wrong with one record (an object with these fields), as ".field: why" or ": why";
    unknown keys are ignored."""
    if not isinstance(record, dict):
        return f": expected an object, got {_show(record)}"
    for key, (check, required) in spec.items():
        if key not in record:
            if required:
                return f".{key}: missing"
            continue
        problem = check(record[key])
        if problem is not None:
            return f".{key}: {problem}"
    return None


def salvage(doc: dict[str, Any], words: Vocabulary) -> tuple[dict[str, Any], list[str]]:
    """The document with only its valid entries, and a problem (naming the field) for each thing dropped.

    An unknown or missing `version` keeps nothing: its fields may mean something else."""
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        found = "no version" if "version" not in doc else f"version {_show(version)}"
        return {}, [f"version: this vpcprobe reads version {VERSION}, the document has {found}"]
    problems: list[str] = []
    clean: dict[str, Any] = {"version": VERSION}
    if _optional(_moment)(doc.get("updated_at")) is None:
        clean["updated_at"] = doc.get("updated_at")
    clean["targets"] = _objects(doc.get("targets"), "targets", _target_fields(words), problems)
    clean["inflight"] = _objects(doc.get("inflight"), "inflight", _INFLIGHT_FIELDS, problems)
    clean["channels"] = _objects(doc.get("channels"), "channels", _CHANNEL_FIELDS, problems)
    clean["pending"] = []
    pending = doc.get("pending", [])
    if not isinstance(pending, list):
        problems.append(f"pending: expected a list, got {_show(pending)}")
        pending = []
    spec = _note_fields(words)
    for i, note in enumerate(pending):
        problem = _record_problem(note, spec)
        if problem is None:
            clean["pending"].append(note)
        else:
            problems.append(f"pending[{i}]{problem}")
    return clean, problems


def _objects(
    value: Any, where: str, spec: dict[str, tuple[Check, bool]], problems: list[str]
) -> dict[str, Any]:
    """A name -> record section, keeping the valid records."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object, got {_show(value)}")
        return {}
    kept: dict[str, Any] = {}
    for name, record in value.items():
        problem = _record_problem(record, spec)
        if problem is None:
            kept[name] = record
        else:
            problems.append(f"{where}.{str(name)[:_EXCERPT]}{problem}")
    return kept
