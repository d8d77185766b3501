"""Rules of the alert state machine that a planted bug slipped past: reminders inside a maintenance
window, windows that cross midnight or skip weekdays, per-target policies, and notification ids that
are unique per incident and per reminder."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest

from shared.alerts.policy import (
    UNJUDGED_REMEDY,
    AlertState,
    DegradedPolicy,
    Notification,
    Policy,
    Severity,
    TargetState,
    Window,
    decide,
    iso,
    note_id,
    severity_of,
)
from shared.alerts.policy import NotificationKind as Kind
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status
from tests.alert_fixtures import T0, at, result
from tests.alerts.test_policy import unknown

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


# --- the up/down state machine's edges, as the stored state shows them ---------------------------------


def test_a_new_target_whose_first_round_is_good_is_ok_since_that_round_and_stays_so():
    """`since` is when the state began: set by the first good round, kept by the next ones."""
    state, notes = rounds(["up", "up"], minutes=[0, 1])
    st = state["qwen"]
    assert notes == [] and (st.state, st.since, st.status, st.successes) == ("ok", iso(at(0)), "up", 2)


def test_a_pending_target_is_ok_again_at_its_first_good_round():
    state, notes = rounds(["up", "down", "up"], minutes=[0, 1, 2])
    st = state["qwen"]
    assert notes == [] and (st.state, st.since, st.failures, st.recovered) == ("ok", iso(at(2)), 0, iso(at(2)))


def test_the_round_s_verdict_is_kept_as_the_status():
    state, _ = rounds(["down"], minutes=[0])
    assert state["qwen"].status == "down" and state["qwen"].state == "pending"
    state, _ = rounds(["degraded"], minutes=[1], state=state)
    assert state["qwen"].status == "degraded"


def test_a_severity_change_needs_exactly_failure_threshold_rounds_and_leaves_no_count():
    """Firing critical with threshold 3: three degraded (warning) rounds in a row change the severity,
    two do not; a critical or good round in between starts the count again, and every reset is stored."""
    pol = Policy(failure_threshold=3, success_threshold=2, repeat_interval_s=None)
    state, notes = rounds(["down"] * 3 + ["degraded"] * 2, minutes=range(5), policy=pol)
    st = state["qwen"]
    assert [n.kind for _, n in notes] == [Kind.NEW] and (st.severity, st.shift, st.shift_count) == (
        Severity.CRITICAL, Severity.WARNING, 2)
    state, notes = rounds(["down"], minutes=[5], policy=pol, state=state)  # critical again: the count restarts
    assert notes == [] and (state["qwen"].shift, state["qwen"].shift_count) == (None, 0)
    state, _ = rounds(["degraded", "up"], minutes=[6, 7], policy=pol, state=state)  # a good round restarts it too
    st = state["qwen"]
    assert (st.state, st.shift, st.shift_count, st.successes) == ("firing", None, 0, 1)
    state, notes = rounds(["degraded"] * 3, minutes=[8, 9, 10], policy=pol, state=state)
    assert [(m, n.kind, n.severity, n.previous) for m, n in notes] == [
        (10, Kind.CHANGED, Severity.WARNING, Severity.CRITICAL)]
    st = state["qwen"]
    assert (st.severity, st.shift, st.shift_count) == (Severity.WARNING, None, 0)


def test_a_leftover_severity_on_an_ok_target_is_not_an_alert():
    """state.json is checked field by field (types, not how the fields fit together), so an ok target may
    come back with a severity: what people are owed follows the state, never the leftover severity."""
    state = {"qwen": TargetState(state=AlertState.OK, since=iso(at(-5)), severity=Severity.CRITICAL)}
    state, notes = rounds(["up", "up"], minutes=[0, 1], state=state)
    assert notes == [] and state["qwen"].notified is None


# --- stale and unreadable result times -----------------------------------------------------------------


def test_a_result_as_recent_as_the_last_one_used_still_counts():
    """Only an older result is stale: two results with the same checked_at (a round re-run) both count."""
    first = result("qwen", "down", at(0))
    state, _ = decide([first], {}, at(0))
    state, notes = decide([result("qwen", "down", at(0))], state, at(1))
    assert [n.kind for n in notes] == [Kind.NEW] and state["qwen"].failures == 2


def test_a_result_whose_time_cannot_be_read_is_not_taken_as_stale():
    state, _ = decide([result("qwen", "down", at(0))], {}, at(0))
    unreadable = replace(result("qwen", "down", at(1)), checked_at="yesterday-ish")
    state, notes = decide([unreadable], state, at(1))
    assert [n.kind for n in notes] == [Kind.NEW] and state["qwen"].last_checked == "yesterday-ish"


# --- what each notification carries --------------------------------------------------------------------


def test_a_reminder_carries_the_severity_the_round_and_the_incident_start():
    _, notes = rounds(["down"] * 3, minutes=[0, 1, 61])
    (_, new), (_, reminder) = notes
    assert reminder.kind == Kind.REMINDER and (reminder.severity, reminder.previous) == (Severity.CRITICAL,) * 2
    assert (reminder.at, reminder.since, reminder.started) == (iso(at(61)), iso(at(0)), iso(at(0)))
    assert (new.at, new.since) == (iso(at(1)), iso(at(0)))


def test_the_judged_again_notice_is_dated_by_its_round_and_says_nothing_of_the_verdict():
    pol = Policy(unknown_threshold=2)
    state, _ = decide([unknown("qwen", at(0))], {}, at(0), policy=pol)
    state, told = decide([unknown("qwen", at(1))], state, at(1), policy=pol)
    assert [n.kind for n in told] == [Kind.UNJUDGED]
    state, notes = decide([result("qwen", "down", at(2))], state, at(2), policy=pol)
    [judged] = notes
    assert judged.kind == Kind.JUDGED and (judged.at, judged.since) == (iso(at(2)), iso(at(2)))
    assert (judged.code, judged.message, judged.remedy) == (None, None, None)
    assert (judged.severity, judged.previous, judged.status) == (None, None, "down")


def test_a_change_undone_inside_a_window_leaves_no_mark_on_the_next_alert():
    """Fired and resolved inside the window: nothing is said, and the window's name does not stick to the
    state or to the alert of a later incident."""
    window = Window("upgrade", start=at(0), end=at(10))
    pol = Policy(failure_threshold=1, repeat_interval_s=None)
    state, notes = rounds(["down", "up", "up"], minutes=[1, 2, 11], policy=pol, windows=(window,))
    assert notes == [] and state["qwen"].muted_by is None
    state, notes = rounds(["down"], minutes=[12], policy=pol, windows=(window,), state=state)
    [(_, new)] = notes
    assert new.kind == Kind.NEW and new.maintenance is None


def test_a_notification_id_is_20_hex_characters():
    note_ids = [n.id for _, n in rounds(["down"] * 3, minutes=[0, 1, 61])[1]]
    assert [len(i) for i in note_ids] == [20, 20] and all(set(i) <= set("0123456789abcdef") for i in note_ids)
    assert note_id("qwen", "firing", None, at(0), 1) == note_id("qwen", "firing", None, at(0), 1)


# --- windows that are not fully specified, and a window's own time zone -------------------------------


def test_a_window_without_both_ends_or_both_recurrence_fields_is_never_active():
    for window in (
        Window("nothing"),
        Window("start only", start=at(-10)),
        Window("end only", end=at(10)),
        Window("time only", daily=time(0, 0)),
        Window("length only", duration=timedelta(days=1)),
    ):
        assert not window.active(at(0)), window.name


def test_a_daily_window_uses_the_date_in_its_own_time_zone():
    """07:00-08:00 in Shanghai, Mondays only: 23:30 UTC on Sunday is 07:30 Monday there (open), and 23:30 UTC
    on Monday is already Tuesday there (closed)."""
    window = Window("cn", timezone="Asia/Shanghai", daily=time(7, 0), duration=timedelta(hours=1), days=(0,))
    sunday_late = T0.replace(hour=23, minute=30)
    assert sunday_late.weekday() == 6
    assert window.active(sunday_late) and not window.active(sunday_late + timedelta(days=1))
    assert not window.active(sunday_late - timedelta(minutes=31)) and window.active(sunday_late - timedelta(minutes=30))


# --- one target's result never holds back another's ----------------------------------------------------


def test_an_unknown_or_stale_result_does_not_hold_back_the_other_targets_of_its_round():
    state, _ = decide([result("late", "down", at(1)), result("b", "down", at(1))], {}, at(1))
    stale = result("late", "up", at(0))  # probed before the round already used for it
    _, notes = decide([unknown("a", at(2)), stale, result("b", "down", at(2))], state, at(2))
    assert [(n.target, n.kind) for n in notes] == [("b", Kind.NEW)]


def test_a_result_without_a_time_is_used_and_keeps_the_last_time_known():
    state, _ = decide([result("qwen", "down", at(0))], {}, at(0))
    untimed = replace(result("qwen", "down", at(1)), checked_at="")
    state, notes = decide([untimed], state, at(1))
    assert [n.kind for n in notes] == [Kind.NEW] and state["qwen"].last_checked == "2026-11-22T01:00:00Z"


# --- the cannot-judge notice and its reset --------------------------------------------------------------


def test_the_cannot_judge_notice_says_how_long_what_was_seen_and_what_waits():
    pol = Policy(unknown_threshold=2)
    state, _ = decide([unknown("qwen", at(0))], {}, at(0), policy=pol)
    last = unknown("qwen", at(1))
    state, [note] = decide([last], state, at(1), policy=pol)
    assert last.diagnosis and "lag 400 ms" in last.diagnosis.message
    assert note.message == (
        f"no verdict for 2 rounds in a row: the prober itself could not keep up ({last.diagnosis.message}); "
        "alerts for this target wait until it can be judged again"
    )
    assert (note.code, note.severity, note.previous, note.since, note.at) == (
        "prober_overloaded", Severity.WARNING, None, iso(at(0)), iso(at(1)))
    assert note.remedy == UNJUDGED_REMEDY


def test_the_cannot_judge_notice_without_a_diagnosis_message_adds_no_brackets():
    pol = Policy(unknown_threshold=1)
    for diagnosis in (None, replace(unknown("qwen", at(0)).diagnosis, message="")):
        r = replace(unknown("qwen", at(0)), diagnosis=diagnosis)
        _, [note] = decide([r], {}, at(0), policy=pol)
        assert note.message == (
            "no verdict for 1 rounds in a row: the prober itself could not keep up; "
            "alerts for this target wait until it can be judged again"
        )


def test_a_judged_round_forgets_every_unknown_count():
    pol = Policy(unknown_threshold=5)
    state, _ = decide([unknown("qwen", at(0))], {}, at(0), policy=pol)
    state, _ = decide([unknown("qwen", at(1))], state, at(1), policy=pol)
    state, notes = decide([result("qwen", "up", at(2))], state, at(2), policy=pol)
    st = state["qwen"]
    assert notes == [] and (st.unknown_rounds, st.unknown_since, st.unjudged_told) == (0, None, False)
    state, _ = decide([unknown("qwen", at(3))], state, at(3), policy=pol)
    assert (state["qwen"].unknown_rounds, state["qwen"].unknown_since) == (1, iso(at(3)))


# --- windows: exact edges, and the name a muted alert carries ------------------------------------------


def test_a_one_off_window_is_open_from_its_first_instant_until_just_before_its_end():
    window = Window("upgrade", start=at(10), end=at(20))
    assert not window.active(at(9.99)) and window.active(at(10))
    assert window.active(at(19.99)) and not window.active(at(20))


def test_an_alert_reported_after_a_window_names_it_and_the_next_notification_does_not():
    window = Window("upgrade", start=at(0), end=at(10))
    pol = Policy(failure_threshold=1, repeat_interval_s=None)
    state, notes = rounds(["down", "down", "up"], minutes=[1, 11, 12], policy=pol, windows=(window,))
    assert [(m, n.kind, n.maintenance) for m, n in notes] == [(11, Kind.NEW, "upgrade"), (12, Kind.RESOLVED, None)]
    assert state["qwen"].muted_by is None


def test_a_naive_now_is_refused_with_why():
    with pytest.raises(ValueError) as info:
        decide([], {}, at(0).replace(tzinfo=None))
    assert str(info.value) == "now must be timezone-aware"


# --- what a notification carries (_make) ----------------------------------------------------------------


def probe(status: str, when, **changes) -> ProbeResult:
    """A result of an EAS target with timings to round and three addresses: one down with a diagnosis,
    one down without one (its status stands in for the code), one up (not listed as failed)."""
    r = result("eas-1", status, when, kind="eas")
    addresses = [
        replace(r.addresses[0], ip="10.0.0.1", port=8080, status=Status.DOWN),
        replace(r.addresses[1], ip="10.0.0.2", port=8081, status=Status.DOWN, diagnosis=None),
        replace(r.addresses[1], ip="10.0.0.3", port=8082, status=Status.UP, diagnosis=None),
    ]
    phases = {"dns": 0.26, "connect": 12.349, "ttfb": None, "total": 20.0}
    return replace(r, addresses=addresses, phases_ms=phases, http_status=503, **changes)


def test_an_alert_carries_exactly_the_round_s_facts_and_its_stable_id():
    pol = Policy(repeat_interval_s=None)
    state, _ = decide([probe("down", at(0))], {}, at(0), policy=pol)
    last = probe("down", at(1))
    state, [note] = decide([last], state, at(1), policy=pol)
    assert last.diagnosis is not None
    assert note == Notification(
        id=note_id("eas-1", Kind.NEW, iso(at(0)), at(1), 1),
        target="eas-1",
        kind=Kind.NEW,
        severity=Severity.CRITICAL,
        previous=None,
        status="down",
        target_kind="eas",
        url=last.url,
        since=iso(at(0)),
        started=iso(at(0)),
        at=iso(at(1)),
        code=last.diagnosis.code,
        message=last.diagnosis.message,
        remedy=last.diagnosis.remedy,
        http_status=503,
        timings={"dns": 0.3, "connect": 12.3, "total": 20.0},
        failed=["10.0.0.1:8080 connect_refused", "10.0.0.2:8081 down"],
        maintenance=None,
        route=[],
    )
    assert state["eas-1"].seq == 1


def test_a_recovery_carries_when_the_good_streak_began_and_no_diagnosis():
    pol = Policy(success_threshold=2, repeat_interval_s=None)
    state: dict = {}
    notes = []
    for minute, status in enumerate(["down", "down", "up", "up"]):
        state, out = decide([probe(status, at(minute))], state, at(minute), policy=pol)
        notes += out
    new, resolved = notes
    assert (resolved.kind, resolved.since, resolved.started, resolved.at) == (
        Kind.RESOLVED, iso(at(2)), iso(at(0)), iso(at(3)))
    assert (resolved.severity, resolved.previous, resolved.status) == (None, Severity.CRITICAL, "up")
    assert (resolved.code, resolved.message, resolved.remedy) == (None, None, None)
    assert resolved.id == note_id("eas-1", Kind.RESOLVED, iso(at(0)), at(3), 2) != new.id
    assert state["eas-1"].seq == 2


def test_a_notification_without_an_incident_start_is_dated_by_its_round():
    """The cannot-judge notice of a target never judged has no incident start: its since is its round."""
    pol = Policy(unknown_threshold=1)
    _, [note] = decide([unknown("fresh", at(5))], {}, at(5), policy=pol)
    assert (note.started, note.since, note.at) == (None, iso(at(5)), iso(at(5)))
    assert note.id == note_id("fresh", Kind.UNJUDGED, None, at(5), 1)


def test_only_a_down_round_is_critical_and_degraded_follows_the_policy():
    assert severity_of(Status.DOWN, Policy(degraded=DegradedPolicy.IGNORE)) == Severity.CRITICAL
    assert severity_of(Status.DEGRADED, Policy(degraded=DegradedPolicy.CRITICAL)) == Severity.CRITICAL
    assert severity_of(Status.DEGRADED, Policy(degraded=DegradedPolicy.WARNING)) == Severity.WARNING
    assert severity_of(Status.DEGRADED, Policy(degraded=DegradedPolicy.IGNORE)) is None
    assert severity_of(Status.UP, Policy(degraded=DegradedPolicy.CRITICAL)) is None
    assert severity_of(Status.UNKNOWN, Policy()) is None


# --- a stored state decide() would not have written (state.json's fields are checked one by one) -------


def test_a_reminder_dates_the_incident_from_its_start_even_when_the_stored_since_was_lost():
    stored = TargetState(state=AlertState.FIRING, since=None, severity=Severity.CRITICAL, started=iso(at(0)),
                         notified=Severity.CRITICAL, last_notified=iso(at(1)), failures=2)
    _, [reminder] = decide([result("qwen", "down", at(61))], {"qwen": stored}, at(61))
    assert (reminder.kind, reminder.since, reminder.started) == (Kind.REMINDER, iso(at(0)), iso(at(0)))


def test_a_stored_shift_count_for_another_severity_starts_over():
    """The count is of consecutive rounds of one new severity: a count stored for a different one (here the
    firing severity itself) does not carry over to a warning round."""
    stored = TargetState(state=AlertState.FIRING, since=iso(at(0)), severity=Severity.CRITICAL, started=iso(at(0)),
                         notified=Severity.CRITICAL, last_notified=iso(at(1)), failures=2,
                         shift=Severity.CRITICAL, shift_count=1)
    state, notes = decide([result("qwen", "degraded", at(2))], {"qwen": stored}, at(2))
    assert notes == [] and (state["qwen"].shift, state["qwen"].shift_count) == (Severity.WARNING, 1)
    assert state["qwen"].severity == Severity.CRITICAL
