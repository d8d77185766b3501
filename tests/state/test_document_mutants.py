"""salvage's edges: a document without optional sections is sound, a bad `updated_at` is dropped,
times need their UTC offset (Z included), and every problem quotes the value it refused."""

from __future__ import annotations

import pytest

from shared.alerts.policy import VOCABULARY
from shared.state.document import VERSION, salvage

SECTIONS = {"targets": {}, "inflight": {}, "channels": {}, "pending": []}
EMPTY = {"version": VERSION, "updated_at": None, **SECTIONS}  # no updated_at reads as None


def test_a_document_with_only_its_version_is_sound():
    assert salvage({"version": VERSION}, VOCABULARY) == (EMPTY, [])


@pytest.mark.parametrize("moment", ["2026-11-22T01:00:00Z", "2026-11-22T01:00:00+08:00"])
def test_updated_at_with_its_offset_is_kept(moment):
    assert salvage({"version": VERSION, "updated_at": moment}, VOCABULARY) == ({**EMPTY, "updated_at": moment}, [])


@pytest.mark.parametrize("moment", ["soon", "2026-11-22T01:00:00", 5])
def test_a_bad_updated_at_is_dropped(moment):
    clean, _ = salvage({"version": VERSION, "updated_at": moment}, VOCABULARY)
    assert clean == {"version": VERSION, **SECTIONS}


@pytest.mark.parametrize(
    "since,problem",
    [
        (5, "targets.a.since: expected an ISO 8601 time, got 5"),
        ("soon", "targets.a.since: expected an ISO 8601 time, got 'soon'"),
        ("2026-11-22T01:00:00", "targets.a.since: expected a time with its UTC offset, got '2026-11-22T01:00:00'"),
    ],
)
def test_a_bad_time_is_named_with_its_value(since, problem):
    doc = {"version": VERSION, "targets": {"a": {"state": "ok", "since": since}}}
    assert salvage(doc, VOCABULARY) == (EMPTY, [problem])


def test_a_target_that_is_not_an_object_is_named_with_its_value():
    doc = {"version": VERSION, "targets": {"a": 5}}
    assert salvage(doc, VOCABULARY) == (EMPTY, ["targets.a: expected an object, got 5"])


def test_pending_that_is_not_a_list_is_named_with_its_value():
    doc = {"version": VERSION, "pending": "x"}
    assert salvage(doc, VOCABULARY) == (EMPTY, ["pending: expected a list, got 'x'"])
