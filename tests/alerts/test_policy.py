"""The alert state machine, fed round by round with an injected clock (no sleeping, no sockets)."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pytest

from shared.alerts.policy import AlertState, DegradedPolicy, Policy, Severity, TargetState, Window, decide
from shared.alerts.policy import NotificationKind as Kind
from shared.verdict.status import Status
from tests.alert_fixtures import T0, at, result

DEFAULT = Policy()


def run(statuses, *, policy=DEFAULT, windows=(), name="qwen", step=1.0, start=0.0, state=None):
    """Feed one status per round (minutes apart); returns (state, [(round index, notification)])."""
    state = state if state is not None else {}
    notes = []
    for i, status in enumerate(statuses):
        now = at(start + i * step)
        state, out = decide([result(name, status, now)], state, now, policy=policy, windows=windows)
        notes += [(i, n) for n in out]
    return state, notes


def test_two_failed_rounds_fire_and_the_first_is_only_pending():
    state, notes = run(["up", "down"])
    assert notes == [] and state["qwen"].state == AlertState.PENDING and state["qwen"].failures == 1
    state, notes = run(["down"], state=state, start=2)
    assert [(n.kind, n.severity, n.status) for _, n in notes] == [(Kind.NEW, Severity.CRITICAL, "down")]
    note = notes[0][1]
    assert note.since == note.started == "2026-11-22T01:01:00Z"  # the first failed round, not the second
    assert state["qwen"].state == AlertState.FIRING and state["qwen"].notified == Severity.CRITICAL


def test_flapping_never_fires_with_threshold_2():
    state, notes = run(["down", "up"] * 15)
    assert notes == []
    assert state["qwen"].state in (AlertState.OK, AlertState.PENDING) and state["qwen"].notified is None


def test_thresholds_are_configurable():
    _, notes = run(["down"], policy=Policy(failure_threshold=1))
    assert [i for i, _ in notes] == [0]
    _, notes = run(["down", "down", "down"], policy=Policy(failure_threshold=3))
    assert [i for i, _ in notes] == [2]


def test_recovery_after_success_threshold_and_says_how_long_it_was_down():
    pol = Policy(success_threshold=2)
    state, notes = run(["down", "down", "up", "down", "up", "up"], policy=pol)
    assert [(i, n.kind) for i, n in notes] == [(1, Kind.NEW), (5, Kind.RESOLVED)]
    resolved = notes[1][1]
    assert resolved.severity is None and resolved.previous == Severity.CRITICAL and resolved.status == "up"
    assert resolved.since == "2026-11-22T01:04:00Z"  # the first good round of the streak that resolved it
    assert resolved.started == "2026-11-22T01:00:00Z"
    assert state["qwen"].state == AlertState.OK and state["qwen"].notified is None


def test_reminders_every_repeat_interval_while_firing():
    statuses = ["down"] * 150  # 2.5 hours of a round a minute
    _, notes = run(statuses, policy=Policy(repeat_interval_s=3600))
    assert [(i, n.kind) for i, n in notes] == [(1, Kind.NEW), (61, Kind.REMINDER), (121, Kind.REMINDER)]
    _, notes = run(statuses, policy=Policy(repeat_interval_s=None))
    assert [n.kind for _, n in notes] == [Kind.NEW]


def test_degraded_at_its_own_severity_or_ignored():
    _, notes = run(["degraded", "degraded"])
    assert [(n.kind, n.severity) for _, n in notes] == [(Kind.NEW, Severity.WARNING)]
    _, notes = run(["degraded", "degraded"], policy=Policy(degraded=DegradedPolicy.CRITICAL))
    assert [n.severity for _, n in notes] == [Severity.CRITICAL]
    # ignore: degraded is a good round, so it never fires and it resolves a down alert
    _, notes = run(["degraded", "degraded", "down", "down", "degraded"], policy=Policy(degraded=DegradedPolicy.IGNORE))
    assert [(i, n.kind) for i, n in notes] == [(3, Kind.NEW), (4, Kind.RESOLVED)]


def test_severity_change_while_firing_needs_threshold_rounds():
    _, notes = run(["degraded", "degraded", "down", "degraded", "down", "down"])
    assert [(i, n.kind, n.severity, n.previous) for i, n in notes] == [
        (1, Kind.NEW, Severity.WARNING, None),
        (5, Kind.CHANGED, Severity.CRITICAL, Severity.WARNING),
    ]


def test_maintenance_mutes_and_reports_what_is_still_true_when_it_ends():
    # 10:02-10:06 Asia/Shanghai = 02:02-02:06 UTC = rounds 62..65 of this run
    window = Window(
        "upgrade",
        "Asia/Shanghai",
        ("qwen",),
        start=datetime(2026, 11, 22, 10, 2, tzinfo=timezone(timedelta(hours=8))),
        end=datetime(2026, 11, 22, 10, 6, tzinfo=timezone(timedelta(hours=8))),
    )
    statuses = ["up"] * 62 + ["down"] * 6  # goes down inside the window, still down after it
    _, notes = run(statuses, windows=[window])
    assert [(i, n.kind) for i, n in notes] == [(66, Kind.NEW)]
    assert notes[0][1].maintenance == "upgrade"
    assert notes[0][1].since == "2026-11-22T02:02:00Z"  # when it really started, inside the window
    # fired and recovered inside the window: nothing to say afterwards
    statuses = ["up"] * 62 + ["down", "down", "up", "up", "up", "up"]
    _, notes = run(statuses, windows=[window])
    assert notes == []
    # other targets are not muted
    _, notes = run(["up"] * 62 + ["down"] * 2, windows=[window], name="other")
    assert [(i, n.kind) for i, n in notes] == [(63, Kind.NEW)]


def test_alert_firing_before_a_window_resolves_after_it():
    window = Window("w", "UTC", (), start=at(3), end=at(6))
    _, notes = run(["down", "down", "down", "up", "up", "up", "up", "up"], windows=[window])
    assert [(i, n.kind) for i, n in notes] == [(1, Kind.NEW), (6, Kind.RESOLVED)]
    assert notes[1][1].maintenance == "w"


def test_recurring_window_in_a_time_zone_crossing_midnight():
    # every Saturday 23:30 for 2 hours, Shanghai time: Sat 15:30 UTC .. Sat 17:30 UTC
    window = Window("nightly", "Asia/Shanghai", daily=time(23, 30), duration=timedelta(hours=2), days=(5,))
    saturday = datetime(2026, 11, 28, tzinfo=timezone.utc)  # a Saturday
    assert not window.active(saturday.replace(hour=15, minute=29))
    assert window.active(saturday.replace(hour=15, minute=30))
    assert window.active(saturday.replace(hour=17, minute=29))  # Sunday 01:29 local: still Saturday's window
    assert not window.active(saturday.replace(hour=17, minute=30))
    assert not window.active(saturday.replace(hour=15, minute=45) - timedelta(days=1))  # Friday


def test_stale_results_from_a_slow_round_are_ignored():
    state, _ = run(["down", "down"])
    old = result("qwen", "up", at(0.5))  # probed before the state's last round, finishing late
    new_state, notes = decide([old], state, at(3))
    assert notes == [] and new_state["qwen"].state == AlertState.FIRING and new_state["qwen"].successes == 0


def test_targets_without_a_result_keep_their_state():
    state, _ = run(["down", "down"], name="a")
    state, notes = decide([result("b", "up", at(3))], state, at(3))
    assert notes == [] and state["a"].state == AlertState.FIRING and state["b"].state == AlertState.OK


def test_state_round_trips_through_json_and_the_notification_has_the_facts():
    state, notes = run(["down", "down"])
    again = {k: TargetState.from_dict(json.loads(json.dumps(v.to_dict()))) for k, v in state.items()}
    assert again == state
    n = notes[0][1]
    assert n.code == "connect_refused" and n.remedy and n.target_kind == "dashscope"
    assert n.failed == ["127.0.0.2:80 connect_refused", "127.0.0.3:80 connect_refused"]
    assert n.timings["total"] == 5.0 and "tls" not in n.timings
    assert len({n.id for _, n in run(["down", "down"] + ["up", "down", "down"] * 3)[1]}) == 7  # ids unique


def test_worst_first_ordering_within_a_round():
    state: dict = {}
    for minute in (0, 1):
        rs = [result("z-down", "down", at(minute)), result("a-degraded", "degraded", at(minute))]
        state, notes = decide(rs, state, at(minute))
    assert [n.target for n in notes] == ["z-down", "a-degraded"]


def test_now_must_be_aware():
    with pytest.raises(ValueError):
        decide([], {}, T0.replace(tzinfo=None))


def test_stored_state_reads_back_as_enum_members_and_writes_the_same_strings():
    """state.json holds plain strings; a loaded state compares by identity with the enums, not only by value."""
    stored = {"state": "firing", "severity": "warning", "notified": "critical", "shift": None, "failures": 3}
    st = TargetState.from_dict(json.loads(json.dumps(stored)))
    assert st.state is AlertState.FIRING and st.severity is Severity.WARNING and st.notified is Severity.CRITICAL
    assert st.shift is None
    again = json.loads(json.dumps(st.to_dict()))
    assert {k: again[k] for k in stored} == stored


def unknown(name: str, when: datetime):
    """A result the prober could not judge (its own loop lagged): status unknown, prober_overloaded."""
    from shared.verdict.codes import Code
    from shared.verdict.diagnose import diagnose

    r = result(name, "down", when)
    r.status = Status.UNKNOWN
    r.diagnosis = diagnose(Code.PROBER_OVERLOADED, "lag 400 ms of a 500 ms timeout")
    for a in r.addresses:
        a.status, a.diagnosis = Status.UNKNOWN, r.diagnosis
    return r


@pytest.mark.parametrize(
    "before",
    [["up", "up"], ["down"], ["down", "down"], ["down", "down", "up"], ["degraded", "degraded"]],
    ids=["ok", "pending", "firing", "firing-recovering", "firing-warning"],
)
def test_unknown_is_no_news_neither_failure_nor_recovery(before):
    """An unknown round leaves every counter and state as it was and sends nothing, whatever came before;
    the next real round carries on as if the unknown one never happened."""
    pol = Policy(success_threshold=2, repeat_interval_s=60, unknown_threshold=0)  # a reminder would be due
    state, _ = run(before, policy=pol)
    snapshot = json.dumps({k: judged_fields(v) for k, v in state.items()}, sort_keys=True)
    for i in range(3):
        when = at(len(before) + i)
        state, notes = decide([unknown("qwen", when)], state, when, policy=pol)
        assert notes == []
        assert json.dumps({k: judged_fields(v) for k, v in state.items()}, sort_keys=True) == snapshot
        assert state["qwen"].unknown_rounds == i + 1
    # and then a real round: a pending target fires on its second failure, not earlier or later
    if before == ["down"]:
        when = at(10)
        state, notes = decide([result("qwen", "down", when)], state, when, policy=pol)
        assert [n.kind for n in notes] == [Kind.NEW] and state["qwen"].failures == 2


def judged_fields(st: TargetState) -> dict:
    """The up/down state machine's part of a target's state (the unknown counters left out)."""
    return {k: v for k, v in st.to_dict().items() if k not in ("unknown_rounds", "unknown_since", "unjudged_told")}


def test_unknown_for_a_target_never_seen_starts_only_the_unknown_count():
    state, notes = decide([unknown("new", at(0))], {}, at(0))
    assert notes == [] and judged_fields(state["new"]) == judged_fields(TargetState())
    assert (state["new"].unknown_rounds, state["new"].unknown_since) == (1, "2026-11-22T01:00:00Z")


def test_unknown_round_after_round_says_once_the_target_cannot_be_judged_then_judged_again():
    """Issue 10's leftover: a prober that never keeps up must not mean silence forever."""
    pol = Policy(unknown_threshold=3)
    state, _ = run(["down", "down"], policy=pol)  # firing: people were told it is down
    told = []
    for minute in range(2, 8):
        state, notes = decide([unknown("qwen", at(minute))], state, at(minute), policy=pol)
        told += [(minute, n) for n in notes]
    expected = [(4, Kind.UNJUDGED, Severity.WARNING, "prober_overloaded")]
    assert [(m, n.kind, n.severity, n.code) for m, n in told] == expected
    note = told[0][1]
    assert note.since == "2026-11-22T01:02:00Z" and note.status == Status.UNKNOWN
    assert "3 rounds in a row" in (note.message or "") and "lag 400 ms" in (note.message or "")
    assert "raise the function's CPU/memory or lower concurrency" in (note.remedy or "")
    assert state["qwen"].state == AlertState.FIRING and state["qwen"].failures == 2  # no news for up/down
    state, notes = decide([result("qwen", "down", at(8))], state, at(8), policy=pol)
    assert [n.kind for n in notes] == [Kind.JUDGED]  # still down: the down alert stays as it was
    assert state["qwen"].unknown_rounds == 0 and not state["qwen"].unjudged_told
    state, notes = decide([result("qwen", "up", at(9))], state, at(9), policy=pol)
    assert [n.kind for n in notes] == [Kind.RESOLVED]


