"""Rules of the alert state machine that a planted bug slipped past: reminders inside a maintenance
window, windows that cross midnight or skip weekdays, per-target policies, and notification ids that
are unique per incident and per reminder."""

from __future__ import annotations

from datetime import time, timedelta

from shared.alerts.policy import NotificationKind as Kind
from shared.alerts.policy import Policy, Severity, Window, decide
from tests.alert_fixtures import T0, at, result

HOURLY = Policy(repeat_interval_s=3600.0)


def rounds(statuses, *, minutes, policy=HOURLY, windows=(), name="qwen", state=None):
    """One round per (status, minute); returns the state and [(minute, notification)]."""
    state = state if state is not None else {}
    notes = []
    for status, minute in zip(statuses, minutes):
        now = at(minute)
        state, out = decide([result(name, status, now)], state, now, policy=policy, windows=windows)
        notes += [(minute, n) for n in out]
    return state, notes


def test_reminders_are_muted_inside_a_window_and_resume_after_it():
    window = Window("upgrade", start=at(30), end=at(150))
    minutes = [0, 1, 61, 121, 151, 211]
    _, notes = rounds(["down"] * 6, minutes=minutes, windows=(window,))
    assert [(m, n.kind) for m, n in notes] == [(1, Kind.NEW), (151, Kind.REMINDER), (211, Kind.REMINDER)]


def test_a_reminder_is_due_exactly_at_the_interval():
    _, notes = rounds(["down"] * 4, minutes=[0, 1, 60.9, 61])
    assert [(m, n.kind) for m, n in notes] == [(1, Kind.NEW), (61, Kind.REMINDER)]


def test_no_reminders_without_an_interval():
    _, notes = rounds(["down"] * 4, minutes=[0, 1, 61, 600], policy=Policy(repeat_interval_s=None))
    assert [n.kind for _, n in notes] == [Kind.NEW]


def test_a_daily_window_crossing_midnight_mutes_after_midnight_too():
    # T0 is 2026-11-22 01:00 UTC, a Sunday; the window opens daily at 23:30 UTC for 2 hours
    assert T0.weekday() == 6 and (T0.hour, T0.minute) == (1, 0)
    window = Window("nightly", daily=time(23, 30), duration=timedelta(hours=2))
    assert window.active(at(0)) and window.active(at(29)) and not window.active(at(30))
    assert not window.active(at(-91)) and window.active(at(-90))
    _, notes = rounds(["down"] * 3, minutes=[0, 1, 31], windows=(window,))
    assert [(m, n.kind, n.maintenance) for m, n in notes] == [(31, Kind.NEW, "nightly")]


def test_a_window_on_other_weekdays_does_not_mute():
    sunday_night = Window("sun", daily=time(0, 0), duration=timedelta(hours=3), days=(6,))
    monday_night = Window("mon", daily=time(0, 0), duration=timedelta(hours=3), days=(0,))
    saturday_late = Window("sat", daily=time(23, 0), duration=timedelta(hours=3), days=(5,))
    assert sunday_night.active(at(0)) and not monday_night.active(at(0))
    assert saturday_late.active(at(0)) and not saturday_late.active(at(60))  # open until 02:00 Sunday
    _, notes = rounds(["down"] * 2, minutes=[0, 1], windows=(monday_night,))
    assert [n.kind for _, n in notes] == [Kind.NEW]


def test_a_window_in_a_time_zone():
    # 09:00-10:00 in Shanghai is 01:00-02:00 UTC
    window = Window("cn", timezone="Asia/Shanghai", daily=time(9, 0), duration=timedelta(hours=1))
    assert window.active(at(0)) and window.active(at(59)) and not window.active(at(60)) and not window.active(at(-1))


def test_a_window_covers_only_its_targets():
    window = Window("one", targets=("other",), start=at(-10), end=at(100))
    assert window.covers("other") and not window.covers("qwen") and Window("all").covers("qwen")
    _, notes = rounds(["down"] * 2, minutes=[0, 1], windows=(window,))
    assert [n.kind for _, n in notes] == [Kind.NEW]


def test_per_target_policy():
    policies = {"fast": Policy(failure_threshold=1), "slow": Policy(failure_threshold=3)}
    state, fired = {}, []
    for minute in range(3):
        now = at(minute)
        results = [result("fast", "down", now), result("slow", "down", now)]
        state, out = decide(results, state, now, policy=lambda name: policies[name])
        fired += [(minute, n.target) for n in out]
    assert fired == [(0, "fast"), (2, "slow")]


def test_notification_ids_are_unique_per_incident_and_reminder():
    statuses = ["down", "down", "down", "down", "up", "down", "down"]
    minutes = [0, 1, 61, 121, 122, 123, 124]
    _, notes = rounds(statuses, minutes=minutes)
    kinds = [n.kind for _, n in notes]
    assert kinds == [Kind.NEW, Kind.REMINDER, Kind.REMINDER, Kind.RESOLVED, Kind.NEW]
    ids = [n.id for _, n in notes]
    assert len(set(ids)) == len(ids) and all(len(i) >= 16 for i in ids)


def test_two_targets_in_one_round_get_different_ids():
    now = at(1)
    state, _ = decide([result("a", "down", at(0)), result("b", "down", at(0))], {}, at(0))
    _, out = decide([result("a", "down", now), result("b", "down", now)], state, now)
    assert [n.target for n in out] == ["a", "b"] and out[0].id != out[1].id
    assert all(n.severity == Severity.CRITICAL for n in out)
