"""Hourly aggregates checked against hand-computed values, the uptime rules, and pruning at 24 h / 30 days
(the clock is moved, never slept on)."""

from __future__ import annotations

import pytest

from shared.history.aggregate import nearest_rank, worst_code
from shared.history.objects import HOURLY_PREFIX, RAW_PREFIX
from shared.history.record import record_round
from shared.history.view import HourPoint, read_view
from shared.verdict.codes import Code
from shared.verdict.status import Status
from tests.history.conftest import T0, probe

HOUR, DAY = 3600, 86400

# Target a, one hour, 13 rounds 4 minutes apart: 8 up, 1 degraded, 3 down, 1 unknown.
A_ROUNDS = [("up", float(t), None) for t in (80, 10, 70, 20, 60, 30, 50, 40)] + [
    ("degraded", 200.0, Code.ZONES_DOWN),
    ("down", 1.0, Code.CONNECT_REFUSED),
    ("down", 2000.0, Code.READ_TIMEOUT),
    ("down", 2000.0, Code.READ_TIMEOUT),
    ("unknown", None, Code.PROBER_OVERLOADED),
]
# By hand: known rounds 12 (unknown left out), available 9 (up + degraded): 75 %. The available totals
# sorted are 10..80, 200 (n = 9): nearest rank p50 = the 5th = 50, p95 = the 9th = 200. Worst: the down
# rounds' most frequent code, read_timeout (2) over connect_refused (1).
A_HOUR = HourPoint(T0, 12, 9, 50.0, 200.0, "read_timeout")
# Target b is in 3 of those rounds (partial rounds): degraded 300 and 100, then unknown. Worst: degraded's
# `slow` outranks unknown's `prober_overloaded`; p50 = 1st of [100, 300], p95 = 2nd.
B_ROUNDS = {0: ("degraded", 300.0, Code.SLOW), 1: ("degraded", 100.0, Code.SLOW), 2: ("unknown", None, None)}
B_HOUR = HourPoint(T0, 2, 2, 100.0, 300.0, "slow")


def record_hour(store) -> None:
    for i, (status, total, code) in enumerate(A_ROUNDS):
        results = [probe("a", status, total, code=code)]
        if i in B_ROUNDS:
            b_status, b_total, b_code = B_ROUNDS[i]
            results.append(probe("b", b_status, b_total, code=b_code))
        record_round(store, results, now=T0 + 240 * i + 30)


def test_a_finished_hour_rolls_up_to_hand_computed_figures(store):
    record_hour(store)
    report = record_round(store, [probe("a"), probe("b")], now=T0 + HOUR + 60)  # the first round of the next hour
    assert (report.rolled_hours, report.objects_written, report.skipped_lines) == (1, 3, 0)
    now = T0 + 25 * HOUR + 30  # the hour is older than 24 h now: only its aggregate shows
    view = read_view(store, now=now)
    a, b = view.targets
    assert tuple(a.hours) == (A_HOUR,) and tuple(b.hours) == (B_HOUR,)
    assert len(a.points) == 1 and a.points[0].status == Status.UP  # the next hour's round, 24 h ago
    assert a.uptime == {"24h": 100.0, "7d": pytest.approx(100 * 10 / 13, abs=0.001), "30d": pytest.approx(76.923)}
    assert b.uptime == {"24h": 100.0, "7d": 100.0, "30d": 100.0}
    assert view.full_dict()["targets"][0]["hours"] == [[T0, 12, 9, 50.0, 200.0, "read_timeout"]]


def test_within_24_hours_uptime_comes_from_the_points(store):
    record_hour(store)
    a, b = read_view(store, now=T0 + HOUR).targets
    assert len(a.hours) == 0 and len(a.points) == 13
    assert a.uptime == {"24h": 75.0, "7d": 75.0, "30d": 75.0}  # unknown left out: 9 of 12
    assert b.uptime["24h"] == 100.0  # degraded counts as available


def test_a_target_with_only_unknown_rounds_has_no_uptime(store):
    record_round(store, [probe("a", "unknown", None, code=Code.PROBER_OVERLOADED)], now=T0 + 60)
    (a,) = read_view(store, now=T0 + 60).targets
    assert a.uptime == {"24h": None, "7d": None, "30d": None}
    assert [p.status for p in a.points] == [Status.UNKNOWN]


@pytest.mark.parametrize(
    "values,p50,p95",
    [([], None, None), ([7.0], 7.0, 7.0), ([1.0, 2.0], 1.0, 2.0), ([float(v) for v in range(1, 21)], 10.0, 19.0)],
)
def test_nearest_rank(values, p50, p95):
    assert (nearest_rank(values, 0.5), nearest_rank(values, 0.95)) == (p50, p95)


def test_worst_code_prefers_severity_then_frequency_then_name():
    up, down, degraded, unknown = Status.UP, Status.DOWN, Status.DEGRADED, Status.UNKNOWN
    assert worst_code([(up, None)]) is None
    assert worst_code([(degraded, "slow"), (degraded, "slow"), (down, "connect_refused")]) == "connect_refused"
    assert worst_code([(unknown, "prober_overloaded"), (degraded, "slow")]) == "slow"
    assert worst_code([(down, "read_timeout"), (down, "connect_refused")]) == "connect_refused"


def test_raw_hours_are_pruned_after_24_hours_and_days_after_30(store):
    for k in range(26):
        record_round(store, [probe("a"), *([probe("gone")] if k == 0 else [])], now=T0 + k * HOUR + 60)
    raw = store.list_objects(RAW_PREFIX)
    assert raw[0] == "history/raw/2026120211.jsonl" and len(raw) == 25  # 10:00 ended more than 24 h ago
    assert store.list_objects(HOURLY_PREFIX) == ["history/hourly/20261202.json", "history/hourly/20261203.json"]
    view = read_view(store, now=T0 + 25 * HOUR + 60)
    assert [h.hour for h in view.targets[0].hours] == [T0]
    assert [t.target for t in view.targets] == ["a", "gone"]

    now = T0 + 31 * DAY
    report = record_round(store, [probe("a")], now=now)
    assert report.pruned == 25 + 1  # every raw hour but the current one, and the day 2026-12-02
    assert store.list_objects(RAW_PREFIX) == ["history/raw/2027010210.jsonl"]
    assert store.list_objects(HOURLY_PREFIX) == ["history/hourly/20261203.json"]
    view = read_view(store, now=now)
    assert [t.target for t in view.targets] == ["a"]  # silent for 30 days: dropped from latest.json
    # Hours that begin 30 days ago or later: 2026-12-03 10:00 and 11:00 (the hour of 10:00 rolled in 11:00)
    assert [h.hour - T0 for h in view.targets[0].hours] == [24 * HOUR, 25 * HOUR]
    assert view.targets[0].uptime == {"24h": 100.0, "7d": 100.0, "30d": 100.0}


def test_a_later_roll_up_into_the_same_day_is_read_after_a_cached_read(store):
    record_round(store, [probe("a", "down")], now=T0 + 60)
    record_round(store, [probe("a")], now=T0 + HOUR + 60)  # rolls 10:00 into 2026-12-02
    now = T0 + 26 * HOUR
    assert [h.up_rounds for h in read_view(store, now=now).targets[0].hours] == [0]
    record_round(store, [probe("a")], now=T0 + 2 * HOUR + 60)  # rolls 11:00 into the same day object
    assert [h.up_rounds for h in read_view(store, now=now + HOUR).targets[0].hours] == [0, 1]