def test_a_prober_that_keeps_crashing_is_told_as_a_vpcprobe_bug_not_as_overload():
    """A probe that raises (prober_error: a vpcprobe bug) is unknown like an overloaded one, and the note
    at the threshold names the bug and its remedy, not CPU or concurrency."""
    from shared.verdict.codes import Code
    from shared.verdict.diagnose import diagnose

    pol = Policy(unknown_threshold=2)
    state, told = {}, []
    for minute in range(3):
        r = unknown("qwen", at(minute))
        r.diagnosis = diagnose(Code.PROBER_ERROR, "probe error: RuntimeError")
        state, notes = decide([r], state, at(minute), policy=pol)
        told += [(minute, n) for n in notes]
    assert [(m, n.kind, n.code) for m, n in told] == [(1, Kind.UNJUDGED, "prober_error")]
    note = told[0][1]
    assert note.message == (
        "no verdict for 2 rounds in a row: the prober itself failed, a vpcprobe bug (probe error: RuntimeError); "
        "alerts for this target wait until it can be judged again"
    )
    assert "probe_crashed" in (note.remedy or "") and "CPU" not in (note.remedy or "")


@pytest.mark.parametrize("threshold, rounds, expected", [(3, 2, 0), (3, 3, 1), (1, 1, 1), (0, 50, 0)])
def test_the_unknown_threshold_counts_consecutive_rounds(threshold, rounds, expected):
    pol = Policy(unknown_threshold=threshold)
    state: dict = {}
    sent = 0
    for minute in range(rounds):
        state, notes = decide([unknown("qwen", at(minute))], state, at(minute), policy=pol)
        sent += len(notes)
    assert sent == expected


