"""The alert state machine: per target ok -> pending -> firing -> ok, and what a round owes people.

Pure logic: probe results + prior per-target state + `now` in, new state + notifications out. It
knows nothing about channels, stores or clocks, so every rule (thresholds, flapping, reminders,
maintenance) is tested by feeding it rounds.

The rule behind all notifications: each target remembers what people were last *told*
(`notified`: a severity, or None for "fine"). Whenever the alert condition differs from that and
no maintenance window mutes the target, a notification goes out and `notified` catches up. So a
window mutes everything, and when it ends whatever is still different is reported — and a
fire-and-resolve that both happened inside the window is never mentioned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from shared.state.document import Vocabulary
from shared.text_enum import TextEnum
from shared.verdict.codes import CATALOG, Code
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status


class AlertState(TextEnum):
    """Where a target is: ok -> pending (failing, under the threshold) -> firing -> ok."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Severity(TextEnum):
    """How bad a firing alert is: down is critical; degraded is what the policy says."""

    CRITICAL = "critical"
    WARNING = "warning"


class DegradedPolicy(TextEnum):
    """What a degraded round counts as: an alert of some severity, or a good round (`ignore`)."""

    WARNING = "warning"
    CRITICAL = "critical"
    IGNORE = "ignore"

    @property
    def severity(self) -> Severity | None:
        return None if self is DegradedPolicy.IGNORE else Severity(self.value)


class NotificationKind(TextEnum):
    """In the order a message lists them: a notice about vpcprobe itself (its alert state was rebuilt),
    a new alert, a firing alert whose severity changed, a target that cannot be judged (the prober is
    overloaded), a reminder, a recovery, a target judged again. NEW's value is "firing", as state.json
    and the log lines have always had it."""

    NOTICE = "notice"
    NEW = "firing"
    CHANGED = "changed"
    UNJUDGED = "unjudged"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    JUDGED = "judged"

    @property
    def clears(self) -> bool:
        """Whether it says a condition is over (a recovery): no mention, and `send_resolved` applies."""
        return self in (NotificationKind.RESOLVED, NotificationKind.JUDGED)


_SEVERITY_RANK = {Severity.CRITICAL: 2, Severity.WARNING: 1, None: 0}
_KIND_RANK = {kind: i for i, kind in enumerate(NotificationKind)}


@dataclass(frozen=True)
class Policy:
    """When a target alerts. `repeat_interval_s` None = no reminders. `unknown_threshold`: consecutive
    `unknown` rounds after which people hear the target cannot be judged (0 = never)."""

    failure_threshold: int = 2
    success_threshold: int = 1
    repeat_interval_s: float | None = 3600.0
    degraded: DegradedPolicy = DegradedPolicy.WARNING
    unknown_threshold: int = 3


