"""The alert step wires the config's maintenance windows and per-target policies into the state
machine (a planted bug that dropped either survived every test), and the round's alert time budget
defers delivery instead of sending late."""

from __future__ import annotations

import asyncio

import pytest

from shared.alerts.outbox import Outbox, deliver
from shared.alerts.policy import decide
from shared.alerts.step import run_alerts
from shared.config.load import parse_config
from shared.credentials.provider import TokenProvider
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.state.file import FileStore
from tests.alert_fixtures import at, result

TOKEN, SECRET = "robot-canary-token-41", "SECcanary-robot-secret-42"
TOKENS = TokenProvider(environ={"DT_TOKEN": TOKEN, "DT_SECRET": SECRET})


@pytest.fixture
def robot():
    r = DingTalkReceiver({TOKEN: SECRET}, clock=lambda: at(0).timestamp()).start()
    yield r
    r.stop()


def alerts_config(tmp_path, robot, **top):
    channel = {
        "name": "ding",
        "type": "dingtalk",
        "url": robot.url,
        "access_token": "env:DT_TOKEN",
        "secret": "env:DT_SECRET",
    }
    targets = [
        {"name": "a", "kind": "dashscope", "endpoint": "http://ep-a.dashscope.ap-southeast-1.privatelink.aliyuncs.com"},
        {
            "name": "b",
            "kind": "dashscope",
            "endpoint": "http://ep-b.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
            "alerts": {"failure_threshold": 1},
        },
    ]
    data = {
        "targets": targets,
        "state": {"backend": "file", "path": str(tmp_path / "state")},
        "alerts": {"failure_threshold": 3, "channels": [channel]},
        **top,
    }
    return parse_config(data, path="vpcprobe.yaml").alerts


def round_at(alerts, robot, minute, statuses):
    when = at(minute)
    robot.clock = lambda: when.timestamp()
    results = [result(name, status, when) for name, status in statuses.items()]
    store = FileStore(alerts.store.path)
    return asyncio.run(run_alerts(alerts, results, now=when, tokens=TOKENS, store=store))


def fired(robot):
    return [(m["title"], m["msgUuid"]) for m in robot.messages]


def test_per_target_failure_threshold_reaches_the_step(tmp_path, robot):
    alerts = alerts_config(tmp_path, robot)
    sent = []
    for minute in range(3):
        s = round_at(alerts, robot, minute, {"a": "down", "b": "down"})
        sent.append((s["new"], s["sent"]))
    assert sent == [(1, 1), (0, 0), (1, 1)]  # b at its threshold of 1, a at the top-level 3
    assert ["b" in t and "a" not in t.split("—")[-1] for t, _ in fired(robot)][:1] == [True]
    assert len(robot.messages) == 2 and len({u for _, u in fired(robot)}) == 2


def test_a_maintenance_window_holds_alerts_back_until_it_ends(tmp_path, robot):
    window = {"name": "upgrade", "start": at(-5).isoformat(), "end": at(10).isoformat(), "targets": ["b"]}
    alerts = alerts_config(tmp_path, robot, maintenance=[window])
    sent = [round_at(alerts, robot, m, {"a": "up", "b": "down"})["sent"] for m in (0, 5, 9)]
    assert sent == [0, 0, 0] and robot.messages == []
    s = round_at(alerts, robot, 10, {"a": "up", "b": "down"})
    assert (s["new"], s["sent"]) == (1, 1)
    [posted] = robot.messages
    assert "b (dashscope)" in posted["text"] and "upgrade" in posted["text"]


def test_a_spent_time_budget_defers_and_keeps_the_notifications(tmp_path, robot):
    alerts = alerts_config(tmp_path, robot)
    _, notes = decide([result("b", "down", at(1))], {}, at(1), policy=alerts.policy_for)  # b's threshold: 1
    assert len(notes) == 1
    outbox = Outbox()
    outbox.add(notes)

    def send(budget_s):
        return asyncio.run(deliver(outbox, alerts.channels, at(1), TOKENS, route=lambda n: ["ding"], budget_s=budget_s))

    report = send(-1.0)
    assert report.outcomes == {"ding": "deferred: the round's alert time budget is spent"}
    assert report.messages == 0 and robot.messages == [] and [n.id for n in outbox.pending] == [notes[0].id]
    report = send(60.0)
    assert report.messages == 1 and outbox.pending == [] and len(robot.messages) == 1