def test_a_judged_round_restarts_the_unknown_count():
    pol = Policy(unknown_threshold=3)
    state: dict = {}
    for minute, kind in enumerate(["unknown", "unknown", "up", "unknown", "unknown", "up", "unknown"]):
        r = unknown("qwen", at(minute)) if kind == "unknown" else result("qwen", "up", at(minute))
        state, notes = decide([r], state, at(minute), policy=pol)
        assert notes == []


def test_a_maintenance_window_mutes_the_cannot_judge_notice():
    pol = Policy(unknown_threshold=2)
    window = Window("all-day", start=at(0), end=at(60))
    state: dict = {}
    for minute in range(5):
        state, notes = decide([unknown("qwen", at(minute))], state, at(minute), policy=pol, windows=[window])
        assert notes == []
    state, notes = decide([unknown("qwen", at(61))], state, at(61), policy=pol)
    assert [n.kind for n in notes] == [Kind.UNJUDGED]


def test_notification_ids_are_unique_for_incidents_within_one_second():
    """Rounds 200 ms apart with failure_threshold 1: four notifications of one target in one second."""
    pol = Policy(failure_threshold=1)
    state: dict = {}
    ids = []
    for i, status in enumerate(["down", "up", "down", "up"]):
        when = T0 + timedelta(milliseconds=200 * i)
        state, notes = decide([result("qwen", status, when)], state, when, policy=pol)
        ids += [n.id for n in notes]
    assert len(ids) == 4 and len(set(ids)) == 4


def test_reminder_ids_differ_from_each_other_and_from_the_alert():
    pol = Policy(repeat_interval_s=60)
    _state, notes = run(["down"] * 6, policy=pol)
    kinds = [n.kind for _, n in notes]
    assert kinds == [Kind.NEW] + [Kind.REMINDER] * 4
    assert len({n.id for _, n in notes}) == 5
