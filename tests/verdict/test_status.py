"""Status: up, degraded, down, unknown, as plain strings wherever they are written."""

from __future__ import annotations

import json

from shared.verdict.status import Status


def test_values():
    assert [s.value for s in Status] == ["up", "degraded", "down", "unknown"]


def test_json_round_trip():
    text = json.dumps({"status": Status.DEGRADED, "counts": {Status.UP: 1}})
    assert text == '{"status": "degraded", "counts": {"up": 1}}'
    assert Status(json.loads(text)["status"]) is Status.DEGRADED


def test_prints_and_compares_as_its_value():
    assert (f"{Status.DOWN}", str(Status.DOWN), Status.DOWN.upper()) == ("down", "down", "DOWN")
    assert Status.DOWN == "down" and Status.UP != "down"
    assert {"down": 2}.get(Status.DOWN) == 2
