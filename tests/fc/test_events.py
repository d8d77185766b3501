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


# ------------------------------------------------------------------ issue 11: hostile events


def bad_event_message(event) -> str:
    with pytest.raises(BadEvent) as info:
        parse_probe_event(event)
    return str(info.value)


def test_an_event_nested_1000_levels():
    # Python 3.10/3.11 stop reading at ~1000 levels, 3.12 reads it and finds no object: either is a BadEvent.
    refusals = ("event nests too deep", "event must be a JSON object, got list")
    assert bad_event_message(b"[" * 1000 + b"]" * 1000) in refusals
    assert bad_event_message(b"[" * 5000 + b"]" * 5000) == "event nests too deep"
    assert bad_event_message(b'{"targets": ' + b"[" * 5000 + b"]" * 5000 + b"}") == "event nests too deep"
    payload = "[" * 5000 + "]" * 5000
    assert bad_event_message(timer_event("2026-01-01T00:00:00Z", payload)) == "timer payload nests too deep"


@pytest.mark.parametrize("event", [b"9" * 4400, b'{"targets": ' + b"9" * 4400 + b"}"])
def test_an_integer_of_over_4300_digits(event):
    assert bad_event_message(event) == "event holds a number too long to read (over 4300 digits)"


def test_an_event_over_a_megabyte():
    event = json.dumps({"targets": ["a"] * 300_000}).encode()
    assert bad_event_message(event) == "event is over 1024 KiB; a probe event names targets, nothing more"


def test_target_names_are_bounded_like_the_config_s():
    assert "1-63 characters each" in bad_event_message(json.dumps({"targets": ["x" * 64]}).encode())
    assert parse_probe_event(json.dumps({"targets": ["x" * 63]}).encode()).targets == ["x" * 63]


def test_many_unknown_fields_are_listed_briefly():
    event = json.dumps({f"field{i:04}" + "y" * 100: 1 for i in range(1000)}).encode()
    message = bad_event_message(event)
    assert message.startswith("unknown invoke field(s) field0000yyyy") and message.endswith(
        " and 995 more; expected targets, alert"
    )
    assert len(message) < 300


@pytest.mark.parametrize("trigger_time", [5, ["t"], "t" * 65])
def test_trigger_time_must_be_a_short_string(trigger_time):
    event = json.dumps({"triggerTime": trigger_time, "payload": ""}).encode()
    assert bad_event_message(event).startswith("triggerTime must be a time such as 2026-11-22T07:49:00Z")


def test_a_non_utf8_event_names_the_byte():
    assert bad_event_message(b'{"targets": "\xff"}') == "event is not UTF-8 text (byte 0xff at offset 13)"


def test_a_mapping_with_keys_of_mixed_types():
    assert "unknown invoke field(s) 1, b" in bad_event_message({1: 2, "b": 3})
