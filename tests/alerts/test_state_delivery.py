"""Alert state that survives damage (issue 11): each scenario ends by counting what the loopback DingTalk
robot and SMTP sink showed people — every expected entry exactly once (0 lost, 0 shown twice) — and the
message ids they carried."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.smtp_sink import SmtpSink
from shared.state.file import FileStore
from shared.state.store import StoreError
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status
from tests.alert_fixtures import at
from tests.alerts.test_step import Rounds, config_dict

ENTRY = r"(FIRING · \w+|RESOLVED|REMINDER · \w+|CANNOT JUDGE · \w+|JUDGED AGAIN|NOTICE · \w+) — ([\w-]+) \("


def shown(robot: DingTalkReceiver, sink: SmtpSink | None = None) -> Counter:
    """How often each entry reached people: posted DingTalk messages (duplicates by msgUuid are dropped by
    the robot, as DingTalk does) and emails."""
    import re

    texts = [m["text"] for m in robot.messages]
    if sink is not None:
        texts += [m["message"].get_body(("plain",)).get_content() for m in sink.messages]
    return Counter(f"{kind} — {name}" for text in texts for kind, name in re.findall(ENTRY, text))


def once(*entries: str) -> Counter:
    return Counter(entries)


DAMAGE = {
    "not json": b"{garbage",
    "targets a list": {"version": 1, "targets": []},
    "a target null": {"version": 1, "targets": {"a": None}},
    "counters as text": {"version": 1, "targets": {"a": {"state": "firing", "failures": "2"}}},
    "pending missing fields": {"version": 1, "targets": {}, "pending": [{"id": "x"}]},
    "blocked_until soon": {"version": 1, "targets": {}, "channels": {"ding": {"blocked_until": "soon"}}},
    "sends null": {"version": 1, "targets": {}, "channels": {"ding": {"sends": None}}},
    "unknown version": {"version": 7, "targets": {}},
}


def damage(path: Path, what: object) -> None:
    path.write_bytes(what if isinstance(what, bytes) else json.dumps(what).encode())


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_document_is_rebuilt_from_the_backup_and_people_are_told(tmp_path, robot, kind):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down", "b": "down"})
    rounds.run(at(1), {"a": "down", "b": "down"})  # both fire
    state = tmp_path / "state" / "state.json"
    damage(state, DAMAGE[kind])
    s = rounds.run(at(2), {"a": "up", "b": "down"})  # a recovers, b is still down
    assert s["sent"] == 2 and s["pending"] == 0
    assert "alert state was damaged and rebuilt from the backup copy (state.backup.json)" in s["problems"][0]
    s = rounds.run(at(3), {"a": "up", "b": "down"})
    assert "problems" not in s and s["new"] == 0
    assert shown(robot) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b", "NOTICE · WARNING — vpcprobe",
                                "RESOLVED — a")
    notice = robot.messages[1]["text"]
    assert "state_damaged" in notice and "kept as state.json.corrupt-" in notice
    if kind == "unknown version":
        assert "reads version 1, the document has version 7" in notice
    kept = [p for p in state.parent.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert len(kept) == 1 and kept[0].read_bytes() == (
        DAMAGE[kind] if isinstance(DAMAGE[kind], bytes) else json.dumps(DAMAGE[kind]).encode())
    assert len({m["msgUuid"] for m in robot.messages}) == len(robot.messages) == 2


def test_without_a_backup_what_is_readable_is_kept_and_the_rest_rebuilt_from_the_results(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down", "b": "down", "c": "up"})
    rounds.run(at(1), {"a": "down", "b": "down", "c": "up"})
    folder = tmp_path / "state"
    doc = json.loads((folder / "state.json").read_text())
    doc["targets"]["b"] = None  # b's history is gone; a's is intact
    (folder / "state.json").write_text(json.dumps(doc))
    (folder / "state.backup.json").write_text("{also damaged")
    s = rounds.run(at(2), {"a": "up", "b": "down", "c": "up"})
    message = s["problems"][0]
    assert "rebuilt from what was readable of it and this round's results: targets.b: expected an object" in message
    assert "not announced again): b (down)" in message
    rounds.run(at(3), {"a": "up", "b": "up", "c": "up"})
    assert shown(robot) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b", "NOTICE · WARNING — vpcprobe",
                                "RESOLVED — a", "RESOLVED — b")


def test_damage_on_oss_is_rebuilt_the_same_way(tmp_path, robot, oss_store):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    prefix = f"damage-{time.time_ns()}/"
    rounds.run(at(0), {"a": "down", "b": "down"}, store=oss_store(prefix))
    rounds.run(at(1), {"a": "down", "b": "down"}, store=oss_store(prefix))
    bad = b'{"version": 1, "targets": {"a": {"state": "firing", "failures": "x"}}}'
    oss_store(prefix).put_object("state.json", bad)
    s = rounds.run(at(2), {"a": "up", "b": "down"}, store=oss_store(prefix))
    assert "rebuilt from the backup copy" in s["problems"][0]
    assert "targets.a.failures: expected a whole number >= 0, got 'x'" in s["problems"][0]
    assert shown(robot) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b", "NOTICE · WARNING — vpcprobe",
                                "RESOLVED — a")
    names = oss_store(prefix).list_objects("state.json.corrupt-")
    assert len(names) == 1 and b'"failures": "x"' in (oss_store(prefix).get_object(names[0]) or b"")


@pytest.fixture
def freeze():
    """chattr +i on a path (root can then create nothing in a directory, or replace a file); undone after."""
    frozen: list[Path] = []

    def apply(path: Path) -> None:
        if os.geteuid() != 0:
            pytest.skip("needs root for chattr")
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        frozen.append(path)

    yield apply
    for path in frozen:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_state_directory_is_a_store_error_and_the_alert_waits(tmp_path, robot, freeze):
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down"})
    freeze(tmp_path / "state")
    with pytest.raises(StoreError, match="cannot create a lease"):
        rounds.run(at(1), {"a": "down"})
    assert robot.requests == []  # nothing sent that could not be recorded
    subprocess.run(["chattr", "-i", str(tmp_path / "state")], check=True)
    s = rounds.run(at(2), {"a": "down"})
    assert s["sent"] == 1 and shown(robot) == once("FIRING · CRITICAL — a")


def test_a_document_that_cannot_be_written_stops_the_send_and_the_alert_waits(tmp_path, robot, freeze):
    """The lease can be taken, but the write-ahead of state.json fails (as on a full disk): nothing is sent."""
    rounds = Rounds(config_dict(tmp_path, robot), robot)
    rounds.run(at(0), {"a": "down"})
    freeze(tmp_path / "state" / "state.json")
    with pytest.raises(StoreError, match="cannot write state.json"):
        rounds.run(at(1), {"a": "down"})
    assert robot.requests == []
    subprocess.run(["chattr", "-i", str(tmp_path / "state" / "state.json")], check=True)
    rounds.run(at(2), {"a": "down"})
    rounds.run(at(3), {"a": "down"})
    assert shown(robot) == once("FIRING · CRITICAL — a")


def test_a_round_that_lost_its_lease_writes_nothing_and_its_message_is_not_shown_twice(tmp_path, robot, sink):
    sink.messages.clear()
    cfg = config_dict(tmp_path, robot, sink, routes={"b": ["mail"]})
    rounds = Rounds(cfg, robot)
    folder = tmp_path / "state"
    rounds.run(at(0), {"a": "down", "b": "down"})
    seen: dict = {}

    def stall(_message: dict) -> None:  # the round outlives its lease while DingTalk has its message
        seen["written_ahead"] = (folder / "state.json").read_bytes()
        seen["newer"] = FileStore(folder, clock=lambda: time.time() + 121)
        assert seen["newer"].acquire_lease("newer-round", 120)

    robot.on_message = stall
    s = rounds.run(at(1), {"a": "down", "b": "down"}, owner="slow-round")
    robot.on_message = None
    assert any("lost the alert lease" in p for p in s["problems"])
    assert "not sent: " in s["channels"]["mail"] and sink.messages == []  # stopped before the next channel
    assert (folder / "state.json").read_bytes() == seen["written_ahead"]  # never wrote after losing it
    seen["newer"].release("newer-round")  # (the newer round's stand-in ends)
    rounds.run(at(2), {"a": "down", "b": "down"})  # resends the written-ahead message with its id; b by mail
    rounds.run(at(3), {"a": "down", "b": "down"})
    assert shown(robot, sink) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b")
    assert robot.requests[-1].get("duplicate") and len(robot.messages) == 1


def test_a_lost_answer_batch_keeps_its_id_after_new_alerts_arrive(tmp_path, robot):
    """Three lost answers, then a new alert: the batch is resent alone with its first id, the new one after it."""
    rounds = Rounds(config_dict(tmp_path, robot, failure_threshold=1), robot)
    robot.drop_next()  # posted, answer lost
    robot.http_error_next(502, times=2)  # two more unanswered attempts
    for minute in range(3):
        rounds.run(at(minute), {"a": "down", "b": "up"})
    s = rounds.run(at(3), {"a": "down", "b": "down"})  # b fires while a's batch is still unconfirmed
    assert (s["new"], s["sent"], s["pending"]) == (1, 1, 1)
    s = rounds.run(at(4), {"a": "down", "b": "down"})
    assert (s["sent"], s["pending"]) == (1, 0)
    assert shown(robot) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b")
    first = robot.messages[0]["msgUuid"]
    assert len(robot.requests) == 5 and robot.requests[3].get("duplicate")  # round 3: a's batch, same id
    assert robot.messages[1]["msgUuid"] != first and "— a (" not in robot.messages[1]["text"]


def test_a_refusal_after_a_lost_answer_keeps_the_id_too(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot, failure_threshold=1), robot)
    robot.drop_next()
    rounds.run(at(0), {"a": "down", "b": "up"})
    robot.fail_next(310000, "sign not match")  # refused: but the first attempt may have been shown
    rounds.run(at(1), {"a": "down", "b": "down"})
    rounds.run(at(2), {"a": "down", "b": "down"})
    rounds.run(at(3), {"a": "down", "b": "down"})
    assert shown(robot) == once("FIRING · CRITICAL — a", "FIRING · CRITICAL — b")
    assert len(robot.messages) == 2


def test_incidents_in_the_same_second_all_reach_dingtalk(tmp_path, robot):
    rounds = Rounds(config_dict(tmp_path, robot, failure_threshold=1), robot)
    for i, status in enumerate(["down", "up", "down", "up"]):
        rounds.run(at(0) + timedelta(milliseconds=200 * i), {"a": status})
    assert shown(robot) == Counter({"FIRING · CRITICAL — a": 2, "RESOLVED — a": 2})
    assert len({m["msgUuid"] for m in robot.messages}) == 4 and not any(r.get("duplicate") for r in robot.requests)


def unknown(name: str, minute: float) -> ProbeResult:
    from tests.alert_fixtures import result

    r = result(name, "up", at(minute))
    return ProbeResult(r.target, r.kind, r.url, Status.UNKNOWN, checked_at=r.checked_at)


def test_a_target_that_stays_unknown_is_reported_once_then_judged_again(tmp_path, robot):
    cfg = config_dict(tmp_path, robot)
    cfg["alerts"]["unknown_threshold"] = 3
    rounds = Rounds(cfg, robot)
    for minute in range(10):
        summary = rounds.run_results(at(minute), [unknown("a", minute)])
    assert summary["pending"] == 0
    rounds.run(at(10), {"a": "up"})
    rounds.run(at(11), {"a": "up"})
    assert shown(robot) == once("CANNOT JUDGE · WARNING — a", "JUDGED AGAIN — a")
    assert "raise the function's CPU/memory or lower concurrency" in robot.messages[0]["text"]
