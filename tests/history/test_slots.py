"""The 24 h as slots (history/slots.py), what the page draws and /status.json sends, and the columns under it."""

from __future__ import annotations

import json

import pytest

from shared.history.columns import HourPoint, Hours, Point, Series
from shared.history.slots import SLOTS, Slot, day_slots
from shared.verdict.status import Status

NOW = 1_790_000_000.0
DAY = 86400.0


def minutely(n: int, *, status=lambda i: Status.UP, total=lambda i: 20.0) -> Series:
    return Series.of(Point(NOW - (n - 1 - i) * 60.0, status(i), total(i), 1.0, None) for i in range(n))


def test_few_rounds_are_a_slot_each_and_a_down_round_is_no_latency() -> None:
    series = minutely(4, status=lambda i: [Status.UP, Status.DOWN, Status.UNKNOWN, Status.DEGRADED][i],
                      total=lambda i: 10.0 * (i + 1))
    day = day_slots(series, NOW)
    assert day is not None and day.slot_s is None
    assert day.slots == (Slot(NOW - 180, 10.0, Status.UP), Slot(NOW - 120, None, Status.DOWN),
                         Slot(NOW - 60, 30.0, Status.UNKNOWN), Slot(NOW, 40.0, Status.DEGRADED))
    assert (day.start, day.end, day.gap_s) == (NOW - 180, NOW, 150.0)  # 2.5 x the median spacing


def test_a_day_of_minutely_rounds_is_120_slots_of_the_slowest_and_the_worst() -> None:
    statuses = {100: Status.DEGRADED, 101: Status.DOWN, 700: Status.UNKNOWN}
    totals = {100: 900.0, 101: 5000.0, 102: 300.0}
    series = minutely(1440, status=lambda i: statuses.get(i, Status.UP), total=lambda i: totals.get(i, 20.0 + i % 3))
    day = day_slots(series, NOW)
    assert day is not None and day.slot_s == pytest.approx((DAY - 0) / SLOTS, rel=0.01)
    assert len(day.slots) == SLOTS and day.gap_s == 2 * day.slot_s
    worst = {i: s.status for i, s in enumerate(day.slots) if s.status is not Status.UP}
    # rounds 100-102 fall in one 12-minute slot: degraded and down rounds there, the down round's 5 s left out
    assert len(worst) == 2 and Status.DOWN in worst.values() and Status.UNKNOWN in worst.values()
    down_slot = day.slots[next(i for i, s in worst.items() if s is Status.DOWN)]
    assert down_slot.total_ms == 900.0
    assert max(s.total_ms for s in day.slots) == 900.0
    assert sorted(s.total_ms for s in day.slots)[:110] == [22.0] * 110  # every other slot: its slowest round
    ats = [s.at for s in day.slots]
    assert ats == sorted(ats) and day.start < ats[0] and ats[-1] < NOW


def test_rounds_older_than_a_day_are_left_out_and_no_recent_round_is_none() -> None:
    old = Series.of([Point(NOW - DAY - 60, Status.DOWN, 1.0, None, "x")])
    assert day_slots(old, NOW) is None
    assert day_slots(Series(), NOW) is None
    mixed = Series.joined([old, minutely(2)])
    day = day_slots(mixed, NOW)
    assert day is not None and [s.status for s in day.slots] == [Status.UP, Status.UP]


def test_slots_to_dict_is_json_rows() -> None:
    day = day_slots(minutely(2, status=lambda i: Status.DOWN if i else Status.UP), NOW)
    assert day is not None
    assert json.loads(json.dumps(day.to_dict())) == {
        "start": NOW - 60, "end": NOW, "slot_s": None, "gap_s": 150.0,
        "slots": [[NOW - 60, 20.0, "up"], [NOW, None, "down"]]}


def test_series_round_trips_points_and_cuts_by_time() -> None:
    points = [Point(10.0, Status.UP, 1.0, 0.5, None), Point(20.0, Status.DOWN, None, None, "connect_refused"),
              Point(30.0, Status.DEGRADED, 3.0, 2.0, "slow")]
    series = Series.of(points)
    assert list(series) == points and series[1] == points[1] and len(series) == 3
    assert series.status == "udg" and series.counts() == (2, 3)
    assert list(series.between(10.0, 30.0)) == points[1:]  # start excluded, end included
    assert list(series.between(0.0, 25.0)) == points[:2]
    assert series.between(0.0, 30.0) is series
    assert Series.joined([series[:1], series[1:]]) == series and Series.joined([Series(), series]) == series
    assert series.rows()[1] == [20.0, "down", None, None, "connect_refused"]
    with pytest.raises(ValueError, match="5 columns of one length"):
        Series((1.0,), "uu", (1.0,), (1.0,), (None,))


def test_hours_sum_and_cut_including_the_start() -> None:
    hours = Hours((0.0, 3600.0, 7200.0), (60, 60, 30), (60, 50, 0), (1.0, 2.0, None), (2.0, 3.0, None),
                  (None, "slow", "connect_refused"))
    assert hours.sums() == (110, 150)
    assert [h.hour for h in hours.between(3600.0, 7200.0, from_start=True)] == [3600.0, 7200.0]
    assert hours[1] == HourPoint(3600.0, 60, 50, 2.0, 3.0, "slow")
    assert hours.rows()[2] == [7200.0, 30, 0, None, None, "connect_refused"]
