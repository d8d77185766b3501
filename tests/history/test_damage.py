"""Damage: a raw line cut short is skipped (and does not swallow the next round); a damaged latest.json or
day object is a HistoryError naming it when read, and is replaced, with a log line, on the next write."""

from __future__ import annotations

import json
import re

import pytest

from shared.history.errors import HistoryError
from shared.history.objects import LATEST, raw_name
from shared.history.record import record_round
from shared.history.view import read_view
from tests.history.conftest import T0, probe

HOUR = 3600
RAW = raw_name(int(T0))
DAY_OBJECT = "history/hourly/20261202.json"


def log_events(capsys) -> list[dict]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


def test_a_line_cut_short_is_skipped_and_the_next_round_survives(store):
    record_round(store, [probe("a")], now=T0 + 60)
    full = store.get_object(RAW)
    store.append_object(RAW, full[: len(full) // 2])  # a crash mid-append (a full disk, a killed process)
    record_round(store, [probe("a", "down")], now=T0 + 120)
    store.append_object(RAW, b'\n{"at": 1, "targets": ["a"], "status": "uu", "total_ms": [], "ttfb_ms": [], '
                             b'"code": [], "zones": []}')  # JSON, but its columns disagree
    record_round(store, [probe("a")], now=T0 + 180)
    points = read_view(store, now=T0 + 200).targets[0].points
    assert [(p.at - T0, p.status.value) for p in points] == [(60, "up"), (120, "down"), (180, "up")]
    report = record_round(store, [probe("a")], now=T0 + HOUR + 1)
    assert (report.rolled_hours, report.skipped_lines) == (1, 2)
    assert read_view(store, now=T0 + 25 * HOUR + 1).targets[0].hours[0].rounds == 3


@pytest.mark.parametrize(
    "damage,fault",
    [
        (b'{"version": 1, "round_at": nul', "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"version": 7, "round_at": null, "pending": [], "hourly": {}, "targets": {}}', "version '7'"),
        (b'{"version": 1, "round_at": null, "pending": [], "hourly": {}, "targets": {"a": {"status": "sideways", '
         b'"since": 1, "at": 1, "result": {}}}}', "targets['a'].status is not a status"),
        (b'{"version": 1, "round_at": null, "pending": [], "hourly": {}, "targets": {"a": {"status": "up", '
         b'"since": 1, "at": 1, "result": {"kind": "eas"}}}}', "targets['a'].result.url is not text"),
        (b'{"version": 1, "round_at": "soon", "pending": [], "hourly": {}, "targets": {}}', "round_at"),
        (b'{"version": 1, "round_at": null, "pending": [], "hourly": {}, "targets": {"a": {"status": "up", '
         b'"since": 1e300, "at": 1, "result": {"kind": "eas", "url": "http://x"}}}}', "targets['a'].since is not"),
        (b'{"version": 1, "round_at": null, "pending": ["x"], "hourly": {}, "targets": {}}', "pending"),
    ],
)
def test_a_damaged_latest_is_named_when_read_and_replaced_when_written(store, capsys, damage, fault):
    record_round(store, [probe("a"), probe("b")], now=T0 + 60)
    store.put_object(LATEST, damage)
    with pytest.raises(HistoryError, match=f"history object history/latest.json is damaged: .*{re.escape(fault)}"):
        read_view(store, now=T0 + 60)
    record_round(store, [probe("b", "down")], now=T0 + 120)
    replaced = [e for e in log_events(capsys) if e["event"] == "history_object_replaced"]
    assert [e["object"] for e in replaced] == [LATEST] and fault.split()[0] in replaced[0]["error"]
    (b,) = read_view(store, now=T0 + 120).targets  # latest.json starts over from this round
    assert [p.status.value for p in b.points] == ["up", "down"]  # the raw hour kept both rounds
    assert b.since == "2026-12-02T10:02:00.000Z"


def test_a_rebuilt_latest_still_rolls_up_and_lists_the_days(store):
    record_round(store, [probe("a")], now=T0 + 60)
    record_round(store, [probe("a")], now=T0 + HOUR + 60)  # rolls 10:00 into the day object
    record_round(store, [probe("a")], now=T0 + HOUR + 120)
    store.put_object(LATEST, b"garbage")
    report = record_round(store, [probe("a")], now=T0 + 2 * HOUR + 60)  # all raw hours pending again
    assert report.rolled_hours == 2
    hours = read_view(store, now=T0 + 27 * HOUR).targets[0].hours
    assert [(h.hour - T0, h.rounds) for h in hours] == [(0, 1), (HOUR, 2)]


@pytest.mark.parametrize(
    "damage,fault",
    [
        (b"\x00\x01", "not JSON"),
        (b'{"version": 1, "hours": {"36000": {"targets": ["a"]}}}', "lacks or adds columns"),
        (b'{"version": 1, "hours": {"12": {}}}', "not an hour"),
        (b'{"version": 1, "hours": {"1796205600": {"targets": ["a", "b"], "rounds": [1], "up_rounds": [1], '
         b'"p50_ms": [1], "p95_ms": [1], "worst_code": [null]}}}', "uneven columns"),
        (b'{"version": 1, "hours": {"1796205600": {"targets": ["a"], "rounds": ["1"], "up_rounds": [1], '
         b'"p50_ms": [1], "p95_ms": [1], "worst_code": [null]}}}', "wrong type"),
    ],
)
def test_a_damaged_day_object_is_named_when_read_and_replaced_when_written(store, capsys, damage, fault):
    record_round(store, [probe("a")], now=T0 + 60)
    record_round(store, [probe("a")], now=T0 + HOUR + 60)
    store.put_object(DAY_OBJECT, damage)
    with pytest.raises(HistoryError, match=f"history object {DAY_OBJECT} is damaged: .*{re.escape(fault)}"):
        read_view(store, now=T0 + 26 * HOUR)
    record_round(store, [probe("a")], now=T0 + 2 * HOUR + 60)  # rolls 11:00 into the same day: replaced
    assert DAY_OBJECT in [e.get("object") for e in log_events(capsys) if e["event"] == "history_object_replaced"]
    hours = read_view(store, now=T0 + 27 * HOUR).targets[0].hours
    assert [h.hour - T0 for h in hours] == [HOUR]  # 10:00's aggregate went with the damaged object
