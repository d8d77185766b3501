"""Where the alert step starts: the stored state, checked, or when it is damaged, what can be rebuilt.

A damaged document (not JSON, wrong types, an unknown `version`) is set aside and the round starts
from, in order: the backup copy the last save wrote beside it, if that one is valid; else whatever
entries of the damaged document are valid, with every target that fails this round but has no entry
left taken as already announced (a still-down target is not announced as new) — the notice that goes
out names those targets, so people hear about them once either way. A target left firing resolves
normally, so its recovery is not lost. The notice goes to every channel and into the round's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.alerts.policy import (
    VOCABULARY,
    AlertState,
    Notification,
    NotificationKind,
    Policy,
    Severity,
    TargetState,
    iso,
    note_id,
    severity_of,
)
from shared.state.document import salvage
from shared.state.store import BACKUP_NAME, DamagedState, Store
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status

NOTICE_TARGET = "vpcprobe"  # what a notice about vpcprobe itself is listed under
PROBLEMS_SHOWN = 3
DAMAGE_REMEDY = (
    "Nothing to do if it happens once. If it repeats, find what else writes the state store: a hand "
    "edit, another vpcprobe version sharing the same state path or prefix, or a failing disk."
)


@dataclass
class Start:
    """The document a round starts from, and what to say when it had to be rebuilt."""

    doc: dict[str, Any] = field(default_factory=dict)
    notice: Notification | None = None

    @property
    def targets(self) -> dict[str, TargetState]:
        return {k: TargetState.from_dict(v) for k, v in self.doc.get("targets", {}).items()}


def load_start(
    store: Store, results: Sequence[ProbeResult], now: datetime, policy_for: Callable[[str], Policy]
) -> Start:
    """The stored document if it is sound; else quarantine it and rebuild (see the module docs).
    Only the lease holder calls this: it writes the quarantined copy."""
    try:
        raw = store.load()
    except DamagedState as exc:
        raw, problems = None, [str(exc)]
    else:
        if raw is None:
            return Start()
        clean, problems = salvage(raw, VOCABULARY)
        if not problems:
            return Start(clean)
    kept_as = store.quarantine()
    backup = _backup(store)
    if backup is not None:
        return Start(backup, _notice(store, now, problems, kept_as, f"the backup copy ({BACKUP_NAME})", []))
    doc = clean if raw is not None else {}
    targets = doc.setdefault("targets", {})
    assumed = []
    for r in results:
        pol = policy_for(r.target)
        sev = severity_of(r.status, pol) if r.status != Status.UNKNOWN else None
        if r.target not in targets and sev is not None:
            targets[r.target] = _announced(r.status, sev, pol, iso(now)).to_dict()
            assumed.append(f"{r.target} ({r.status})")
    source = "what was readable of it and this round's results" if raw is not None else "this round's results"
    return Start(doc, _notice(store, now, problems, kept_as, source, assumed))


def _backup(store: Store) -> dict[str, Any] | None:
    """The backup copy if it is there and sound."""
    try:
        raw = store.load_backup()
    except DamagedState:
        return None
    if raw is None:
        return None
    clean, problems = salvage(raw, VOCABULARY)
    return None if problems else clean


def _announced(status: str, severity: Severity, pol: Policy, stamp: str) -> TargetState:
    """A target failing now whose history was lost: firing and already told (the notice names it)."""
    return TargetState(
        state=AlertState.FIRING,
        status=status,
        failures=pol.failure_threshold,
        since=stamp,
        severity=severity,
        started=stamp,
        notified=severity,
        last_notified=stamp,
    )


def _notice(
    store: Store, now: datetime, problems: list[str], kept_as: str | None, source: str, assumed: list[str]
) -> Notification:
    stamp = iso(now)
    shown = "; ".join(problems[:PROBLEMS_SHOWN]) + (
        f" (+{len(problems) - PROBLEMS_SHOWN} more)" if len(problems) > PROBLEMS_SHOWN else ""
    )
    text = f"alert state was damaged and rebuilt from {source}: {shown}."
    if kept_as:
        text += f" The damaged document is kept as {kept_as}."
    if assumed:
        text += f" Failing now, with their alert history lost (not announced again): {', '.join(assumed)}."
    return Notification(
        id=note_id(NOTICE_TARGET, NotificationKind.NOTICE, None, now, len(problems)),
        target=NOTICE_TARGET,
        kind=NotificationKind.NOTICE,
        severity=Severity.WARNING,
        previous=None,
        status="rebuilt",
        target_kind="alert state",
        url=store.describe(),
        since=stamp,
        started=None,
        at=stamp,
        code="state_damaged",
        message=text,
        remedy=DAMAGE_REMEDY,
    )
