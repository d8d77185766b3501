"""FC event parsing: the sample events in events/, and bad events with clear errors."""

import json
from pathlib import Path

import pytest

from shared.fc.events import BadEvent, parse_probe_event, timer_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_sample_timer_event():
    req = parse_probe_event((EVENTS / "timer.json").read_bytes())
    assert (req.source, req.targets, req.trigger_time) == ("timer", None, "2026-11-22T07:49:00Z")


def test_timer_payload_names_targets():
    req = parse_probe_event((EVENTS / "timer-targets.json").read_bytes())
    assert req.targets == ["llm-eas-vpc"]


def test_sample_invoke_event():
    req = parse_probe_event((EVENTS / "invoke.json").read_bytes())
    assert (req.source, req.targets, req.alert) == ("invoke", ["qwen-privatelink"], False)


@pytest.mark.parametrize("event", [b"", b"{}", None, {}])
def test_empty_invoke_means_all_targets(event):
    assert parse_probe_event(event).targets is None


def test_timer_event_builder_round_trips():
    req = parse_probe_event(timer_event("2026-01-01T00:00:00Z", json.dumps({"targets": "a"})))
    assert (req.source, req.targets) == ("timer", ["a"])


@pytest.mark.parametrize(
    "event,message",
    [
        (b"{not json", "event is not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"targets": 5}', "targets must be a target name or a list"),
        (b'{"target": "a"}', "unknown invoke field(s) target"),
        (b'{"alert": "yes"}', "alert must be true or false"),
        (json.dumps({"triggerTime": "t", "payload": "{oops"}).encode(), "timer payload is not valid JSON"),
        (json.dumps({"triggerTime": "t", "payload": "[1]"}).encode(), "timer payload must be empty or a JSON object"),
    ],
)
def test_bad_events(event, message):
    with pytest.raises(BadEvent) as info:
        parse_probe_event(event)
    assert message in str(info.value)
