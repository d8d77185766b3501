"""Delivery rules a planted bug slipped past: a route whose every channel failed, a batch that keeps its
message id when part of it went elsewhere or when the round that sent it died, a channel deferring or
pausing while a later one still sends, the exact edges of a pause and of a rate-limit window, and what a
round reports. Real channels against the loopback DingTalk robot and SMTP sink where the rule is about
what people see; in-memory channels where it is about the loop's bookkeeping."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from shared.alerts import outbox as outbox_module
from shared.alerts.channels import Channel, Delivery, Message
from shared.alerts.outbox import MAX_AMBIGUOUS, Outbox, Report, _send, deliver
from shared.config.load import parse_config
from shared.credentials.provider import TokenProvider
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.smtp_sink import SmtpSink
from shared.state.store import StoreError
from tests.alert_fixtures import at, firing
from tests.alerts.conftest import ENV
from tests.alerts.test_outbox import Memory, reminder
from tests.alerts.test_step import config_dict

TOKENS = TokenProvider(environ={})
FIRING = r"FIRING · \w+ — (\w+) \("  # an alert's heading in a DingTalk message or an email, with its target


def run(box: Outbox, *channels: Channel, minute: float = 1, routes: dict[str, list[str]] | None = None,
        **kw) -> Report:
    """One delivery at `minute`; `routes` gives a target its own channel list (else every channel)."""
    names = [c.name for c in channels]
    return asyncio.run(
        deliver(box, channels, at(minute), TOKENS, route=lambda n: (routes or {}).get(n.target, names), **kw)
    )


class Real:
    """The configured DingTalk and email channels against the loopback robot and sink, with deliver() run
    directly at a given minute (the robot's clock follows it)."""

    def __init__(self, tmp_path: Path, robot: DingTalkReceiver, sink: SmtpSink, routes: dict | None = None):
        self.alerts = parse_config(config_dict(tmp_path, robot, sink, routes=routes), path="vpcprobe.yaml").alerts
        self.robot, self.sink = robot, sink
        self.tokens = TokenProvider(environ=ENV)
        sink.messages.clear()  # the sink is shared by the module's tests

    def deliver(self, box: Outbox, minute: float, **kw) -> Report:
        now = at(minute)
        self.robot.clock = lambda: now.timestamp()
        return asyncio.run(
            deliver(box, self.alerts.channels, now, self.tokens, route=lambda n: self.alerts.route(n.target, n.kind),
                    **kw)
        )

    def shown(self) -> Counter:
        """Which targets' alerts people saw, where, and how often (the robot drops a repeated msgUuid)."""
        texts = [("ding", m["text"]) for m in self.robot.messages]
        texts += [("mail", m["message"].get_body(("plain",)).get_content()) for m in self.sink.messages]
        return Counter(f"{where} {name}" for where, text in texts for name in re.findall(FIRING, text))


# --- a full outbox ---------------------------------------------------------------------------------------


def test_a_full_outbox_without_a_spare_reminder_drops_the_oldest_notification(monkeypatch):
    """Only new alerts and a reminder in a batch awaiting its answer: none is a spare reminder, so the
    oldest pending notification goes, and only as many as needed."""
    monkeypatch.setattr(outbox_module, "MAX_PENDING", 2)
    a, b, c, d = firing(["a", "b", "c", "d"])
    held = reminder(a, "r")
    box = Outbox(pending=[held, b], inflight={"ding": {"ids": [held.id], "msg_id": "m", "attempts": 1}})
    assert box.add([c]) == [held]
    assert box.add([d]) == [b]
    assert [n.id for n in box.pending] == [c.id, d.id]


# --- routes whose channels failed ----------------------------------------------------------------------


def test_a_notification_whose_only_channel_failed_waits_while_another_falls_back(tmp_path, robot, sink):
    """a may only go to DingTalk, b to DingTalk then email: when the robot refuses, b goes by email and a
    (its route exhausted) stays pending for the next round instead of breaking the delivery."""
    real = Real(tmp_path, robot, sink, routes={"a": ["ding"], "b": ["ding", "mail"]})
    a, b = firing(["a", "b"])
    box = Outbox()
    box.add([a, b])
    robot.fail_next(310000, "sign not match")
    report = real.deliver(box, 1)
    assert report.outcomes["ding"].startswith("DingTalk") and "310000" in report.outcomes["ding"]
    assert report.outcomes["mail"] == "ok" and report.accepted == {"mail": [b.id]}
    assert [n.id for n in box.pending] == [a.id] and box.inflight == {}
    assert real.shown() == Counter({"mail b": 1})
    report = real.deliver(box, 2)  # the robot is back: a goes out now
    assert report.accepted == {"ding": [a.id]} and box.pending == []
    assert real.shown() == Counter({"mail b": 1, "ding a": 1})


def test_when_every_channel_fails_everything_stays_pending_and_nothing_is_held(tmp_path, robot, sink):
    """Both channels refuse (no ambiguity): nothing was delivered, nothing is unconfirmed, and the next
    round starts again from the first channel."""
    real = Real(tmp_path, robot, sink, routes={"a": ["ding"], "b": ["ding", "mail"]})
    a, b = firing(["a", "b"])
    box = Outbox()
    box.add([a, b])
    robot.fail_next(310000, "sign not match")
    sink.fail_next(550, "5.7.1 relaying denied")
    report = real.deliver(box, 1)
    assert set(report.outcomes) == {"ding", "mail"} and "550" in report.outcomes["mail"]
    assert report.sent == 0 and report.messages == 2 and report.sizes == {"ding": 2, "mail": 1}
    assert [n.id for n in box.pending] == [a.id, b.id] and box.inflight == {}
    assert box.channels["ding"]["last_error"] == report.outcomes["ding"]
    report = real.deliver(box, 2)
    assert report.accepted == {"ding": [a.id, b.id]} and report.outcomes == {"ding": "ok"}
    assert real.shown() == Counter({"ding a": 1, "ding b": 1})


# --- a batch that may have arrived keeps its message id ------------------------------------------------


def test_a_batch_resent_after_part_of_it_went_elsewhere_keeps_its_first_id(tmp_path, robot, sink):
    """DingTalk may have posted [a, b] (answer lost), then answers 502 twice: b falls back to email, a (DingTalk
    only) waits. When the robot is back, a is resent with the id of the message that may have arrived, so the
    robot drops it as a duplicate: a is shown once (a message with a new id would show it twice)."""
    real = Real(tmp_path, robot, sink, routes={"a": ["ding"], "b": ["ding", "mail"]})
    a, b = firing(["a", "b"])
    box = Outbox()
    box.add([a, b])
    robot.drop_next()
    robot.http_error_next(502, times=MAX_AMBIGUOUS - 1)
    for minute in range(1, MAX_AMBIGUOUS + 1):
        report = real.deliver(box, minute)
    assert report.outcomes["ding"] == (
        f"127.0.0.1:{robot.port} answered HTTP 502 (unconfirmed after {MAX_AMBIGUOUS} attempts: the next channel "
        "takes it now, and it is resent here only as the same message)"
    )
    assert report.accepted == {"mail": [b.id]} and [n.id for n in box.pending] == [a.id]
    first_id = Message.id_for([a, b])
    assert box.inflight["ding"] == {"ids": [a.id, b.id], "msg_id": first_id, "attempts": MAX_AMBIGUOUS}
    report = real.deliver(box, MAX_AMBIGUOUS + 1)
    assert report.accepted == {"ding": [a.id]} and box.pending == [] and box.inflight == {}
    assert robot.requests[-1].get("duplicate") and [m["msgUuid"] for m in robot.messages] == [first_id]
    assert real.shown() == Counter({"ding a": 1, "ding b": 1, "mail b": 1})  # b twice: a duplicate beats a loss


def test_the_round_after_a_killed_one_resends_its_written_ahead_batch_with_the_same_id(tmp_path, robot, sink):
    """In-process version of the killed-process test: the round dies after DingTalk posted but before it heard
    back, so the next round starts from the document written ahead of the send. It resends that batch alone,
    with its id (the robot drops it), and a notification that arrived since waits for a message of its own."""
    real = Real(tmp_path, robot, sink)
    a, b = firing(["a", "b"])
    box = Outbox()
    box.add([a])
    written: list[str] = []
    real.deliver(box, 1, checkpoint=lambda: written.append(json.dumps(box.to_doc())))
    assert len(written) == 1 and len(robot.messages) == 1
    box = Outbox.from_doc(json.loads(written[0]))  # what the next process reads: the send was never answered
    box.add([b])
    report = real.deliver(box, 2)
    assert report.accepted == {"ding": [a.id]} and report.sizes == {"ding": 1} and robot.requests[-1]["duplicate"]
    assert [n.id for n in box.pending] == [b.id] and box.inflight == {}
    report = real.deliver(box, 3)
    assert report.accepted == {"ding": [b.id]}
    assert [m["msgUuid"] for m in robot.messages] == [Message.id_for([a]), Message.id_for([b])]
    assert real.shown() == Counter({"ding a": 1, "ding b": 1}) and sink.messages == []


def test_an_earlier_channel_does_not_take_a_batch_still_unconfirmed_on_a_later_one():
    """mail refused a, so a went to ding, whose answer was lost. Next round mail works again, but a is in ding's
    unconfirmed batch: it is resent there as the same message, not also mailed."""
    mail, ding = Memory("mail", Delivery(False, "550 no")), Memory("ding", Delivery(False, "timeout", ambiguous=True))
    box = Outbox()
    box.add(firing(["a"]))
    run(box, mail, ding)
    assert box.inflight["ding"]["attempts"] == 1 and len(mail.sent) == 1
    report = run(box, mail, ding, minute=2)
    assert report.outcomes == {"ding": "ok"} and len(mail.sent) == 1
    assert [m.id for m in ding.sent] == [ding.sent[0].id] * 2 and box.pending == []


# --- one channel deferring, pausing or failing does not stop the later ones ----------------------------


def test_a_channel_with_nothing_to_send_does_not_stop_the_next_one():
    ding, mail = Memory("ding"), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    report = run(box, ding, mail, routes={"a": ["mail"]})
    assert report.outcomes == {"mail": "ok"} and ding.sent == [] and len(mail.sent) == 1


def test_a_spent_budget_defers_every_channel_that_has_something_to_send():
    box = Outbox()
    box.add(firing(["a", "b"]))
    report = run(box, Memory("ding"), Memory("mail"), routes={"a": ["ding"], "b": ["mail"]}, budget_s=-1)
    deferred = "deferred: the round's alert time budget is spent"
    assert report.outcomes == {"ding": deferred, "mail": deferred} and report.messages == 0 and len(box.pending) == 2


def test_a_rate_limited_channel_does_not_stop_the_next_one():
    ding, mail = Memory("ding", rate_limit=(1, 60.0)), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, mail)
    box.add(firing(["b", "c"]))
    report = run(box, ding, mail, minute=1.5, routes={"c": ["mail"]})
    assert report.outcomes == {"ding": "deferred: 1 messages in 60s already (rate limit)", "mail": "ok"}
    assert [n.target for n in mail.sent[0].notifications] == ["c"] and len(ding.sent) == 1
    assert [n.target for n in box.pending] == ["b"]


