"""Config loading: the example is valid; every section is checked in one pass and every problem reported."""

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config.load import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_covers_every_form():
    config = load_config(str(ROOT / "vpcprobe.example.yaml"))
    forms = {t.endpoint.form for t in config.targets}
    assert {"privatelink-default", "privatelink-custom", "eas-shared-vpc", "eas-dedicated-vpc", "eas-instance"} <= forms
    by_name = {t.name: t for t in config.targets}
    assert "qwen-public" not in by_name  # enabled: false
    chat = by_name["qwen-privatelink-chat"]
    assert (chat.api, chat.probe.mode, chat.probe.stream, chat.probe.timeout_s) == ("native", "chat", True, 5.0)
    assert by_name["llm-eas-vpc"].auth == "raw"
    assert by_name["qwen-privatelink"].auth == "bearer"
    assert config.alerts is None


def _problems(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, path="cfg.yaml")
    return info.value.problems


def _target(**fields):
    base = {"name": "t", "kind": "dashscope", "endpoint": "http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"}
    base.update(fields)
    return {"targets": [base]}


@pytest.mark.parametrize(
    "data,expected",
    [
        ({}, "cfg.yaml: targets: must be a non-empty list"),
        ([1, 2], "cfg.yaml: (top level): must be a mapping"),
        (
            _target(endpoint="https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"),
            "cfg.yaml: targets[t].endpoint: 'https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com': ",
        ),
        ({"targets": [_target()["targets"][0], _target()["targets"][0]]}, "duplicate target name 't'"),
        ({"resolve": {"h": "not-an-ip"}, **_target()}, "resolve.h: 'not-an-ip' is not an IP address"),
        ({"defaults": {"timout": "1s"}, **_target()}, "defaults.timout: unknown field; did you mean 'timeout'?"),
        ({"concurrency": 0, **_target()}, "concurrency: must be a whole number >= 1"),
        ({"cloud": {"account_id": "me"}, **_target()}, "cloud.account_id: must be the numeric Alibaba Cloud account"),
        ({"alert": {}, **_target()}, "cfg.yaml: alert: unknown field; did you mean 'alerts'?"),
    ],
)
def test_config_errors_name_file_field_and_fix(data, expected):
    problems = _problems(data)
    assert any(expected in p for p in problems), problems


def test_targets_and_alerting_sections_are_reported_in_one_error():
    data = {
        **_target(probe={"timeout": "x"}, alerts={"channels": ["nope"]}),
        "state": {"backend": "nas"},
        "alerts": {"channels": [{"name": "c", "type": "console"}]},
    }
    assert _problems(data) == [
        "cfg.yaml: targets[t].probe.timeout: must be a positive duration such as 500ms, 5s or 2m (got 'x')",
        "cfg.yaml: targets[t].alerts.channels: unknown channel(s) nope; alerts.channels has: c",
        "cfg.yaml: state.backend: must be one of file, oss (got 'nas')",
    ]


def test_alerting_sections_survive_a_broken_targets_section():
    problems = _problems({"targets": 7, "maintenance": [{"name": "m", "start": "02:00"}]})
    assert problems == [
        "cfg.yaml: targets: must be a non-empty list of targets (each with name, kind and endpoint)",
        "cfg.yaml: maintenance[m].duration: is required for a daily window, e.g. duration: 2h",
    ]


def test_alerts_section_is_typed_on_the_config():
    config = parse_config({**_target(), "alerts": {"channels": [{"name": "c", "type": "console"}]}})
    assert config.alerts is not None and [c.name for c in config.alerts.channels] == ["c"]
    assert parse_config({**_target(), "state": {"path": "/mnt/x"}}).alerts is None  # state: alone sends nothing


def test_a_probe_only_config_does_not_import_alerting():
    """Cold start: the alerts config and its channels load only for a config that has alerting sections."""
    code = (
        "import sys; from shared.config.load import parse_config; "
        "parse_config({'targets': [{'name': 't', 'kind': 'dashscope', "
        "'endpoint': 'http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com'}]}); "
        "print(sorted(m for m in sys.modules if m.startswith(('shared.alerts', 'shared.state'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - name: a\n    kind: [dashscope\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(bad))
    assert str(bad) in info.value.problems[0] and "line" in info.value.problems[0]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.yaml"))


def test_durations_and_resolve_ports():
    config = parse_config(
        {
            "defaults": {"timeout": "500ms", "latency_slo": "2s"},
            "resolve": {"EP-A.dashscope.cn-beijing.privatelink.aliyuncs.com": ["127.0.0.2:8080", "127.0.0.3"]},
            **_target(probe={"retry_delay": 0.1}),
        }
    )
    t = config.targets[0]
    assert (t.probe.timeout_s, t.probe.latency_slo_ms, t.probe.retry_delay_s) == (0.5, 2000.0, 0.1)
    assert config.resolve["ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"] == ("127.0.0.2:8080", "127.0.0.3")


def test_select_unknown_target_names_known():
    config = parse_config(_target())
    with pytest.raises(ConfigError, match="unknown target\\(s\\) nope; configured: t"):
        config.select(["nope"])
