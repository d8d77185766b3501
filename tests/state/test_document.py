"""Validation of the state document: every field's type and the version; the valid entries are kept."""

from __future__ import annotations

import json

import pytest

from shared.alerts.outbox import Outbox
from shared.alerts.policy import VOCABULARY, AlertState, NotificationKind, Severity, TargetState
from shared.alerts.step import _document
from shared.state.document import VERSION, salvage
from tests.alert_fixtures import at, firing


def sound() -> dict:
    """A document as the alert step writes it: two targets, a pending alert, a batch, a channel record."""
    notes = firing(["a"])
    box = Outbox(pending=notes, inflight={"ding": {"ids": [notes[0].id], "msg_id": "m1", "attempts": 1}},
                 channels={"ding": {"sends": [1.5], "blocked_until": None, "last_ok": None, "last_error": "x"}})
    targets = {"a": TargetState(state=AlertState.FIRING, severity=Severity.CRITICAL, since="2026-11-22T01:00:00Z"),
               "b": TargetState()}
    return json.loads(json.dumps(_document(targets, box, at(1))))


def test_a_sound_document_passes_unchanged():
    doc = sound()
    assert salvage(doc, VOCABULARY) == (doc, [])


def test_the_vocabulary_is_the_enums():
    assert VOCABULARY.kinds == {k.value for k in NotificationKind} and "notice" in VOCABULARY.kinds
    assert VOCABULARY.states == {"ok", "pending", "firing"} and VOCABULARY.severities == {"critical", "warning"}


@pytest.mark.parametrize(
    "where, value, problem",
    [
        (("targets",), [], "targets: expected an object, got []"),
        (("targets", "a"), None, "targets.a: expected an object, got None"),
        (("targets", "a", "failures"), "2", "targets.a.failures: expected a whole number >= 0, got '2'"),
        (("targets", "a", "failures"), True, "targets.a.failures: expected a whole number >= 0, got True"),
        (("targets", "a", "failures"), -1, "targets.a.failures: expected a whole number >= 0, got -1"),
        (("targets", "a", "state"), "burning", "targets.a.state: expected one of firing, ok, pending, got 'burning'"),
        (("targets", "a", "severity"), "fatal", "targets.a.severity: expected one of critical, warning"),
        (("targets", "a", "since"), "soon", "targets.a.since: expected an ISO 8601 time, got 'soon'"),
        (("targets", "a", "since"), "2026-11-22T01:00:00", "targets.a.since: expected a time with its UTC offset"),
        (("targets", "a", "unjudged_told"), "yes", "targets.a.unjudged_told: expected true or false"),
        (("pending",), {"id": 1}, "pending: expected a list"),
        (("pending", 0, "kind"), "exploded", "pending[0].kind: expected one of changed, firing, judged, notice"),
        (("pending", 0, "timings"), {"total": "fast"}, "pending[0].timings: total: expected milliseconds"),
        (("pending", 0, "failed"), [1], "pending[0].failed: item 0: expected text, got 1"),
        (("inflight", "ding", "attempts"), "1", "inflight.ding.attempts: expected a whole number >= 0"),
        (("inflight", "ding", "ids"), None, "inflight.ding.ids: expected a list, got None"),
        (("channels", "ding", "blocked_until"), "soon", "channels.ding.blocked_until: expected a number, got 'soon'"),
        (("channels", "ding", "sends"), None, "channels.ding.sends: expected a list, got None"),
        (("channels", "ding", "sends"), [float("nan")], "channels.ding.sends: item 0: expected a number, got nan"),
    ],
)
def test_each_wrong_type_is_named_and_only_its_entry_dropped(where, value, problem):
    doc = sound()
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    clean, problems = salvage(doc, VOCABULARY)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    if where[0] == "targets" and len(where) > 1:
        assert list(clean["targets"]) == ["b"]  # the other target is kept
    if where[0] != "pending":
        assert len(clean["pending"]) == 1


@pytest.mark.parametrize("field", ["id", "target", "kind", "severity", "previous", "status", "at"])
def test_a_pending_notification_missing_a_field_is_dropped(field):
    doc = sound()
    del doc["pending"][0][field]
    clean, problems = salvage(doc, VOCABULARY)
    assert clean["pending"] == [] and problems == [f"pending[0].{field}: missing"]


@pytest.mark.parametrize("version, says", [(None, "has no version"), (2, "has version 2"), ("1", "has version '1'"),
                                           (True, "has version True")])
def test_an_unknown_version_keeps_nothing_and_says_which(version, says):
    doc = sound()
    if version is None:
        del doc["version"]
    else:
        doc["version"] = version
    clean, problems = salvage(doc, VOCABULARY)
    assert clean == {} and problems == [f"version: this vpcprobe reads version {VERSION}, the document {says}"]


def test_a_long_bad_value_is_quoted_short():
    doc = sound()
    doc["targets"]["a"]["status"] = ["x" * 10_000]
    _clean, problems = salvage(doc, VOCABULARY)
    assert len(problems[0]) < 120 and problems[0].endswith("...")