@dataclass(frozen=True)
class Window:
    """A maintenance window: one-off (`start`..`end`) or recurring (`daily` + `duration` on `days`)."""

    name: str
    timezone: str = "UTC"
    targets: tuple[str, ...] = ()  # empty = every target
    start: datetime | None = None  # one-off, aware
    end: datetime | None = None
    daily: time | None = None  # recurring: local start time
    duration: timedelta | None = None
    days: tuple[int, ...] = ()  # weekday numbers (Monday 0); empty = every day

    def covers(self, target: str) -> bool:
        return not self.targets or target in self.targets

    def active(self, now: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        if self.daily is None or self.duration is None:
            return False
        tz = zone(self.timezone)
        local = now.astimezone(tz)
        for back in (0, 1):  # a window that started yesterday may still be open (it crosses midnight)
            day: date = local.date() - timedelta(days=back)
            if self.days and day.weekday() not in self.days:
                continue
            begin = datetime.combine(day, self.daily, tzinfo=tz)
            if begin <= local < begin + self.duration:
                return True
        return False


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo (config validation has already checked the name)."""
    return ZoneInfo(name)


@dataclass
class TargetState:
    """What the state machine remembers about one target between rounds (persisted as JSON)."""

    state: AlertState = AlertState.OK
    status: str | None = None  # the last probe verdict
    failures: int = 0  # consecutive failed rounds
    successes: int = 0  # consecutive good rounds
    since: str | None = None  # when `state` began
    severity: Severity | None = None  # while firing
    started: str | None = None  # first failed round of the current incident
    recovered: str | None = None  # first good round of the current good streak
    notified: Severity | None = None  # the severity people were last told; None = told it is fine
    last_notified: str | None = None
    last_checked: str | None = None  # checked_at of the last result used (older ones are stale)
    muted_by: str | None = None  # the window that muted a change not yet reported
    shift: Severity | None = None  # a different severity seen while firing ...
    shift_count: int = 0  # ... for this many consecutive rounds
    seq: int = 0  # notifications made for this target: part of each one's id
    unknown_rounds: int = 0  # consecutive `unknown` rounds (no news for the fields above)
    unknown_since: str | None = None  # the first of them
    unjudged_told: bool = False  # people were told it cannot be judged, and not yet that it is again

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TARGET_FIELDS}  # plain values: no asdict deep copy

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        st = cls(**{k: v for k, v in data.items() if k in _TARGET_FIELDS})
        st.state = AlertState(st.state)
        st.severity, st.notified, st.shift = _severity(st.severity), _severity(st.notified), _severity(st.shift)
        return st


@dataclass
class Notification:
    """One thing to tell people about one target; stable `id` (msgUuid / Message-ID come from it)."""

    id: str
    target: str
    kind: NotificationKind
    severity: Severity | None  # None when resolved
    previous: Severity | None  # the severity people were told before (changed, resolved)
    status: str  # the probe verdict: up | degraded | down
    target_kind: str  # dashscope | eas
    url: str
    since: str  # when the current condition began: incident start, or recovery time when resolved
    started: str | None  # incident start (first failed round)
    at: str  # when this notification was decided
    code: str | None = None
    message: str | None = None
    remedy: str | None = None
    http_status: int | None = None
    timings: dict[str, float | None] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # "ip:port code" of the addresses that failed
    maintenance: str | None = None  # the window that held it back
    route: list[str] = field(default_factory=list)  # channel names, fallbacks in order

    @property
    def rank(self) -> tuple[int, int, str]:
        """Sort key: worst first, recoveries last, then by name."""
        return (-_SEVERITY_RANK[self.severity], _KIND_RANK[self.kind], self.target)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _NOTE_FIELDS}
        out.update(timings=dict(self.timings), failed=list(self.failed))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        note = cls(**{k: v for k, v in data.items() if k in _NOTE_FIELDS})
        note.kind = NotificationKind(note.kind)
        note.severity, note.previous = _severity(note.severity), _severity(note.previous)
        return note


_TARGET_FIELDS = tuple(f.name for f in fields(TargetState))
_NOTE_FIELDS = tuple(f.name for f in fields(Notification))
VOCABULARY = Vocabulary(
    states=frozenset(AlertState), severities=frozenset(Severity), kinds=frozenset(NotificationKind)
)  # what state.json's enum fields may hold (shared/state/document.py checks them)


def _severity(value: str | None) -> Severity | None:
    """A stored severity (plain JSON string) as the enum."""
    return None if value is None else Severity(value)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def severity_of(status: str, policy: Policy) -> Severity | None:
    """A round's alert severity: down is critical; degraded as configured; None = a good round."""
    if status == Status.DOWN:
        return Severity.CRITICAL
    if status == Status.DEGRADED:
        return policy.degraded.severity
    return None


def decide(
    results: Iterable[ProbeResult],
    targets: dict[str, TargetState],
    now: datetime,
    *,
    policy: Policy | Callable[[str], Policy] = Policy(),
    windows: Sequence[Window] = (),
) -> tuple[dict[str, TargetState], list[Notification]]:
    """One round: the new per-target state and the notifications owed (not yet routed or sent).

    Targets without a result this round keep their state untouched, and so do targets whose result is
    `unknown` (the prober was overloaded: no news) — except that `unknown_threshold` such rounds in a row
    say once that the target cannot be judged, and the next judged result says it is judged again.
    A result older than the last one used for its target (a slow round finishing after a newer one) is
    ignored.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    policy_for = policy if callable(policy) else (lambda _name, p=policy: p)
    new = {name: replace(st) for name, st in targets.items()}
    out: list[Notification] = []
    stamp = iso(now)
    for result in results:
        st = new.setdefault(result.target, TargetState())
        if st.last_checked and result.checked_at and _older(result.checked_at, st.last_checked):
            continue
        pol = policy_for(result.target)
        muting = next((w for w in windows if w.covers(result.target) and w.active(now)), None)
        judged = _judged(st, result, pol, now, stamp, muting)
        if judged is not None:
            out.append(judged)
        if result.status == Status.UNKNOWN:
            continue  # the prober could not keep up: no news, neither a failure nor a recovery
        st.last_checked = result.checked_at or st.last_checked
        _step(st, severity_of(result.status, pol), result.status, pol, stamp)
        note = _notify(st, result, pol, now, stamp, muting)
        if note is not None:
            out.append(note)
    out.sort(key=lambda n: n.rank)
    return new, out


def _older(a: str, b: str) -> bool:
    try:
        return parse_iso(a) < parse_iso(b)
    except ValueError:
        return False


def _step(st: TargetState, sev: Severity | None, status: str, pol: Policy, stamp: str) -> None:
    """Counters and ok/pending/firing for one round."""
    st.status = status
    was_firing = st.state == AlertState.FIRING
    if sev is None:
        st.failures = 0
        st.successes += 1
        st.shift, st.shift_count = None, 0
        if st.successes == 1:
            st.recovered = stamp
        if st.state == AlertState.PENDING or (st.state == AlertState.OK and st.since is None):
            st.state, st.since = AlertState.OK, stamp
        elif was_firing and st.successes >= pol.success_threshold:
            st.state, st.since, st.severity = AlertState.OK, st.recovered, None
        return
    st.successes = 0
    st.failures += 1
    if st.failures == 1 and not was_firing:
        st.started = stamp
    if st.state == AlertState.OK:
        st.state, st.since = AlertState.PENDING, stamp
    if st.state == AlertState.PENDING and st.failures >= pol.failure_threshold:
        st.state, st.since, st.severity = AlertState.FIRING, st.started, sev
    elif was_firing:
        # A firing alert changes severity only when the new one holds for failure_threshold rounds.
        if sev == st.severity:
            st.shift, st.shift_count = None, 0
        else:
            st.shift_count = st.shift_count + 1 if st.shift == sev else 1
            st.shift = sev
            if st.shift_count >= pol.failure_threshold:
                st.severity, st.shift, st.shift_count = sev, None, 0


def _notify(
    st: TargetState, result: ProbeResult, pol: Policy, now: datetime, stamp: str, muting: Window | None
) -> Notification | None:
    desired = st.severity if st.state == AlertState.FIRING else None
    if desired != st.notified:
        if muting is not None:
            st.muted_by = st.muted_by or muting.name
            return None
        if st.notified is None:
            kind = NotificationKind.NEW
        else:
            kind = NotificationKind.RESOLVED if desired is None else NotificationKind.CHANGED
        note = _make(st, result, kind, desired, st.notified, stamp, now)
        st.notified, st.last_notified, st.muted_by = desired, stamp, None
        return note
    if muting is not None:
        return None
    st.muted_by = None  # whatever changed inside a window changed back: nothing to report
    if (
        desired is not None
        and pol.repeat_interval_s
        and st.last_notified
        and (now - parse_iso(st.last_notified)).total_seconds() >= pol.repeat_interval_s
    ):
        st.last_notified = stamp
        return _make(st, result, NotificationKind.REMINDER, desired, desired, stamp, now)
    return None


def _judged(
    st: TargetState, result: ProbeResult, pol: Policy, now: datetime, stamp: str, muting: Window | None
) -> Notification | None:
    """The "cannot be judged" rule: count `unknown` rounds; say so once at the threshold, and say when a
    judged result is back. A window mutes both (a target judged again inside it is not mentioned)."""
    if result.status != Status.UNKNOWN:
        told, st.unknown_rounds, st.unknown_since, st.unjudged_told = st.unjudged_told, 0, None, False
        if not told or muting is not None:
            return None
        note = _make(st, result, NotificationKind.JUDGED, None, None, stamp, now)
        note.code = note.message = note.remedy = None  # the verdict itself is the up/down machine's to tell
        note.since = stamp
        return note
    st.unknown_rounds += 1
    st.unknown_since = st.unknown_since or stamp
    if st.unjudged_told or not pol.unknown_threshold or st.unknown_rounds < pol.unknown_threshold or muting is not None:
        return None
    st.unjudged_told = True
    note = _make(st, result, NotificationKind.UNJUDGED, Severity.WARNING, None, stamp, now)
    diag = result.diagnosis
    crashed = diag is not None and diag.code == Code.PROBER_ERROR
    shown = diag.message if diag is not None and diag.message else ""
    if crashed:  # its summary would repeat what `why` says
        shown = shown.removeprefix(CATALOG[Code.PROBER_ERROR][0] + ": ")
    why = "the prober itself failed, a vpcprobe bug" if crashed else "the prober itself could not keep up"
    seen = f" ({shown})" if shown else ""
    note.code = (Code.PROBER_ERROR if crashed else Code.PROBER_OVERLOADED).value
    note.message = (
        f"no verdict for {st.unknown_rounds} rounds in a row: {why}{seen}; "
        "alerts for this target wait until it can be judged again"
    )
    note.remedy = PROBER_ERROR_REMEDY if crashed else UNJUDGED_REMEDY
    note.since = st.unknown_since
    return note


PROBER_ERROR_REMEDY = (
    "a vpcprobe bug, not the endpoint: the probe_crashed log line names the error; report it, and "
    "`vpcprobe check --target NAME` reproduces it"
)
UNJUDGED_REMEDY = (
    "prober overloaded: raise the function's CPU/memory or lower concurrency (or probe fewer targets per round)"
)


def note_id(target: str, kind: str, started: str | None, now: datetime, seq: int) -> str:
    """A notification's id: unique per target, incident and reminder at any round rate (the target's
    notification count and the full-precision time are part of it), stable once stored."""
    return hashlib.sha256(f"{target}|{kind}|{started}|{now.isoformat()}|{seq}".encode()).hexdigest()[:20]


def _make(
    st: TargetState,
    r: ProbeResult,
    kind: NotificationKind,
    sev: Severity | None,
    prev: Severity | None,
    stamp: str,
    now: datetime,
) -> Notification:
    since = (st.since if kind == NotificationKind.RESOLVED else st.started) or stamp
    st.seq += 1
    d = r.diagnosis
    return Notification(
        id=note_id(r.target, kind, st.started, now, st.seq),
        target=r.target,
        kind=kind,
        severity=sev,
        previous=prev,
        status=r.status,
        target_kind=r.kind,
        url=r.url,
        since=since,
        started=st.started,
        at=stamp,
        code=d.code if d else None,
        message=d.message if d else None,
        remedy=d.remedy if d else None,
        http_status=r.http_status,
        timings={k: round(v, 1) for k, v in r.phases_ms.items() if v is not None},
        failed=[
            f"{a.ip}:{a.port} {a.error_code or a.status}" for a in r.addresses if a.status == Status.DOWN
        ],
        maintenance=st.muted_by,
    )
