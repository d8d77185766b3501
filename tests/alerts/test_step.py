"""Alert delivery end to end: state machine + store + lease + real channels against loopback servers.

Every round here is `run_alerts` with an injected `now`; the DingTalk robot's clock follows it, so
signatures, rate limits and throttles behave as they would over minutes and hours, in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from shared.alerts.step import run_alerts
from shared.config.load import parse_config
from shared.credentials.provider import TokenProvider
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.smtp_sink import SmtpSink
from shared.state.file import FileStore
from shared.state.store import Store
from tests.alert_fixtures import at, result
from tests.alerts.conftest import ENV, PASSWORD, SECRET, TOKEN, USER

ROOT = Path(__file__).resolve().parents[2]


def config_dict(tmp_path: Path, robot: DingTalkReceiver, sink: SmtpSink | None = None, *, targets=("a", "b", "c"),
                failure_threshold: int = 2, routes: dict | None = None) -> dict:
    channels = [{"name": "ding", "type": "dingtalk", "url": robot.url, "access_token": "env:DT_TOKEN",
                 "secret": "env:DT_SECRET", "at_mobiles": ["13800000000"]}]
    if sink is not None:
        channels.append({"name": "mail", "type": "email", "host": "127.0.0.1", "port": sink.port, "security": "ssl",
                         "username": USER, "password": "env:SMTP_PASSWORD", "from": USER, "to": ["oncall@example.com"],
                         "ca_bundle": sink.ca_path})
    return {
        "targets": [
            {"name": t, "kind": "dashscope", "endpoint": f"http://ep-{t}.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
             **({"alerts": {"channels": routes[t]}} if routes and t in routes else {})}
            for t in targets
        ],
        "state": {"backend": "file", "path": str(tmp_path / "state")},
        "alerts": {"failure_threshold": failure_threshold, "channels": channels},
    }


class Rounds:
    """Runs alert rounds against one store, with the robot's clock following the rounds' `now`."""

    def __init__(self, cfg: dict, robot: DingTalkReceiver):
        self.alerts = parse_config(cfg, path="vpcprobe.yaml").alerts
        self.robot = robot
        self.store_path = cfg["state"]["path"]
        self.tokens = TokenProvider(environ=ENV)

    def run(self, when: datetime, statuses: dict[str, str], *, owner: str | None = None, later_s: float = 0,
            store: Store | None = None) -> dict:
        """One round at `when`; `later_s` moves the store's lease clock (a dead round's lease expiring)."""
        results = [result(name, status, when) for name, status in statuses.items()]
        store = store or FileStore(self.store_path, clock=lambda: time.time() + later_s)
        return self.run_results(when, results, owner=owner, store=store)

    def run_results(self, when: datetime, results: list, *, owner: str | None = None,
                    store: Store | None = None) -> dict:
        """One round at `when` with these probe results."""
        self.robot.clock = lambda: when.timestamp()
        store = store or FileStore(self.store_path)
        return asyncio.run(run_alerts(self.alerts, results, now=when, tokens=self.tokens, store=store, owner=owner))


def entries(texts: list[str]) -> list[str]:
    """Every per-target heading in the delivered messages, e.g. 'FIRING · CRITICAL — a'."""
    found = []
    for text in texts:
        found += re.findall(r"(FIRING · \w+|RESOLVED|REMINDER · \w+|CHANGED · [\w →]+?) — ([\w-]+) \(", text)
    return [f"{kind} — {name}" for kind, name in found]


def test_dingtalk_down_for_rounds_then_back_delivers_every_alert_exactly_once(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down", "b": "up", "c": "up"})
    robot.fail_next(310000, "sign not match", times=3)
    s = rounds.run(at(1), {"a": "down", "b": "down", "c": "up"})  # a fires; robot refuses
    assert (s["new"], s["sent"], s["pending"]) == (1, 0, 1) and "310000" in s["channels"]["ding"]
    s = rounds.run(at(2), {"a": "down", "b": "down", "c": "up"})  # b fires; refused again
    assert (s["sent"], s["pending"]) == (0, 2)
    s = rounds.run(at(3), {"a": "up", "b": "down", "c": "down"})  # a resolves; refused again
    assert (s["sent"], s["pending"]) == (0, 3)
    robot.drop_next()  # posted, but the answer is lost: the same message must not post twice
    s = rounds.run(at(4), {"a": "up", "b": "down", "c": "down"})  # c fires
    assert (s["sent"], s["pending"]) == (0, 4) and "retried next round" in s["channels"]["ding"]
    s = rounds.run(at(5), {"a": "up", "b": "up", "c": "down"})  # b resolves: waits behind the retry
    assert (s["sent"], s["pending"]) == (4, 1)
    s = rounds.run(at(6), {"a": "up", "b": "up", "c": "down"})
    assert (s["sent"], s["pending"]) == (1, 0)
    posted = [m["text"] for m in robot.messages]
    assert len(posted) == 2  # round 4's message (once, despite the retry) and round 6's
    assert sorted(entries(posted)) == sorted(
        ["FIRING · CRITICAL — a", "FIRING · CRITICAL — b", "RESOLVED — a", "FIRING · CRITICAL — c", "RESOLVED — b"]
    )
    assert robot.requests[-2].get("duplicate")  # round 5 resent round 4's message id, and it was dropped
    assert [m["notified"] for m in robot.messages] == [["13800000000"], []]  # a recovery-only message @s nobody


def test_failed_dingtalk_falls_back_to_email_in_the_same_round(tmp_path, robot, sink):
    sink.messages.clear()
    rounds = Rounds(config_dict(tmp_path, robot, sink), robot)
    rounds.run(at(0), {"a": "down", "b": "up"})
    robot.fail_next(310000, "sign not match")
    s = rounds.run(at(1), {"a": "down", "b": "down"})
    assert s["sent"] == 1 and s["channels"]["mail"] == "ok" and robot.messages == []
    assert entries([sink.messages[0]["message"].get_body(("plain",)).get_content()]) == ["FIRING · CRITICAL — a"]
    s = rounds.run(at(2), {"a": "down", "b": "down"})  # robot works again: b goes to DingTalk, a is not repeated
    assert entries([m["text"] for m in robot.messages]) == ["FIRING · CRITICAL — b"] and len(sink.messages) == 1
    # "sending too fast": DingTalk pauses the robot for 10 minutes; meanwhile email carries the alerts
    robot.fail_next(130101, "send too fast, exceed 20 times per minute")
    s = rounds.run(at(3), {"a": "up", "b": "down"})
    assert s["channels"]["mail"] == "ok" and len(sink.messages) == 2
    before = len(robot.requests)
    s = rounds.run(at(9), {"a": "up", "b": "up"})
    assert len(robot.requests) == before and s["channels"]["ding"].startswith("paused until")
    assert entries([sink.messages[-1]["message"].get_body(("plain",)).get_content()]) == ["RESOLVED — b"]
    s = rounds.run(at(14), {"a": "down", "b": "up"})
    s = rounds.run(at(15), {"a": "down", "b": "up"})
    assert s["channels"] == {"ding": "ok"}  # the pause is over
    channels = json.loads((tmp_path / "state" / "state.json").read_text())["channels"]
    assert "sends" not in channels["mail"] and len(channels["ding"]["sends"]) <= 19  # bounded state


def test_send_resolved_false_swallows_recoveries_instead_of_falling_back(tmp_path, robot, sink):
    sink.messages.clear()
    cfg = config_dict(tmp_path, robot, sink)
    cfg["alerts"]["channels"][0]["send_resolved"] = False
    rounds = Rounds(cfg, robot)
    for minute, status in enumerate(["down", "down", "up"]):
        s = rounds.run(at(minute), {"a": status})
    assert (s["new"], s["sent"], s["pending"]) == (1, 0, 0)  # decided and logged, but sent nowhere
    assert entries([m["text"] for m in robot.messages]) == ["FIRING · CRITICAL — a"] and sink.messages == []


def test_one_message_per_round_per_channel_for_fifty_transitions(tmp_path, robot):
    names = [f"llm-target-{i:03d}" for i in range(200)]
    rounds = Rounds(config_dict(tmp_path, robot, targets=names), robot)
    statuses = {n: ("down" if i < 50 else "up") for i, n in enumerate(names)}
    rounds.run(at(0), statuses)
    s = rounds.run(at(1), statuses)
    assert (s["new"], s["sent"], s["messages"], s["pending"]) == (50, 50, 1, 0)
    assert len(robot.requests) == 1 and robot.messages[0]["bytes"] <= 20_000


def test_client_limiter_stays_under_the_robots_20_a_minute(tmp_path, robot):
    names = [f"t{i}" for i in range(25)]
    rounds = Rounds(config_dict(tmp_path, robot, targets=names, failure_threshold=1), robot)
    state = {n: "up" for n in names}
    for i, name in enumerate(names):  # a new target goes down every 2 seconds: one message a round
        state[name] = "down"
        rounds.run(at(0) + timedelta(seconds=2 * i), dict(state))
    assert len(robot.messages) == 19 and all(r["errcode"] == 0 for r in robot.requests)
    s = rounds.run(at(1) + timedelta(seconds=30), dict(state))  # the window has room again
    assert s["sent"] == 6 and s["messages"] == 1
    assert sorted(entries([m["text"] for m in robot.messages])) == sorted(f"FIRING · CRITICAL — {n}" for n in names)


def test_a_round_without_the_lease_probes_but_leaves_sending_to_the_holder(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down"})
    holder = FileStore(rounds.store_path)
    assert holder.acquire_lease("slow-round", 120)
    s = rounds.run(at(1), {"a": "down"})
    assert s == {"skipped": "another round holds the alert lease"} and robot.requests == []
    holder.release("slow-round")
    assert rounds.run(at(2), {"a": "down"})["sent"] == 1


def test_two_rounds_at_once_send_once(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down", "b": "down"})
    gate = threading.Barrier(4)
    summaries: list[dict] = []

    def overlapping(i: int) -> None:
        gate.wait()
        summaries.append(rounds.run(at(1), {"a": "down", "b": "down"}, owner=f"round-{i}"))

    threads = [threading.Thread(target=overlapping, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sum(s.get("sent", 0) for s in summaries) == 2
    assert sorted(entries([m["text"] for m in robot.messages])) == ["FIRING · CRITICAL — a", "FIRING · CRITICAL — b"]


CHILD = """
import asyncio, sys
from datetime import datetime
sys.path.insert(0, {tests!r})
from tests.alert_fixtures import result
from shared.config.load import load_config
from shared.alerts.step import run_alerts
from shared.credentials.provider import TokenProvider
alerts = load_config({config!r}).alerts
now = datetime.fromisoformat(sys.argv[1])
results = [result(n, s, now) for n, s in (p.split("=") for p in sys.argv[2:])]
print(asyncio.run(run_alerts(alerts, results, now=now, tokens=TokenProvider(environ={env!r}))), flush=True)
"""


def test_process_killed_between_and_during_rounds_loses_and_repeats_nothing(tmp_path, robot):
    cfg_path = tmp_path / "vpcprobe.yaml"
    cfg_path.write_text(yaml.safe_dump(config_dict(tmp_path, robot)))
    script = CHILD.format(tests=str(ROOT / "tests"), config=str(cfg_path), env=ENV)
    child_env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child(when: datetime, *states: str) -> subprocess.Popen:
        robot.clock = lambda: when.timestamp()
        return subprocess.Popen([sys.executable, "-c", script, when.isoformat(), *states], env=child_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = child(at(0), "a=down")
    assert "'new': 0" in first.communicate(timeout=60)[0]  # one failed round, saved; the process ends
    # the second process is killed while DingTalk has its message but before it hears back or saves
    victim = child(at(1), "a=down", "b=down")
    robot.on_message = lambda _m: os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL and len(robot.messages) == 1
    robot.on_message = None
    third = child(at(2), "a=down", "b=down")
    out = third.communicate(timeout=60)[0]
    assert "{'skipped': 'another round holds the alert lease'}" in out  # the dead round's lease, until it expires
    rounds = Rounds(yaml.safe_load(cfg_path.read_text()), robot)
    s = rounds.run(at(3), {"a": "down", "b": "down"}, later_s=121)  # b fires now; a's message is unconfirmed
    assert (s["new"], s["sent"], s["pending"]) == (1, 1, 1)  # the written-ahead message, resent with its id...
    assert len(robot.messages) == 1 and robot.requests[-1].get("duplicate")  # ...which DingTalk drops
    s = rounds.run(at(4), {"a": "down", "b": "down"}, later_s=121)
    assert (s["sent"], s["pending"]) == (1, 0)
    assert entries([m["text"] for m in robot.messages]) == ["FIRING · CRITICAL — a", "FIRING · CRITICAL — b"]
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["targets"]["a"]["state"] == "firing" and state["pending"] == [] and state["inflight"] == {}


def test_no_secret_in_any_message_log_line_error_or_file(tmp_path, robot, sink, capsys, caplog, monkeypatch):
    """Canary secrets planted everywhere a secret lives; everything captured is scanned for them."""
    canaries = [TOKEN, SECRET, PASSWORD, "sk-canary-dashscope-34", "eas-canary-token-35", "SECinline-canary-36"]
    monkeypatch.setenv("DASHSCOPE_API_KEY", canaries[3])
    monkeypatch.setenv("EAS_TOKEN", canaries[4])
    caplog.set_level("DEBUG")  # stdlib logging too: httpx logs request URLs, and the URL carries the token
    sink.messages.clear()
    seen: list[str] = []
    cfg = config_dict(tmp_path, robot, sink)
    rounds = Rounds(cfg, robot)
    rounds.tokens = TokenProvider(environ={**ENV, "SMTP_PASSWORD": "wrong-" + PASSWORD})
    rounds.run(at(0), {"a": "down"})
    # the robot echoes the token in its error (the real one doesn't; a proxy might): it must be masked
    robot.fail_next(310000, f"sign not match for access_token={TOKEN}&sign=x and secret {SECRET}")
    seen.append(json.dumps(rounds.run(at(1), {"a": "down"})))  # DingTalk refuses, email login fails
    rounds.tokens = TokenProvider(environ=ENV)
    seen.append(json.dumps(rounds.run(at(2), {"a": "down", "b": "down"})))  # a goes out by DingTalk
    robot.fail_next(310000, "sign not match")
    seen.append(json.dumps(rounds.run(at(3), {"a": "down", "b": "down"})))  # b falls back to email
    bad = dict(cfg, alerts={"channels": [{"name": "x", "type": "dingtalk", "access_token": canaries[5]}]})
    with pytest.raises(Exception) as info:
        parse_config(bad, path="bad.yaml")
    seen.append(str(info.value))
    out, err = capsys.readouterr()  # the JSON log lines are on stdout
    assert '"event": "alert_delivery"' in out and "HTTP Request: POST" in caplog.text
    seen += [out, err, caplog.text]
    seen += [m["text"] + json.dumps(m["at"]) for m in robot.messages]
    seen += [m["data"].decode(errors="replace") for m in sink.messages]
    seen += [p.read_text(errors="replace") for p in (tmp_path / "state").iterdir()]
    # the failure paths really ran: the echoing robot, the refused login, and deliveries afterwards
    assert "DingTalk errcode 310000: sign not match for access_token=***" in seen[0] and "refused (535)" in seen[0]
    assert len(robot.messages) == 1 and len(sink.messages) == 1
    everything = "\n".join(seen)
    for canary in canaries:
        assert canary not in everything, canary


# --- wiring: the FC handler, `vpcprobe check --alert`, `vpcprobe serve --demo` ---------------------------

EAS_HOST = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"


@pytest.fixture(scope="module")
def sim():
    from shared.local.simulator import Simulator

    s = Simulator(hosts=("127.0.0.2",), eas_services={"llm": "eas-wiring-token-0001"}).start()
    yield s
    s.stop()


def wiring_config(tmp_path: Path, sim, robot_url: str, **alerts) -> Path:
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {EAS_HOST: f"127.0.0.2:{sim.port}"},
        "targets": [{"name": "llm-eas-vpc", "kind": "eas", "endpoint": f"http://{EAS_HOST}/api/predict/llm",
                     "credential": "env:WIRING_EAS_TOKEN"}],
        "state": {"path": str(tmp_path / "state")},
        "alerts": {"failure_threshold": 1, "channels": [
            {"name": "ding", "type": "dingtalk", "url": robot_url, "access_token": "env:DT_TOKEN",
             "secret": "env:DT_SECRET"}, {"name": "console", "type": "console"}], **alerts},
    }
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_timer_handler_alerts_after_the_round(tmp_path, sim, monkeypatch, capsys):
    from shared.fc.probe_function import handle

    monkeypatch.setenv("WIRING_EAS_TOKEN", "eas-wiring-token-0001")
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with DingTalkReceiver({TOKEN: SECRET}) as live_robot:  # real clock: the handler's now is real
        path = wiring_config(tmp_path, sim, live_robot.url)
        event = json.dumps({"triggerTime": "2026-11-22T07:49:00Z", "triggerName": "t", "payload": ""})
        sim.set_eas_service("llm", state="unready")
        try:
            down = json.loads(handle(event, config_path=str(path)))
        finally:
            sim.set_eas_service("llm", state="running")
        up = json.loads(handle(event, config_path=str(path)))
        narrowed = json.loads(handle(json.dumps({"alert": False}), config_path=str(path)))
    assert down["alerts"]["sent"] == 1 and down["alerts"]["channels"] == {"ding": "ok"}
    assert up["alerts"]["sent"] == 1 and "alerts" not in narrowed  # invoke {"alert": false}: probe only
    assert entries([m["text"] for m in live_robot.messages]) == ["FIRING · CRITICAL — llm-eas-vpc",
                                                                  "RESOLVED — llm-eas-vpc"]
    assert "no_ready_instance" in live_robot.messages[0]["text"]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["kind"] for e in logged if e["event"] == "alert"] == ["firing", "resolved"]


def test_misconfigured_channel_stops_the_round_before_probing(tmp_path, sim, monkeypatch):
    from shared.fc.probe_function import handle

    path = wiring_config(tmp_path, sim, "http://127.0.0.1:9/robot/send")
    data = yaml.safe_load(path.read_text())
    data["alerts"]["channels"][0]["secret"] = "SECpasted-inline-secret"
    path.write_text(yaml.safe_dump(data))
    before = len(sim.requests)
    summary = json.loads(handle(b"{}", config_path=str(path)))
    assert summary["error"] == "config error" and len(sim.requests) == before
    assert any("alerts.channels[ding].secret: must be a reference" in p for p in summary["problems"])
    assert "SECpasted" not in json.dumps(summary)


def test_check_alert_runs_the_same_step_locally(tmp_path, sim, monkeypatch, capsys):
    from shared.local.cli import main

    monkeypatch.setenv("WIRING_EAS_TOKEN", "eas-wiring-token-0001")
    path = wiring_config(tmp_path, sim, "http://127.0.0.1:9/robot/send")  # nothing listens: falls back
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    sim.set_eas_service("llm", state="unready")
    try:
        assert main(["check", "-c", str(path), "--alert"]) == 1
    finally:
        sim.set_eas_service("llm", state="running")
    out, err = capsys.readouterr()
    assert "[alert via console channel 'console']" in out and "FIRING · CRITICAL — llm-eas-vpc (eas)" in out
    assert "alerts: 1 new, 1 sent in 2 message(s), 0 pending (ding: cannot connect to 127.0.0.1:9" in err
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "alerts"}))
    assert main(["check", "-c", str(bare), "--alert"]) == 2
    assert "--alert needs an alerts: section" in capsys.readouterr().err


def test_serve_demo_shows_the_real_messages(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "shared", "serve", "--demo", "--port", "0", "--schedule", "@every 1s", "--rounds", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "demo: DingTalk-compatible robot (signed)" in out and "demo: SMTP sink" in out
    robot_part = out[out.index("DingTalk robot received"):]
    assert "signature verified, mentions notify @13800000000" in robot_part
    assert "FIRING · WARNING — qwen-privatelink (dashscope)" in robot_part and "zones_down" in robot_part
    assert "[alert via console channel 'demo-console']" in out and "FIRING · WARNING — qwen-custom-domain" in out
    assert out.index("== round 4") < out.index("DingTalk robot received")  # shown after the round's table
    assert "SECdemo" not in out + proc.stderr