def test_an_unanswered_channel_does_not_stop_the_next_one():
    ding, mail = Memory("ding", Delivery(False, "timeout", ambiguous=True)), Memory("mail")
    a, b = firing(["a", "b"])
    box = Outbox()
    box.add([a, b])
    report = run(box, ding, mail, routes={"b": ["mail"]})
    assert report.outcomes == {
        "ding": "timeout (no answer: the same message is retried next round)",
        "mail": "ok",
    }
    assert report.accepted == {"mail": [b.id]} and box.inflight["ding"]["ids"] == [a.id]


def test_a_paused_channel_does_not_stop_the_next_one_and_sends_again_exactly_when_the_pause_ends():
    ding, mail = Memory("ding", Delivery(False, "too fast", retry_after_s=600)), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, mail)  # ding pauses until minute 11; a goes by mail
    assert box.channels["ding"]["blocked_until"] == at(11).timestamp()
    box.add(firing(["b"]))
    report = run(box, ding, mail, minute=10.9)
    assert report.outcomes == {"ding": "paused until 2026-11-22T01:11:00Z (channel asked to wait)", "mail": "ok"}
    box.add(firing(["c"]))
    assert run(box, ding, mail, minute=11).outcomes == {"ding": "ok"}  # the pause is over at its last second
    assert len(ding.sent) == 2 and len(mail.sent) == 2


