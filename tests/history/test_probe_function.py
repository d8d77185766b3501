"""The probe function records every round's history: under the alert step's lease when there is one (after
the alert state is saved), else under a lease of its own; a history failure never fails the round and
never loses or repeats an alert. Real rounds against the loopback simulator, alerts to a loopback robot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from shared.fc import probe_function
from shared.history import record
from shared.history.view import read_view
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.simulator import Simulator
from shared.state.file import FileStore

PL = "ep-history.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
EAS = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
TOKEN, SECRET = "robot-history-canary-41", "SEChistory-canary-secret-42"


@pytest.fixture(scope="module")
def sim():
    s = Simulator(
        hosts=("127.0.0.2",),
        api_keys={"sk-history-canary-43": "ap-southeast-1"},
        eas_services={"llm_demo": "eas-history-canary-44"},
    ).start()
    yield s
    s.stop()


@pytest.fixture
def robot():
    r = DingTalkReceiver({TOKEN: SECRET}).start()
    yield r
    r.stop()


@pytest.fixture
def eas_down(sim):
    sim.set_eas_service("llm_demo", token="eas-history-canary-44", state="unready")
    yield
    sim.set_eas_service("llm_demo", token="eas-history-canary-44", state="running")


def write_config(tmp_path: Path, sim: Simulator, monkeypatch, robot: DingTalkReceiver | None = None) -> Path:
    monkeypatch.setenv("DS_KEY", "sk-history-canary-43")
    monkeypatch.setenv("EAS_TOKEN", "eas-history-canary-44")
    monkeypatch.setenv("DT_TOKEN", TOKEN)
    monkeypatch.setenv("DT_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(probe_function, "_cache", {})
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: f"127.0.0.2:{sim.port}", EAS: f"127.0.0.2:{sim.port}"},
        "targets": [
            {"name": "qwen", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:DS_KEY"},
            {"name": "llm", "kind": "eas", "endpoint": f"http://{EAS}/api/predict/llm_demo",
             "credential": "env:EAS_TOKEN"},
        ],
    }
    if robot is not None:
        data["state"] = {"backend": "file", "path": str(tmp_path / "state")}
        data["alerts"] = {
            "failure_threshold": 2,
            "channels": [{"name": "ding", "type": "dingtalk", "url": robot.url, "access_token": "env:DT_TOKEN",
                          "secret": "env:DT_SECRET"}],
        }
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(path: Path, event: bytes = b"{}") -> dict:
    summary, _results = probe_function.run_probe_event(event, None, config_path=str(path))
    return json.loads(json.dumps(summary))


def events(capsys) -> list[dict]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


def test_history_is_written_under_the_alert_lease_after_the_alert_state(tmp_path, sim, robot, monkeypatch):
    path = write_config(tmp_path, sim, monkeypatch, robot)
    state = tmp_path / "state"
    seen = []
    real = record.record_round

    def spy(store, results, **kw):
        intruder = FileStore(state).acquire_lease("another round", 60)  # the lease must be held right now
        saved = json.loads((state / "state.json").read_text())["targets"]
        seen.append((intruder, sorted(saved), [r.target for r in results]))
        return real(store, results, **kw)

    monkeypatch.setattr(record, "record_round", spy)
    summary = run(path)
    assert seen == [(False, ["llm", "qwen"], ["qwen", "llm"])]
    assert summary["history"]["objects_written"] == 2 and summary["history"]["bytes_written"] > 0
    assert summary["alerts"]["new"] == 0
    view = read_view(FileStore(state))
    assert [(t.target, len(t.points), t.latest["status"]) for t in view.targets] == [
        ("llm", 1, "up"),
        ("qwen", 1, "up"),
    ]
    assert FileStore(state).acquire_lease("next round", 60)  # released


@pytest.mark.parametrize("failure", ["a file where the history folder goes", "a bug in the history code"])
def test_a_failing_history_write_leaves_the_alerts_sent_exactly_once(
    tmp_path, sim, robot, eas_down, monkeypatch, capsys, failure
):
    path = write_config(tmp_path, sim, monkeypatch, robot)
    if failure.startswith("a file"):
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "history").write_text("in the way")
        expected = "StoreError: file store"
    else:
        def broken(store, results, **kw):
            raise RuntimeError("history exploded")

        monkeypatch.setattr(record, "record_round", broken)
        expected = "RuntimeError: history exploded"
    summaries = [run(path) for _ in range(3)]  # llm down: fires at the second round
    assert [s["alerts"]["sent"] for s in summaries] == [0, 1, 0]
    assert [s["alerts"]["pending"] for s in summaries] == [0, 0, 0]
    assert all(expected in s["history"]["error"] for s in summaries)
    assert len(robot.messages) == 1 and "llm" in robot.messages[0]["text"]
    logged = events(capsys)
    assert [e["event"] for e in logged].count("history_failed") == 3
    assert not [e for e in logged if e["event"] in ("alerts_failed", "while_held_failed")]
    assert FileStore(tmp_path / "state").acquire_lease("next round", 60)  # the lease was released


def test_without_alerts_history_takes_the_default_store_and_its_own_lease(tmp_path, sim, eas_down, monkeypatch):
    path = write_config(tmp_path, sim, monkeypatch)
    first, second = run(path), run(path)
    assert "alerts" not in first and first["history"]["objects_written"] == 2
    assert second["history"]["objects_written"] == 2
    store = FileStore(tmp_path / ".vpcprobe" / "state")  # StoreSettings' default, relative to the working dir
    view = read_view(store)
    assert [(t.target, [p.status.value for p in t.points]) for t in view.targets] == [
        ("llm", ["down", "down"]),
        ("qwen", ["up", "up"]),
    ]
    assert view.targets[0].points[0].code == "no_ready_instance"
    assert store.acquire_lease("next round", 60)  # released after recording


def test_in_fc_without_a_state_section_history_is_skipped_not_written_to_the_instance(tmp_path, sim, monkeypatch):
    """FC's default store is the instance's /tmp: the gateway could never read it, so the round writes nothing."""
    path = write_config(tmp_path, sim, monkeypatch)
    monkeypatch.setenv("FC_FUNCTION_NAME", "vpcprobe-probe")
    monkeypatch.setattr("shared.state.settings.default_path", lambda environ=None: str(tmp_path / "fc-tmp"))
    summary = run(path)
    assert summary["history"] == {"skipped": probe_function.NO_SHARED_STORE}
    assert summary["up"] == 2 and not (tmp_path / "fc-tmp").exists()


def test_an_invoke_without_alerting_records_under_its_own_lease_on_the_alert_store(tmp_path, sim, robot, monkeypatch):
    path = write_config(tmp_path, sim, monkeypatch, robot)
    summary = run(path, b'{"alert": false}')
    assert "alerts" not in summary and summary["history"]["objects_written"] == 2
    assert len(read_view(FileStore(tmp_path / "state")).targets) == 2


def test_a_round_skips_history_while_another_holds_the_lease(tmp_path, sim, monkeypatch, capsys):
    path = write_config(tmp_path, sim, monkeypatch)
    store = FileStore(tmp_path / ".vpcprobe" / "state")
    assert store.acquire_lease("a slow round", 60)
    summary = run(path)
    assert summary["history"] == {"skipped": "another round holds the store lease and records its own history"}
    assert "history_skipped" in [e["event"] for e in events(capsys)]
    assert read_view(store).targets == ()


def test_the_alert_steps_skip_is_the_historys_skip(tmp_path, sim, robot, monkeypatch):
    path = write_config(tmp_path, sim, monkeypatch, robot)
    assert FileStore(tmp_path / "state").acquire_lease("a slow round", 60)
    summary = run(path)
    assert "skipped" in summary["alerts"]
    assert summary["history"] == {"skipped": "the alert step did not hold the store lease"}
