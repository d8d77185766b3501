"""The outbox and delivery rules, against in-memory channels (no sockets, no store, an injected `now`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from shared.alerts import outbox as outbox_module
from shared.alerts.channels import Channel, Delivery, Message
from shared.alerts.outbox import MAX_AMBIGUOUS, Outbox, Report, deliver
from shared.alerts.policy import Notification, NotificationKind
from shared.credentials.provider import TokenProvider
from tests.alert_fixtures import at, firing

TOKENS = TokenProvider(environ={})


class Memory(Channel):
    """Answers with the given deliveries in turn (then accepts); an exception is raised instead."""

    def __init__(self, name: str, *answers: Delivery | Exception, rate_limit: tuple[int, float] | None = None):
        self.name, self.answers, self.rate_limit = name, list(answers), rate_limit
        self.sent: list[Message] = []

    async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
        self.sent.append(message)
        answer = self.answers.pop(0) if self.answers else Delivery(True)
        if isinstance(answer, Exception):
            raise answer
        return answer


def reminder(note: Notification, suffix: str) -> Notification:
    return replace(note, id=f"{note.id}-{suffix}", kind=NotificationKind.REMINDER)


def run(box: Outbox, *channels: Channel, minute: float = 1, **kw) -> Report:
    names = [c.name for c in channels]
    return asyncio.run(deliver(box, channels, at(minute), TOKENS, route=lambda _n: names, **kw))


def test_a_newer_notification_supersedes_an_unsent_reminder_but_not_one_awaiting_its_answer():
    [a, b] = firing(["a", "b"])
    box = Outbox(pending=[reminder(a, "r1"), reminder(b, "r1")], inflight={"ding": {"ids": [f"{b.id}-r1"]}})
    assert box.add([reminder(a, "r2"), reminder(b, "r2")]) == []
    assert [n.id for n in box.pending] == [f"{b.id}-r1", f"{a.id}-r2", f"{b.id}-r2"]


def test_a_full_outbox_drops_the_oldest_reminders_first(monkeypatch):
    monkeypatch.setattr(outbox_module, "MAX_PENDING", 3)
    notes = firing(["a", "b", "c", "d"])
    box = Outbox(pending=[notes[0], reminder(notes[1], "r")])
    dropped = box.add(notes[2:])
    assert [n.id for n in dropped] == [f"{notes[1].id}-r"]
    assert [n.target for n in box.pending] == ["a", "c", "d"]


def test_a_refused_message_falls_back_to_the_next_channel_in_the_same_round():
    ding, mail = Memory("ding", Delivery(False, "DingTalk errcode 310000")), Memory("mail")
    box = Outbox()
    box.add(firing(["a", "b"]))
    report = run(box, ding, mail)
    assert report.outcomes == {"ding": "DingTalk errcode 310000", "mail": "ok"}
    assert report.sent == 2 and report.messages == 2 and box.pending == [] and box.inflight == {}
    assert box.channels["ding"]["last_error"] == "DingTalk errcode 310000" and "last_ok" in box.channels["mail"]


def test_an_unanswered_message_is_resent_with_its_id_then_falls_back():
    no_answer = Delivery(False, "no answer from robot", ambiguous=True)
    ding, mail = Memory("ding", *[no_answer] * MAX_AMBIGUOUS), Memory("mail")
    box = Outbox()
    first = firing(["a"])
    box.add(first)
    run(box, ding, mail)
    assert box.inflight["ding"]["attempts"] == 1 and mail.sent == []
    box.add(firing(["b"]))  # waits: it must not join the unconfirmed message, nor go around it
    for minute in range(2, MAX_AMBIGUOUS + 1):
        report = run(box, ding, mail, minute=minute)
    assert [m.id for m in ding.sent] == [Message.id_for(first)] * MAX_AMBIGUOUS
    assert [n.target for n in mail.sent[0].notifications] == ["a", "b"]  # a possible duplicate beats a loss
    assert report.sent == 2 and box.pending == [] and box.inflight == {}


def test_the_batch_is_written_ahead_of_each_send():
    box = Outbox()
    box.add(firing(["a"]))
    seen: list[dict] = []
    run(box, Memory("ding"), checkpoint=lambda: seen.append(json.loads(json.dumps(box.to_doc()))))
    assert seen[0]["inflight"]["ding"]["ids"] == [n["id"] for n in seen[0]["pending"]]
    assert seen[0]["pending"][0]["kind"] == "firing"  # stored as the plain string
    assert box.inflight == {}


def test_a_crashing_channel_counts_as_a_failed_delivery():
    box = Outbox()
    box.add(firing(["a"]))
    report = run(box, Memory("ding", RuntimeError("bug")), Memory("mail"))
    assert report.outcomes == {"ding": "channel error: RuntimeError", "mail": "ok"}


def test_a_channel_that_asks_for_a_pause_is_skipped_until_it_ends():
    ding, mail = Memory("ding", Delivery(False, "too fast", retry_after_s=600)), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, mail)
    box.add(firing(["b"]))
    report = run(box, ding, mail, minute=5)
    assert report.outcomes == {"ding": "paused until 2026-11-22T01:11:00Z (channel asked to wait)", "mail": "ok"}
    assert len(ding.sent) == 1 and len(mail.sent) == 2
    box.add(firing(["c"]))
    assert run(box, ding, mail, minute=12).outcomes == {"ding": "ok"}


def test_a_rate_limit_defers_to_a_later_round_instead_of_falling_back():
    ding, mail = Memory("ding", rate_limit=(1, 60.0)), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, mail)
    box.add(firing(["b"]))
    report = run(box, ding, mail, minute=1.5)
    assert report.outcomes == {"ding": "deferred: 1 messages in 60s already (rate limit)"} and mail.sent == []
    assert [n.target for n in box.pending] == ["b"]
    assert run(box, ding, mail, minute=2.5).outcomes == {"ding": "ok"}


def test_a_spent_time_budget_leaves_everything_pending():
    box = Outbox()
    box.add(firing(["a"]))
    report = run(box, Memory("ding"), budget_s=-1)
    assert report.outcomes == {"ding": "deferred: the round's alert time budget is spent"} and len(box.pending) == 1


def test_a_channel_removed_from_the_config_frees_its_unconfirmed_batch():
    box = Outbox()
    box.add(firing(["a"]))
    box.inflight["gone"] = {"ids": [box.pending[0].id], "msg_id": "x", "attempts": 1}
    report = run(box, Memory("mail"))
    assert report.accepted == {"mail": [firing(["a"])[0].id]} and box.inflight == {}


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_the_document_round_trips_with_plain_strings(kind):
    note = replace(firing(["a"])[0], kind=kind)
    doc = json.loads(json.dumps(Outbox(pending=[note]).to_doc()))
    assert doc["pending"][0]["kind"] == kind.value and doc["pending"][0]["severity"] == "critical"
    again = Outbox.from_doc(doc)
    assert again.pending == [note] and again.pending[0].kind is kind