def test_a_paused_channel_frees_its_unconfirmed_batch_for_the_next_channel():
    """ding's answer was lost, then ding asked to wait 10 minutes while mail refused: in the rounds of the
    pause the next channel is offered the batch at once, not only when the pause ends (found by mutation
    testing: the paused branch kept the batch frozen on ding)."""
    ding = Memory("ding", Delivery(False, "timeout", ambiguous=True), Delivery(False, "too fast", retry_after_s=600))
    mail = Memory("mail", Delivery(False, "550 no"))
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, mail)  # no answer from ding: a waits there as the same message
    run(box, ding, mail, minute=2)  # ding: too fast (paused until minute 12); mail: refused
    assert box.channels["ding"]["blocked_until"] == at(12).timestamp() and len(mail.sent) == 1
    report = run(box, ding, mail, minute=3)
    assert report.outcomes == {"ding": "paused until 2026-11-22T01:12:00Z (channel asked to wait)", "mail": "ok"}
    assert box.pending == [] and box.inflight == {} and len(ding.sent) == 2


def test_a_send_exactly_one_window_ago_no_longer_counts_against_the_rate_limit():
    ding = Memory("ding", rate_limit=(1, 60.0))
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding, minute=1)
    box.add(firing(["b"]))
    assert run(box, ding, minute=1.99).outcomes == {"ding": "deferred: 1 messages in 60s already (rate limit)"}
    assert run(box, ding, minute=2).outcomes == {"ding": "ok"}
    assert box.channels["ding"]["sends"] == [at(2).timestamp()] and len(ding.sent) == 2


