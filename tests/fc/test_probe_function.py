"""The FC entry point with the sample events: one JSON log line per target, a summary back."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from shared.local.simulator import Simulator
from tests.fakecloud import FakeCloud

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
REGION = "ap-southeast-1"
PL = "ep-handler.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
EAS = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"


def load_entry():
    spec = importlib.util.spec_from_file_location("probe_index", ROOT / "functions" / "probe" / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sim():
    s = Simulator(
        hosts=("127.0.0.2",),
        api_keys={"sk-handler-canary-1": "ap-southeast-1"},
        eas_services={"llm_demo": "eas-handler-canary-2"},
    ).start()
    yield s
    s.stop()


@pytest.fixture
def config(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("DS_KEY", "sk-handler-canary-1")
    monkeypatch.setenv("EAS_TOKEN", "eas-handler-canary-2")
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: f"127.0.0.2:{sim.port}", EAS: f"127.0.0.2:{sim.port}"},
        "targets": [
            {"name": "qwen-privatelink", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:DS_KEY"},
            {
                "name": "llm-eas-vpc",
                "kind": "eas",
                "endpoint": f"http://{EAS}/api/predict/llm_demo",
                "credential": "env:EAS_TOKEN",
            },
        ],
    }
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("VPCPROBE_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)  # history without a state: section goes to ./.vpcprobe/state
    return path


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_timer_event_probes_every_target(config, capsys):
    summary = json.loads(load_entry().handler((EVENTS / "timer.json").read_bytes(), None))
    assert (summary["ok"], summary["targets"], summary["up"]) == (True, 2, 2)
    assert (summary["degraded"], summary["down"], summary["unknown"]) == (0, 0, 0)
    lag = summary["loop_lag_ms"]  # the prober's own event-loop lag this round
    assert set(lag) == {"samples", "p50", "p99", "max", "behind"}
    assert lag["samples"] >= 0 and 0.0 <= lag["p50"] <= lag["p99"] <= lag["max"] < 1000.0  # a fast round: few
    out = capsys.readouterr().out
    probes = [line for line in log_lines(out) if line["event"] == "probe"]
    assert [p["target"] for p in probes] == ["qwen-privatelink", "llm-eas-vpc"]
    for p in probes:
        assert {
            "target",
            "kind",
            "url",
            "status",
            "http_status",
            "phases_ms",
            "addresses",
            "diagnosis",
            "checked_at",
        } <= set(p)
        assert p["source"] == "timer"
    assert "sk-handler-canary-1" not in out and "eas-handler-canary-2" not in out


def test_timer_payload_and_invoke_narrow_targets(config, capsys):
    entry = load_entry()
    summary = json.loads(entry.handler((EVENTS / "timer-targets.json").read_bytes(), None))
    assert [r["target"] for r in summary["results"]] == ["llm-eas-vpc"]
    summary = json.loads(entry.handler((EVENTS / "invoke.json").read_bytes(), None))
    assert [r["target"] for r in summary["results"]] == ["qwen-privatelink"]


def test_down_target_reported_with_diagnosis(config, sim, capsys):
    sim.set_eas_service("llm_demo", token="eas-handler-canary-2", state="unready")
    try:
        summary = json.loads(load_entry().handler(b"{}", None))
    finally:
        sim.set_eas_service("llm_demo", token="eas-handler-canary-2", state="running")
    assert (summary["ok"], summary["down"]) == (False, 1)
    assert {r["target"]: r["code"] for r in summary["results"]}["llm-eas-vpc"] == "no_ready_instance"


@pytest.mark.parametrize(
    "event,message",
    [(b"{oops", "bad event: event is not valid JSON"), (b'{"targets": ["nope"]}', "config error")],
)
def test_bad_events_answer_clearly(config, capsys, event, message):
    summary = json.loads(load_entry().handler(event, None))
    assert summary["ok"] is False and message in summary["error"]
    assert any(line["level"] == "error" for line in log_lines(capsys.readouterr().out))


def test_bad_config_runs_nothing(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "targets:\n  - name: x\n    kind: dashscope\n    endpoint: https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com\n"
    )
    monkeypatch.setenv("VPCPROBE_CONFIG", str(bad))
    summary = json.loads(load_entry().handler(b"", None))
    assert summary["error"] == "config error"
    assert any("targets[x].endpoint" in p and "only HTTP" in p for p in summary["problems"])


def test_handler_import_is_light():
    """Cold start: importing the entry point must not pull in the cloud SDKs or the simulator."""
    code = (
        "import sys; sys.path.insert(0, 'functions/probe'); import index; "
        "bad = [m for m in sys.modules if m.startswith(('alibabacloud', 'Tea', 'requests', 'fc2', 'oss2', 'aiohttp', "
        "'shared.local.simulator', 'trustme', 'cryptography'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("version", ["3.10", "3.12"])
def test_handler_imports_on_fc_pythons(version):
    """FC runs python3.10 and python3.12: the handler's modules must at least compile and import there."""
    pyenv = Path.home() / ".pyenv" / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python")) if pyenv.exists() else []
    if not found:
        pytest.skip(f"no python{version} on this machine")
    proc = subprocess.run(
        [str(found[-1]), "-m", "compileall", "-q", "shared", "functions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_any_other_refusal_answers_with_its_message(config, monkeypatch, capsys):
    """A VpcprobeError outside BadEvent and ConfigError still ends in a summary, not a failed invocation."""
    from shared.errors import VpcprobeError
    from shared.fc import probe_function

    def refuse(_event):
        raise VpcprobeError("nothing vpcprobe can run")

    monkeypatch.setattr(probe_function, "parse_probe_event", refuse)
    summary = json.loads(load_entry().handler(b"", None))
    assert summary == {"ok": False, "error": "nothing vpcprobe can run"}
    assert [line["event"] for line in log_lines(capsys.readouterr().out)] == ["round_refused"]


def test_fc_context_credentials_and_a_warm_cache(sim, tmp_path, monkeypatch, capsys):
    """The FC python3.10 path: no ALIBABA_CLOUD_* variables, credentials in context.credentials."""
    from shared.credentials import provider
    from shared.fc import probe_function

    with FakeCloud() as cloud:
        cloud.add_kms_secret("ds-key", "sk-handler-canary-1")
        cloud.add_eas_service("llm_demo", token="eas-handler-canary-2")
        eas_host = f"{cloud.account_id}.vpc.{REGION}.pai-eas.aliyuncs.com"
        path = tmp_path / "vpcprobe.yaml"
        path.write_text(json.dumps({
            "region": REGION,
            "defaults": {"timeout": "2s", "retries": 0},
            "resolve": {PL: f"127.0.0.2:{sim.port}", eas_host: f"127.0.0.2:{sim.port}"},
            "targets": [
                {"name": "qwen", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "kms:ds-key"},
                {"name": "llm", "kind": "eas", "credential": f"eas:{REGION}/llm_demo"},
            ],
        }))
        for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("FC_FUNCTION_NAME", "vpcprobe-probe")
        monkeypatch.setattr(provider, "_shared", None)
        monkeypatch.setattr(probe_function, "_cache", {})
        key = cloud.default_key
        creds = types.SimpleNamespace(access_key_id=key.access_key_id, access_key_secret=key.secret,
                                      security_token=key.token)
        context = types.SimpleNamespace(request_id="req-1", credentials=creds)
        for _ in range(2):
            summary, _results = probe_function.run_probe_event(b"", context, config_path=str(path))
            assert (summary["ok"], summary["up"]) == (True, 2)
        assert (cloud.count("kms"), cloud.count("eas")) == (1, 1)  # the second invocation used the warm cache
        vpc_hosts = {f"kms-vpc.{REGION}.aliyuncs.com", f"pai-eas-manage-vpc.{REGION}.aliyuncs.com"}
        assert {c.host for c in cloud.calls} == vpc_hosts
    eas_line = next(x for x in log_lines(capsys.readouterr().out) if x["event"] == "probe" and x["target"] == "llm")
    assert eas_line["eas_service"] == {"status": "Running", "running": 1, "total": 1}


def test_summary_counts_unknown_apart_from_failures():
    """unknown (the prober could not keep up) is counted, and is not a failure: `ok` stays about the endpoints."""
    from shared.fc.probe_function import summarize
    from shared.verdict.status import Status
    from tests.alert_fixtures import T0, result

    up, down = result("a", "up", T0), result("b", "down", T0)
    unknown = result("c", "down", T0)
    unknown.status = Status.UNKNOWN
    s = summarize([up, unknown])
    assert (s["ok"], s["up"], s["down"], s["unknown"]) == (True, 1, 0, 1)
    assert [r["status"] for r in s["results"]] == ["up", "unknown"]
    s = summarize([up, unknown, down])
    assert (s["ok"], s["down"], s["unknown"]) == (False, 1, 1)


def test_initializer_loads_the_config_and_warms_the_probe_path(config, sim, capsys):
    """FC's Initializer hook: one throwaway loopback round; the handler's first round then reuses its prober."""
    from shared.fc import probe_function

    entry = load_entry()
    before = len(sim.requests)
    assert entry.initialize(None) is None  # FC ignores the hook's return value
    assert len(sim.requests) == before  # the warm-up round stays on the instance's own loopback
    line = next(x for x in log_lines(capsys.readouterr().out) if x["event"] == "initialized")
    assert line["round"] == "up" and line["tls_contexts"] == 0  # http-only config: no CA bundle built
    assert 0 < line["ms"] < 5000
    warmed = probe_function._cache["prober"]
    summary = json.loads(entry.handler(b"{}", None))
    assert (summary["ok"], summary["up"]) == (True, 2)
    assert probe_function._cache["prober"] is warmed  # the first event reuses what the hook built


def test_initializer_never_raises(tmp_path, monkeypatch, capsys):
    """A failing Initializer fails every invocation of the instance: a bad config is left to the handler."""
    from shared.fc.probe_function import initialize

    bad = tmp_path / "vpcprobe.yaml"
    bad.write_text("targets: 3\n")
    monkeypatch.setenv("VPCPROBE_CONFIG", str(bad))
    reply = initialize(None)
    assert reply["ok"] is False and "ConfigError" in reply["error"]
    assert any(x["event"] == "initialize_skipped" for x in log_lines(capsys.readouterr().out))
