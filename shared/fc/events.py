"""FC event parsing for the probe function: timer trigger events and invoke payloads.

FC hands a built-in-runtime handler the event as bytes. A timer event carries its trigger's
`payload` as a string; an invoke carries whatever the caller sent. Both may name targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import VpcprobeError


class BadEvent(VpcprobeError, ValueError):
    """An event vpcprobe cannot act on; the message says what was expected."""


@dataclass(frozen=True)
class ProbeRequest:
    source: str  # timer | invoke
    targets: list[str] | None  # None = all
    trigger_time: str | None = None
    alert: bool = True


def _json(raw: Any, what: str) -> Any:
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEvent(f"{what} is not UTF-8 text") from None
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadEvent(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    return raw


def _targets(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadEvent(f"{what}.targets must be a target name or a list of target names")
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
            trigger_time=str(data.get("triggerTime") or "") or None,
            alert=_bool(payload.get("alert", True), "timer payload.alert"),
        )
    unknown = set(data) - {"targets", "alert"}
    if unknown:
        raise BadEvent(f"unknown invoke field(s) {', '.join(sorted(unknown))}; expected targets, alert")
    return ProbeRequest(
        "invoke", _targets(data.get("targets"), "invoke"), alert=_bool(data.get("alert", True), "alert")
    )


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadEvent(f"{what} must be true or false")
    return value


def timer_event(trigger_time: str, payload: str = "") -> bytes:
    """An FC-shaped timer event, as `vpcprobe serve` hands it to the handler."""
    return json.dumps({"triggerTime": trigger_time, "triggerName": "probe-timer", "payload": payload}).encode()