# --- what a round reports and keeps --------------------------------------------------------------------


def test_a_failed_write_ahead_stops_the_round_with_its_reason():
    ding, mail = Memory("ding"), Memory("mail")
    box = Outbox()
    box.add(firing(["a", "b"]))

    def lost() -> None:
        raise StoreError("the alert lease was lost")

    report = run(box, ding, mail, routes={"b": ["mail"]}, checkpoint=lost)
    assert report.stopped == "the alert lease was lost"
    assert report.outcomes == {"ding": "not sent: the alert lease was lost"} and ding.sent == mail.sent == []
    assert report.messages == 0 and len(box.pending) == 2


def test_the_message_carries_the_status_page_and_time_zone_and_the_report_its_size():
    ding = Memory("ding")
    box = Outbox()
    box.add(firing(["b", "a"]))
    report = run(box, ding, status_page_url="https://status.example.com/", tz="Asia/Shanghai")
    [message] = ding.sent
    assert (message.status_page_url, message.timezone, message.now) == ("https://status.example.com/",
                                                                        "Asia/Shanghai", at(1))
    assert [n.target for n in message.notifications] == ["a", "b"] and message.id == Message.id_for(firing(["a", "b"]))
    assert report.sizes == {"ding": 2} and report.messages == 1


def test_a_success_after_a_failure_records_when_and_clears_the_error():
    ding = Memory("ding", Delivery(False, "DingTalk errcode 310000"))
    box = Outbox()
    box.add(firing(["a"]))
    run(box, ding)
    assert box.channels["ding"] == {"last_error": "DingTalk errcode 310000"}
    run(box, ding, minute=2)
    assert box.channels["ding"] == {"last_error": None, "last_ok": "2026-11-22T01:02:00Z"}


def test_an_accepted_message_with_a_detail_says_it_in_the_outcome():
    box = Outbox()
    box.add(firing(["a"]))
    report = run(box, Memory("ding", Delivery(True, detail="truncated 2 entries")))
    assert report.outcomes == {"ding": "ok (truncated 2 entries)"}


# --- a crashing channel ---------------------------------------------------------------------------------


def test_a_crashing_channel_is_a_failed_delivery_logged_with_its_name_and_error(capsys):
    """A bug in a channel must not lose the round: its exception becomes a refusal (the next channel takes
    the batch) and one error line naming the channel."""
    ding, mail = Memory("ding", RuntimeError("bug in the markdown")), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    capsys.readouterr()
    report = run(box, ding, mail)
    assert report.outcomes == {"ding": "channel error: RuntimeError", "mail": "ok"} and box.inflight == {}
    assert box.channels["ding"]["last_error"] == "channel error: RuntimeError"
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    crashed = [line for line in lines if line.get("event") == "channel_crashed"]
    assert len(crashed) == 1 and crashed[0]["channel"] == "ding" and crashed[0]["level"] == "error"
    assert crashed[0]["error"] == "RuntimeError: bug in the markdown"
    again = asyncio.run(_send(Memory("ding", RuntimeError("again")), ding.sent[0], TOKENS))
    assert again == Delivery(False, "channel error: RuntimeError")  # a plain refusal: ok is False, not just falsy


def test_a_cancelled_send_cancels_the_delivery_instead_of_counting_as_a_refusal():
    """Cancellation (the round's deadline) is not a channel failure: it propagates, and nothing falls back."""
    class Cancelled(Memory):
        async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
            self.sent.append(message)
            raise asyncio.CancelledError

    ding, mail = Cancelled("ding"), Memory("mail")
    box = Outbox()
    box.add(firing(["a"]))
    with pytest.raises(asyncio.CancelledError):
        run(box, ding, mail)
    assert len(ding.sent) == 1 and mail.sent == [] and len(box.pending) == 1 and box.inflight["ding"]["attempts"] == 1
