"""Recording rounds and reading them back, on the file store and on OSS (the real oss2 client, loopback fake)."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.history.objects import LATEST, raw_name
from shared.history.record import record_round, record_with_lease
from shared.history.view import Point, read_view
from shared.state.oss import OssStore
from shared.state.store import StoreError
from shared.verdict.codes import Code
from shared.verdict.status import Status
from tests.history.conftest import OSS_ENV, T0, probe


def test_an_empty_store_is_an_empty_view(store):
    view = read_view(store, now=T0)
    assert (view.targets, view.round_at, view.generated_at) == ((), None, "2026-12-02T10:00:00.000Z")
    assert view.full_dict()["targets"] == [] and view.summary_dict(T0)["targets"] == []


def test_rounds_come_back_as_points_latest_and_since(store):
    record_round(store, [probe("a", total=11.0, tls_days_left=40), probe("b", "down", None, ttfb=None)], now=T0 + 60)
    record_round(store, [probe("a", "degraded", 250.0, ttfb=240.0, code=Code.SLOW), probe("b", "down")], now=T0 + 120)
    record_round(store, [probe("a", "degraded", 260.0, code=Code.SLOW, zones="ud"), probe("b", "up")], now=T0 + 180)
    view = read_view(store, now=T0 + 200)
    assert view.round_at == "2026-12-02T10:03:00.000Z"
    a, b = view.targets
    assert (a.target, a.kind, b.target) == ("a", "dashscope", "b")
    assert tuple(a.points) == (
        Point(T0 + 60, Status.UP, 11.0, 3.0, None),
        Point(T0 + 120, Status.DEGRADED, 250.0, 240.0, "slow"),
        Point(T0 + 180, Status.DEGRADED, 260.0, 3.0, "slow"),
    )
    assert [p.status for p in b.points] == [Status.DOWN, Status.DOWN, Status.UP]
    assert (b.points[0].total_ms, b.points[0].code) == (None, "connect_refused")
    assert a.since == "2026-12-02T10:02:00.000Z"  # the first round of the current status
    assert b.since == "2026-12-02T10:03:00.000Z"
    assert a.latest == probe("a", "degraded", 260.0, code=Code.SLOW, zones="ud").to_dict() | {
        "checked_at": a.latest["checked_at"]
    }
    assert [x["status"] for x in a.latest["addresses"]] == ["up", "down"]
    assert a.url.startswith("http://ep-a.") and a.tls_days_left is None  # the latest result's figure
    assert b.uptime == {"24h": pytest.approx(100 / 3, abs=0.001), "7d": pytest.approx(33.333), "30d": 33.333}
    assert a.uptime == {"24h": 100.0, "7d": 100.0, "30d": 100.0}  # degraded counts as available


def test_the_raw_line_keeps_per_address_status(file_store):
    record_round(file_store, [probe("a", "degraded", zones="ud"), probe("b", zones="uuu")], now=T0 + 1)
    line = json.loads(file_store.get_object(raw_name(int(T0))).strip())
    assert line == {
        "at": T0 + 1,
        "targets": ["a", "b"],
        "status": "gu",
        "total_ms": [5.0, 5.0],
        "ttfb_ms": [3.0, 3.0],
        "code": ["zones_down", None],
        "zones": ["ud", "uuu"],
    }


def test_a_partial_round_updates_only_its_targets(store):
    record_round(store, [probe("a"), probe("b", "down")], now=T0 + 60)
    record_round(store, [probe("b", "down"), probe("c")], now=T0 + 120)
    record_round(store, [probe("a", "down")], now=T0 + 180)
    view = read_view(store, now=T0 + 200)
    by_name = {t.target: t for t in view.targets}
    assert [p.at - T0 for p in by_name["a"].points] == [60, 180]
    assert [p.at - T0 for p in by_name["b"].points] == [60, 120]
    assert [p.at - T0 for p in by_name["c"].points] == [120]
    assert by_name["b"].since == "2026-12-02T10:01:00.000Z" and by_name["b"].latest["status"] == "down"
    assert by_name["a"].since == "2026-12-02T10:03:00.000Z" and by_name["a"].latest["status"] == "down"


def test_order_names_and_sorts_the_targets(store):
    record_round(store, [probe("b"), probe("a"), probe("c")], now=T0 + 60)
    assert [t.target for t in read_view(store, now=T0 + 60).targets] == ["a", "b", "c"]
    view = read_view(store, now=T0 + 60, order=["c", "gone-from-history", "a"])
    assert [t.target for t in view.targets] == ["c", "a"]


def test_a_round_writes_its_line_and_latest_not_the_hour(file_store):
    """Bytes per round stay those of the round: the hour object grows by the line, latest.json is replaced."""
    results = [probe(f"t{i}") for i in range(20)]
    reports = [record_round(file_store, results, now=T0 + 60 * m + 0.5) for m in range(30)]
    raw = file_store.get_object(raw_name(int(T0)))
    line = len(raw) // 30
    assert len(raw) == 30 * line  # every round's line is the same size
    last = reports[-1]
    assert (last.objects_written, last.rolled_hours, last.pruned) == (2, 0, 0)
    assert last.bytes_written == line + len(file_store.get_object(LATEST))
    assert reports[1].bytes_written == last.bytes_written
    assert 0 <= last.ms < 60_000


def test_full_dict_is_json_with_every_point_and_status_as_text(store):
    record_round(store, [probe("a", "down")], now=T0 + 60)
    doc = json.loads(json.dumps(read_view(store, now=T0 + 60).full_dict()))
    (target,) = doc["targets"]
    assert doc["fields"] == {"points": ["at", "status", "total_ms", "ttfb_ms", "code"],
                             "hours": ["hour", "rounds", "up_rounds", "p50_ms", "p95_ms", "worst_code"]}
    assert target["points"] == [[T0 + 60, "down", 5.0, 3.0, "connect_refused"]]
    assert (target["status"], target["since"], target["hours"]) == ("down", "2026-12-02T10:01:00.000Z", [])
    assert target["latest"]["status"] == "down" and "slots" not in target


def test_summary_dict_is_what_the_page_shows_with_the_day_as_slots(store):
    record_round(store, [probe("a", "up", 40.0)], now=T0 + 60)
    record_round(store, [probe("a", "down", 2.0)], now=T0 + 120)
    record_round(store, [probe("a", "degraded", 90.0)], now=T0 + 180)
    doc = json.loads(json.dumps(read_view(store, now=T0 + 200).summary_dict(T0 + 200)))
    (target,) = doc["targets"]
    assert doc["fields"] == {"slots": ["at", "total_ms", "status"]}
    assert "points" not in target and "hours" not in target
    assert (target["status"], target["since"], target["uptime"]["24h"]) == (
        "degraded", "2026-12-02T10:03:00.000Z", pytest.approx(66.667))
    assert target["latest"]["diagnosis"]["code"] == "zones_down"
    # three rounds: one slot each, a down round's total is not latency
    assert target["slots"]["slots"] == [[T0 + 60, 40.0, "up"], [T0 + 120, None, "down"], [T0 + 180, 90.0, "degraded"]]
    assert (target["slots"]["slot_s"], target["slots"]["start"], target["slots"]["end"]) == (None, T0 + 60, T0 + 200)


def test_a_failing_store_is_a_store_error(oss):
    store = OssStore(oss.bucket, oss.endpoint, f"history-{uuid.uuid4().hex[:8]}/", environ=OSS_ENV)
    record_round(store, [probe("a")], now=T0 + 60)
    oss.fail_next = 500
    with pytest.raises(StoreError, match="GetObject history-.*/history/latest.json failed: HTTP 500"):
        read_view(store, now=T0 + 60)
    oss.fail_next = 503
    with pytest.raises(StoreError, match="HTTP 503"):
        record_round(store, [probe("a")], now=T0 + 120)


def test_with_lease_records_only_when_the_lease_is_free(file_store):
    assert file_store.acquire_lease("the alert step", 60)
    assert record_with_lease(file_store, [probe("a")], 60) is None
    assert read_view(file_store, now=T0).targets == ()
    file_store.release("the alert step")
    report = record_with_lease(file_store, [probe("a")], 60)
    assert report is not None and report.objects_written == 2
    assert file_store.acquire_lease("next", 60)  # released again after recording


def test_a_new_round_in_the_current_hour_is_seen_after_a_cached_read(store):
    for m in range(3):
        record_round(store, [probe("a")], now=T0 - 3600 + 60 * m)  # the previous hour, finished by the reads
    record_round(store, [probe("a")], now=T0 + 60)
    assert len(read_view(store, now=T0 + 3000).targets[0].points) == 4
    record_round(store, [probe("a", "down")], now=T0 + 120)
    points = read_view(store, now=T0 + 3000).targets[0].points
    assert [p.status for p in points] == [Status.UP] * 4 + [Status.DOWN]


def test_rounds_from_writers_with_skewed_clocks_come_back_in_time_order(store):
    record_round(store, [probe("a", "down"), probe("b")], now=T0 + 120)
    record_round(store, [probe("a"), probe("b", "down")], now=T0 + 60)  # another instance, its clock behind
    for now in (T0 + 200, T0 + 2 * 3600):  # the current hour, then the same hour parsed once for the cache
        a, b = read_view(store, now=now).targets
        assert [(p.at - T0, p.status.value) for p in a.points] == [(60, "up"), (120, "down")]
        assert [(p.at - T0, p.status.value) for p in b.points] == [(60, "down"), (120, "up")]
