"""After a probe round: load state, decide, deliver through the outbox, save — under the lease.

The lease makes overlapping rounds send once: a round that cannot take it only probed. The state
document is written before every send (see outbox.py) and once more at the end, each time only if
it changed and only after checking the lease is still held. A round that lost its lease (it ran
longer than `state.lease_ttl`) never writes again: a newer round may be writing. It stops sending
too; whatever it already sent was written ahead with its message id while it held the lease, so the
next round resends that exact message and DingTalk drops it as a duplicate (email carries the same
Message-ID) — what it could not record is the acceptance, never the message. A store that cannot be
written (read-only, full) is a StoreError: nothing is sent unrecorded, and the alerts wait in the
previous document until it can be.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from shared import logs
from shared.alerts.config import AlertConfig
from shared.alerts.outbox import Outbox, deliver
from shared.alerts.policy import TargetState, decide, iso
from shared.alerts.rebuild import load_start
from shared.credentials.provider import TokenProvider, shared_provider
from shared.state.document import VERSION
from shared.state.settings import open_store
from shared.state.store import LeaseLost, Store, StoreError, compact_json
from shared.verdict.result import ProbeResult


def _owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


async def run_alerts(
    alerts: AlertConfig,
    results: Sequence[ProbeResult],
    *,
    now: datetime | None = None,
    tokens: TokenProvider | None = None,
    store: Store | None = None,
    known_targets: Iterable[str] | None = None,
    owner: str | None = None,
    request_id: str | None = None,
    while_held: Callable[[Store], None] | None = None,
) -> dict[str, Any]:
    """The alert step of a round; returns the summary's `alerts` part. Raises StoreError if the store fails.

    `while_held` (the round's history write) runs under the same lease after the alert state is saved;
    its failure is logged and never touches the alerts."""
    log = logs.get_logger("vpcprobe.alerts")
    now = now or datetime.now(timezone.utc)
    tokens = tokens or shared_provider()
    store = store or open_store(alerts.store)
    owner = owner or _owner()
    started = time.perf_counter()
    if not store.acquire_lease(owner, alerts.store.lease_ttl_s):
        log.warning(
            "alerts_skipped",
            reason="another round holds the alert lease and will send; this round only probed",
            store=store.describe(),
            request_id=request_id,
        )
        return {"skipped": "another round holds the alert lease"}
    problems: list[str] = []
    try:
        start = load_start(store, results, now, alerts.policy_for)
        targets, notes = decide(results, start.targets, now, policy=alerts.policy_for, windows=alerts.windows)
        if start.notice is not None:
            notes.insert(0, start.notice)
            problems.append(start.notice.message or "")
            log.error("state_damaged", store=store.describe(), message=start.notice.message, request_id=request_id)
        if known_targets is not None:
            keep = set(known_targets)
            targets = {k: v for k, v in targets.items() if k in keep}
        outbox = Outbox.from_doc(start.doc)
        routed = [n for n in notes if alerts.route(n.target, n.kind)]
        queued = {n.id for n in routed}
        dropped = outbox.add(routed)
        for n in notes:
            log.info(
                "alert",
                target=n.target,
                kind=n.kind,
                severity=n.severity,
                status=n.status,
                code=n.code,
                since=n.since,
                notification=n.id,
                maintenance=n.maintenance,
                queued=n.id in queued,
                request_id=request_id,
            )
        for n in dropped:
            log.error("alert_dropped", target=n.target, kind=n.kind, notification=n.id, reason="outbox full")

        checkpoint = _Checkpoint(store, owner, lambda: _document(targets, outbox, now))
        checkpoint()
        report = await deliver(
            outbox,
            alerts.channels,
            now,
            tokens,
            route=lambda n: alerts.route(n.target, n.kind),
            status_page_url=alerts.status_page_url,
            tz=alerts.timezone,
            checkpoint=checkpoint,
            budget_s=alerts.store.lease_ttl_s / 2,
        )
        try:
            if report.stopped is not None:  # a write-ahead failed: the final save would too
                raise (LeaseLost if checkpoint.lost else StoreError)(report.stopped)
            checkpoint()
        except StoreError as exc:
            problems.append(str(exc))
            if checkpoint.lost:
                fix = "raise state.lease_ttl above the alert step's duration"
                log.error("alert_lease_lost", store=store.describe(), fix=fix, request_id=request_id)
            else:
                log.error("alert_state_not_saved", error=str(exc), request_id=request_id)
        else:
            if while_held is not None:
                try:
                    while_held(store)
                except Exception as exc:  # the alerts are saved already: a side write never undoes them
                    log.error("while_held_failed", error=logs.redact_text(f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            store.release(owner)
        except StoreError as exc:
            log.warning("alert_lease_release_failed", error=str(exc))
    for name, outcome in report.outcomes.items():
        (log.info if outcome.startswith("ok") else log.warning)(
            "alert_delivery",
            channel=name,
            outcome=outcome,
            notifications=report.sizes.get(name, 0),
            accepted=len(report.accepted.get(name, [])),
            request_id=request_id,
        )
    summary = {
        "new": len(notes),
        "sent": report.sent,
        "messages": report.messages,
        "pending": len(outbox.pending),
        "channels": report.outcomes,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if problems:
        summary["problems"] = problems  # the state store's: a rebuilt document, a lost lease, a failed save
    log.info("alerts", request_id=request_id, **{k: v for k, v in summary.items() if k != "channels"})
    return summary


class _Checkpoint:
    """Saves the document when it changed, and only while the round holds the lease (LeaseLost if not)."""

    def __init__(self, store: Store, owner: str, build: Callable[[], dict[str, Any]]) -> None:
        self._store, self._owner, self._build = store, owner, build
        self._saved: bytes | None = None
        self.lost = False

    def __call__(self) -> None:
        doc = self._build()
        data = compact_json(doc)
        if data == self._saved:
            return
        if self.lost or not self._store.holds(self._owner):
            self.lost = True
            raise LeaseLost(f"{self._store.describe()}: this round lost the alert lease; it writes nothing more")
        self._store.save(doc)
        self._saved = data


def _document(targets: dict[str, TargetState], outbox: Outbox, now: datetime) -> dict[str, Any]:
    return {
        "version": VERSION,
        "updated_at": iso(now),
        "targets": {k: v.to_dict() for k, v in sorted(targets.items())},
        **outbox.to_doc(),
    }
