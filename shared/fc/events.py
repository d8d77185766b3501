"""FC event parsing for the probe function: timer trigger events and invoke payloads.

FC hands a built-in-runtime handler the event as bytes. A timer event carries its trigger's
`payload` as a string; an invoke carries whatever the caller sent. Both may name targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import VpcprobeError, clip, excerpt

# A probe event names a few targets; FC would hand over up to its 32 MB payload limit.
MAX_EVENT_BYTES = 1024 * 1024
MAX_NAME_CHARS = 63  # a target name's limit (config/targets.py)


class BadEvent(VpcprobeError, ValueError):
    """An event vpcprobe cannot act on; the message says what was expected."""


@dataclass(frozen=True)
class ProbeRequest:
    source: str  # timer | invoke
    targets: list[str] | None  # None = all
    trigger_time: str | None = None
    alert: bool = True


def _json(raw: Any, what: str) -> Any:
    if isinstance(raw, (bytes, bytearray, str)) and len(raw) > MAX_EVENT_BYTES:
        raise BadEvent(f"{what} is over {MAX_EVENT_BYTES // 1024} KiB; a probe event names targets, nothing more")
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadEvent(f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadEvent(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from None
        except ValueError:  # valid JSON that Python will not read: an integer of over 4300 digits
            raise BadEvent(f"{what} holds a number too long to read (over 4300 digits)") from None
        except RecursionError:
            raise BadEvent(f"{what} nests too deep") from None
    return raw


def _targets(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS for v in value):
        raise BadEvent(f"{what}.targets must be a target name or a list of target names (1-63 characters each)")
    return value or None


def parse_probe_event(event: Any) -> ProbeRequest:
    """Timer event `{"triggerTime","triggerName","payload"}` or invoke `{"targets": [...], "alert": bool}`."""
    data = _json(event, "event")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadEvent(f"event must be a JSON object, got {type(data).__name__}")
    if "triggerTime" in data or "triggerName" in data:
        payload = _json(data.get("payload") or "", "timer payload")
        if not isinstance(payload, dict):
            raise BadEvent('timer payload must be empty or a JSON object such as {"targets": ["name"]}')
        return ProbeRequest(
            "timer",
            _targets(payload.get("targets"), "timer payload"),
            trigger_time=_trigger_time(data.get("triggerTime")),
            alert=_bool(payload.get("alert", True), "timer payload.alert"),
        )
    unknown = sorted(str(k) for k in set(data) - {"targets", "alert"})
    if unknown:
        names = ", ".join(clip(k, 30) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if unknown[5:] else "")
        raise BadEvent(f"unknown invoke field(s) {names}; expected targets, alert")
    return ProbeRequest(
        "invoke", _targets(data.get("targets"), "invoke"), alert=_bool(data.get("alert", True), "alert")
    )


def _trigger_time(value: Any) -> str | None:
    """FC's `triggerTime` (2026-11-22T07:49:00Z); it goes into the round's log line, so it stays short."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadEvent(f"triggerTime must be a time such as 2026-11-22T07:49:00Z (got {excerpt(value, 30)})")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadEvent(f"{what} must be true or false")
    return value


def timer_event(trigger_time: str, payload: str = "") -> bytes:
    """An FC-shaped timer event, as `vpcprobe serve` hands it to the handler."""
    return json.dumps({"triggerTime": trigger_time, "triggerName": "probe-timer", "payload": payload}).encode()
