"""DingTalk: the channel against the loopback robot, which checks signatures, limits and sizes like the real one."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from datetime import timedelta
from urllib.parse import quote, quote_plus

import httpx
import pytest

from shared.alerts.channels.dingtalk import MAX_BODY, DingTalk, sign
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.local.dingtalk_receiver import DingTalkReceiver
from tests.alert_fixtures import at, firing, message

TOKEN, SECRET = "robot-canary-token-7", "SECcanary-signing-secret-9"
ENV = {"DT_TOKEN": TOKEN, "DT_SECRET": SECRET, "DT_WRONG": "SECnot-the-secret-000"}
TOKENS = TokenProvider(environ=ENV)


@pytest.fixture
def robot():
    r = DingTalkReceiver({TOKEN: SECRET, "unsigned-robot": None}, clock=lambda: at(1).timestamp()).start()
    yield r
    r.stop()


def channel(robot: DingTalkReceiver, **kw) -> DingTalk:
    kw.setdefault("at_mobiles", ("13800000000",))
    secret = kw.pop("secret", CredentialRef("env", "DT_SECRET"))
    return DingTalk("ops", CredentialRef("env", kw.pop("token_env", "DT_TOKEN")), secret, url=robot.url, **kw)


def send(ch: DingTalk, msg):
    return asyncio.run(ch.send(msg, TOKENS))


def test_signed_markdown_message_with_mentions_is_posted(robot):
    msg = message(firing(["qwen-a", "llm-eas"]), status_page_url="https://status.example.com")
    d = send(channel(robot), msg)
    assert d.ok and d.error is None
    [posted] = robot.messages
    assert posted["signed"] and posted["msgtype"] == "markdown" and posted["msgUuid"] == msg.id
    assert posted["notified"] == ["13800000000"]  # atMobiles plus "@13800000000" in the text
    assert posted["title"].startswith("[vpcprobe] CRITICAL: 2 alerting (2 critical)")
    text = posted["text"]
    for fact in ("FIRING · CRITICAL — llm-eas (dashscope)", "connect_refused", "127.0.0.3:80", "total 5 ms",
                 "(for 1m)", "[Status page](https://status.example.com)", "2026-11-22 09:00:00 CST"):
        assert fact in text, fact


def test_signature_must_be_url_encoded(robot):
    # find a round time whose signature contains '+', which only survives the query string URL-encoded
    now = next(at(1) + timedelta(milliseconds=i) for i in range(1000)
               if "+" in sign(SECRET, str(int((at(1) + timedelta(milliseconds=i)).timestamp() * 1000))))
    ts = str(int(now.timestamp() * 1000))
    raw = httpx.post(f"{robot.url}?access_token={TOKEN}&timestamp={ts}&sign={sign(SECRET, ts)}",
                     json={"msgtype": "text", "text": {"content": "x"}})
    assert raw.json() == {"errcode": 310000, "errmsg": robot.requests[-1]["errmsg"]}
    assert "sign not match" in raw.json()["errmsg"]
    assert send(channel(robot), message(firing(["a"]), now=now)).ok


def test_wrong_secret_stale_timestamp_and_unknown_token_are_refused_on_http_200(robot):
    d = send(channel(robot, secret=CredentialRef("env", "DT_WRONG")), message(firing(["a"])))
    assert not d.ok and not d.ambiguous and "errcode 310000: sign not match" in d.error
    assert "check the signing secret" in d.error
    errors = [d.error]
    d = send(channel(robot), message(firing(["a"]), now=at(1) + timedelta(hours=2)))
    assert not d.ok and "errcode 310000: invalid timestamp" in d.error
    errors.append(d.error)
    d = send(channel(robot, token_env="DT_WRONG"), message(firing(["a"])))
    assert not d.ok and "errcode 300001: token is not exist" in d.error
    errors.append(d.error)
    assert robot.messages == []
    for err in errors:
        assert TOKEN not in err and SECRET not in err and ENV["DT_WRONG"] not in err


def test_unsigned_robot_and_missing_credential():
    with DingTalkReceiver({"unsigned-robot": None}, clock=lambda: at(1).timestamp()) as robot:
        ch = DingTalk("u", CredentialRef("env", "UNSIGNED"), None, url=robot.url)
        assert asyncio.run(ch.send(message(firing(["a"])), TokenProvider(environ={"UNSIGNED": "unsigned-robot"}))).ok
        assert robot.messages[0]["signed"] is False
        d = asyncio.run(ch.send(message(firing(["a"])), TokenProvider(environ={})))
        assert not d.ok and "credential unavailable: env:UNSIGNED" in d.error


def test_injected_errcodes_and_the_throttle_answer(robot):
    robot.fail_next(130101, "send too fast, exceed 20 times per minute")
    d = send(channel(robot), message(firing(["a"])))
    assert not d.ok and d.retry_after_s == 600 and "130101" in d.error and "blocks this robot for 10 minutes" in d.error
    robot.http_error_next(502)
    d = send(channel(robot), message(firing(["a"])))
    assert not d.ok and d.ambiguous and "HTTP 502" in d.error


def test_robot_enforces_20_a_minute_then_10_minutes_throttled(robot):
    clock = {"t": at(1).timestamp()}
    robot.clock = lambda: clock["t"]
    ch = channel(robot, at_mobiles=())
    outcomes = []
    for i in range(22):
        clock["t"] = at(1).timestamp() + i  # 22 messages in 22 seconds
        outcomes.append(send(ch, message(firing([f"t{i}"]), now=at(1) + timedelta(seconds=i))).ok)
    assert outcomes == [True] * 20 + [False, False]
    clock["t"] += 300
    assert not send(ch, message(firing(["later"]), now=at(6))).ok  # still inside the 10 minutes
    clock["t"] += 320
    assert send(ch, message(firing(["after"]), now=at(12))).ok


def test_msg_uuid_makes_a_retry_post_once(robot):
    msg = message(firing(["a"]))
    assert send(channel(robot), msg).ok and send(channel(robot), msg).ok
    assert len(robot.messages) == 1 and robot.requests[-1].get("duplicate")


def test_lost_answer_is_ambiguous_and_the_retry_is_deduplicated(robot):
    msg = message(firing(["a"]))
    robot.drop_next()
    d = send(channel(robot), msg)
    assert not d.ok and d.ambiguous and "no answer from 127.0.0.1" in d.error
    assert send(channel(robot), msg).ok
    assert len(robot.messages) == 1


def test_connection_refused_is_definite():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        ch = DingTalk("x", CredentialRef("env", "DT_TOKEN"), url=f"http://127.0.0.1:{port}/robot/send")
        d = asyncio.run(ch.send(message(firing(["a"])), TOKENS))
    assert not d.ok and not d.ambiguous and d.error.startswith("cannot connect to 127.0.0.1:")


def test_big_round_fits_in_one_message_under_20000_bytes(robot):
    notes = firing([f"target-{i:03d}-with-a-longer-name" for i in range(200)])
    d = send(channel(robot), message(notes))
    assert d.ok and "summarized" in d.detail
    [posted] = robot.messages
    assert posted["bytes"] <= MAX_BODY and len(robot.requests) == 1
    shown = posted["text"].count("##### ")
    assert 10 < shown < 200
    assert f"{200 - shown} more not shown" in posted["text"]
    # the ones not shown are named in order while the line has room, the rest counted
    listed = posted["text"].split("see the logs or the status page): ", 1)[1].split("\n", 1)[0]
    names, _, counted = listed.partition(", … (")
    names = names.split(", ")
    assert names == [f"target-{i:03d}-with-a-longer-name" for i in range(shown, shown + len(names))]
    assert counted == (f"{200 - shown - len(names)} more)" if shown + len(names) < 200 else "")


def test_oversized_body_is_what_the_robot_refuses(robot):
    body = json.dumps({"msgtype": "text", "text": {"content": "x" * MAX_BODY}})
    r = httpx.post(f"{robot.url}?access_token=unsigned-robot", content=body)
    assert r.json() == {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}


def test_resolved_only_messages_mention_nobody(robot):
    from shared.alerts.policy import decide
    from tests.alert_fixtures import result

    state: dict = {}
    for minute, status in enumerate(["down", "down", "up"]):
        state, notes = decide([result("a", status, at(minute))], state, at(minute))
    assert send(channel(robot), message(notes, now=at(2))).ok
    posted = robot.messages[0]
    assert posted["notified"] == [] and "@13800000000" not in posted["text"] and "✅ RESOLVED — a" in posted["text"]
    assert "was down for 2m" in posted["text"]


@pytest.mark.parametrize("echo", [
    lambda s: quote(s, safe=""), lambda s: quote_plus(s), lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: json.dumps(s)[1:-1], lambda s: s,
])
def test_an_errmsg_that_echoes_the_token_or_signing_secret_in_any_form_is_masked(robot, echo):
    """Was: `errmsg` quoting the URL-encoded signing secret reached the logs, stderr and state.json."""
    robot.fail_next(310000, f"sign not match, secret={echo(SECRET)} access_token={echo(TOKEN)} (ip 127.0.0.1)")
    d = send(channel(robot), message(firing(["a"])))
    assert not d.ok and d.error.startswith("DingTalk errcode 310000: sign not match, secret=*** access_token=***")
    for form in (SECRET, TOKEN, echo(SECRET), echo(TOKEN)):
        assert form not in d.error
