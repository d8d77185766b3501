"""The outbox: the notifications a round owes, and delivering them through the channels in order.

Delivery rules (PRODUCT.md, "Alerting semantics"):
- one message per channel per round, holding every notification that channel owes;
- a notification counts as sent only once a channel accepted it; until then it stays pending in
  the store and goes out next round, or through the next channel of its route this round;
- a channel's fallbacks are the channels after it in `alerts.channels` order, so processing the
  channels once, in that order, merges every fallback into the later channel's single message;
- before each send the batch and its message id are written to the store (write-ahead). If the
  answer is lost (timeout after sending, process killed), the next round resends exactly that
  batch with the same id — DingTalk's msgUuid drops the duplicate — instead of mixing it into a
  new message or falling back to another channel (which could deliver it twice). After three such
  unanswered attempts its notifications also go to the next channel of their route (a possible
  duplicate on another channel beats a lost alert).
- a batch that may have arrived (an attempt went unanswered) keeps its id on its channel until that
  channel accepts it or every notification in it was delivered elsewhere: whenever it is sent there
  again, it is the same message (the same id, never a notification more). New notifications for that
  channel wait for it and then go in a message of their own; so a channel that never answers holds
  its later notifications pending (counted in the round's summary) unless another channel takes them.
- a notification accepted by a channel leaves the outbox at once, before the next write-ahead;
- if a write-ahead fails (the store broke, the lease was lost), nothing more is sent this round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from shared import logs
from shared.alerts.channels import Channel, Delivery, Message
from shared.alerts.policy import Notification, NotificationKind, iso
from shared.credentials.provider import TokenProvider
from shared.state.store import StoreError

MAX_PENDING = 500  # a month of hourly reminders for a dozen targets with every channel down
MAX_AMBIGUOUS = 3


@dataclass
class Outbox:
    """The delivery half of the state document."""

    pending: list[Notification] = field(default_factory=list)
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)  # channel -> {ids, msg_id, attempts}
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # channel -> {sends, blocked_until, ...}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Outbox:
        return cls(
            [Notification.from_dict(n) for n in doc.get("pending", [])],
            dict(doc.get("inflight", {})),
            dict(doc.get("channels", {})),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "pending": [n.to_dict() for n in self.pending],
            "inflight": self.inflight,
            "channels": self.channels,
        }

    def add(self, notes: Iterable[Notification]) -> list[Notification]:
        """Queue new notifications; an unsent reminder is superseded by anything newer for its target.
        Returns what had to be dropped to stay under MAX_PENDING (oldest reminders first)."""
        frozen = {i for rec in self.inflight.values() for i in rec.get("ids", [])}

        def spare(p: Notification) -> bool:  # a reminder not in a batch awaiting its answer
            return p.kind == NotificationKind.REMINDER and p.id not in frozen

        for note in notes:
            self.pending = [p for p in self.pending if not (p.target == note.target and spare(p))]
            self.pending.append(note)
        dropped: list[Notification] = []
        while len(self.pending) > MAX_PENDING:
            victim = next((p for p in self.pending if spare(p)), self.pending[0])
            self.pending.remove(victim)
            dropped.append(victim)
        return dropped


@dataclass
class Report:
    """What one delivery did, channel by channel: for the round's summary and log lines."""

    accepted: dict[str, list[str]] = field(default_factory=dict)  # channel -> notification ids it accepted
    outcomes: dict[str, str] = field(default_factory=dict)  # channel -> "ok" | error | deferred reason
    messages: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # channel -> notifications in its message
    stopped: str | None = None  # a write-ahead failed: why nothing more was sent

    @property
    def sent(self) -> int:
        return sum(len(v) for v in self.accepted.values())


def _candidate(route: Sequence[str], failed: set[str]) -> str | None:
    return next((c for c in route if c not in failed), None)


async def deliver(
    outbox: Outbox,
    channels: Sequence[Channel],
    now: datetime,
    tokens: TokenProvider,
    *,
    route: Callable[[Notification], list[str]],
    status_page_url: str | None = None,
    tz: str = "UTC",
    checkpoint: Callable[[], None] = lambda: None,
    budget_s: float = 60.0,
) -> Report:
    """Send what the outbox owes: each channel once, in order; see the module docs for the rules."""
    report = Report()
    started = time.monotonic()
    stamp = now.timestamp()
    names = {c.name for c in channels}
    for gone in [c for c in outbox.inflight if c not in names]:
        del outbox.inflight[gone]  # a channel removed from the config: its batch is free to go elsewhere
    routes = {n.id: [c for c in route(n) if c in names] for n in outbox.pending}
    frozen = {i: ch for ch, rec in outbox.inflight.items() for i in rec.get("ids", [])}
    failed: set[str] = set()
    accepted: set[str] = set()
    for channel in channels:
        rec = outbox.inflight.get(channel.name)
        batch = [n for n in outbox.pending if rec and n.id in rec.get("ids", [])]
        if rec and not batch:
            del outbox.inflight[channel.name]
            rec = None
        if not rec:
            batch = [
                n
                for n in outbox.pending
                if n.id not in accepted and n.id not in frozen and _candidate(routes[n.id], failed) == channel.name
            ]
        if not batch:
            continue
        state = outbox.channels.setdefault(channel.name, {})
        if time.monotonic() - started > budget_s:
            report.outcomes[channel.name] = "deferred: the round's alert time budget is spent"
            continue
        if float(state.get("blocked_until") or 0) > stamp:
            failed.add(channel.name)
            for n in batch:
                frozen.pop(n.id, None)  # an unconfirmed batch waits here as the same message, and goes on now
            report.outcomes[channel.name] = f"paused until {iso(_utc(state['blocked_until']))} (channel asked to wait)"
            continue
        if channel.rate_limit:
            limit, window = channel.rate_limit
            state["sends"] = [t for t in state.get("sends", []) if t > stamp - window]
            if len(state["sends"]) >= limit:
                report.outcomes[channel.name] = f"deferred: {limit} messages in {window:.0f}s already (rate limit)"
                continue  # wait for the window rather than moving these to another channel
        msg_id = rec["msg_id"] if rec else Message.id_for(batch)
        attempts = (int(rec.get("attempts", 0)) if rec else 0) + 1
        outbox.inflight[channel.name] = {"ids": [n.id for n in batch], "msg_id": msg_id, "attempts": attempts}
        if channel.rate_limit:
            state.setdefault("sends", []).append(stamp)  # pruned to the window above, so it stays small
        try:
            checkpoint()  # write-ahead: a crash after sending resends this exact message, same id
        except StoreError as exc:
            report.stopped = str(exc)
            report.outcomes[channel.name] = f"not sent: {exc}"
            break
        message = Message(msg_id, tuple(sorted(batch, key=lambda n: n.rank)), now, status_page_url, tz)
        delivery = await _send(channel, message, tokens)
        report.messages += 1
        report.sizes[channel.name] = len(batch)
        if delivery.ok:
            accepted.update(n.id for n in batch)
            outbox.pending = [n for n in outbox.pending if n.id not in accepted]  # before the next write-ahead
            report.accepted[channel.name] = [n.id for n in batch]
            del outbox.inflight[channel.name]
            state.update(last_ok=iso(now), last_error=None)
            report.outcomes[channel.name] = "ok" + (f" ({delivery.detail})" if delivery.detail else "")
            continue
        state["last_error"] = delivery.error
        if delivery.ambiguous and attempts < MAX_AMBIGUOUS:
            report.outcomes[channel.name] = f"{delivery.error} (no answer: the same message is retried next round)"
            continue
        if delivery.retry_after_s:
            state["blocked_until"] = stamp + delivery.retry_after_s
        failed.add(channel.name)
        for n in batch:
            frozen.pop(n.id, None)  # free to go to the next channel of their route this round
        if delivery.ambiguous or attempts > 1:  # an attempt may have arrived: the batch keeps its id here
            report.outcomes[channel.name] = (
                f"{delivery.error} (unconfirmed after {attempts} attempts: the next channel takes it now, "
                "and it is resent here only as the same message)"
            )
            continue
        del outbox.inflight[channel.name]
        report.outcomes[channel.name] = str(delivery.error)
    waiting = {n.id for n in outbox.pending}
    for name in [c for c, rec in outbox.inflight.items() if not waiting.intersection(rec.get("ids", []))]:
        del outbox.inflight[name]  # every notification of that batch was delivered (here or elsewhere)
    return report


async def _send(channel: Channel, message: Message, tokens: TokenProvider) -> Delivery:
    try:
        return await channel.send(message, tokens)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a channel bug must not lose the round's state
        logs.get_logger("vpcprobe.alerts").error("channel_crashed", channel=channel.name, error=exc)
        return Delivery(False, f"channel error: {type(exc).__name__}")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), timezone.utc)
