"""Config loading: the example is valid; every error names file, field path and fix."""

from pathlib import Path

import pytest

from shared.config.load import ConfigError, load_config, parse_config
from shared.credentials.tokens import CredentialRef, parse_ref

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_covers_every_form():
    config = load_config(str(ROOT / "vpcprobe.example.yaml"))
    forms = {t.endpoint.form for t in config.targets}
    assert {"privatelink-default", "privatelink-custom", "eas-shared-vpc", "eas-dedicated-vpc", "eas-instance"} <= forms
    assert "qwen-public" not in {t.name for t in config.targets}  # enabled: false
    chat = config.target("qwen-privatelink-chat")
    assert (chat.api, chat.probe.mode, chat.probe.stream, chat.probe.timeout_s) == ("native", "chat", True, 5.0)
    assert config.target("llm-eas-vpc").auth == "raw"
    assert config.target("qwen-privatelink").auth == "bearer"


def _problems(data, tmp_path=None) -> list[str]:
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
            "cfg.yaml: targets[t].endpoint: 'https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com': "
            "the endpoint's default domain supports only HTTP",
        ),
        (_target(endpoint="https://my_llm.dashscope.aliyuncs.com"), "targets[t].endpoint: host 'my_llm"),
        (_target(credential="sk-1234567890"), "targets[t].credential: must be a reference"),
        (_target(credential="vault:x"), "unknown reference scheme 'vault:'"),
        (_target(credential="eas:nohyphen"), "malformed eas: reference"),
        (_target(endpont="x"), "targets[t].endpont: unknown field; did you mean 'endpoint'?"),
        (_target(kind="openai"), "targets[t].kind: must be one of dashscope, eas (got 'openai')"),
        (_target(probe={"timeout": "fast"}), "targets[t].probe.timeout: must be a positive duration"),
        (_target(probe={"retries": -1}), "targets[t].probe.retries: must be a whole number >= 0"),
        (_target(probe={"mode": "ping"}), "targets[t].probe.mode: must be one of models, chat, http"),
        (_target(probe={"mode": "http"}), "targets[t].probe.path: http probes need 'path'"),
        (_target(probe={"expect_status": [200, "ok"]}), "targets[t].probe.expect_status: must be an HTTP status"),
        (_target(probe={"expect_body": "(["}), "targets[t].probe.expect_body: is not a valid regular expression"),
        (_target(probe={"headers": {"Authorization": "Bearer x"}}), "must not set Authorization"),
        (_target(service="s"), "targets[t].service: belongs to eas targets"),
        (_target(ca_bundle="/nonexistent/ca.pem"), "targets[t].ca_bundle: file '/nonexistent/ca.pem' does not exist"),
        ({"targets": [{"kind": "eas"}]}, "targets[0].name: is required"),
        ({"targets": [{"name": "bad name!", "kind": "eas"}]}, "must be 1-63 letters"),
        ({"targets": [_target()["targets"][0], _target()["targets"][0]]}, "duplicate target name 't'"),
        ({"resolve": {"h": "not-an-ip"}, **_target()}, "resolve.h: 'not-an-ip' is not an IP address"),
        ({"defaults": {"timout": "1s"}, **_target()}, "defaults.timout: unknown field; did you mean 'timeout'?"),
        ({"concurrency": 0, **_target()}, "concurrency: must be a whole number >= 1"),
        (
            {
                "targets": [
                    {
                        "name": "e",
                        "kind": "eas",
                        "endpoint": "http://1.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/s",
                        "probe": {"mode": "chat"},
                    }
                ]
            },
            "targets[e].probe.model: chat probes of an EAS service need 'model'",
        ),
        (
            {
                "targets": [
                    {
                        "name": "e",
                        "kind": "eas",
                        "endpoint": "http://1.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/s",
                        "probe": {"mode": "http", "path": "/x", "method": "POST", "body": "x" * (1024 * 1024 + 1)},
                    }
                ]
            },
            "over 1 MB",
        ),
    ],
)
def test_config_errors_name_file_field_and_fix(data, expected):
    problems = _problems(data)
    assert any(expected in p for p in problems), problems


def test_all_problems_reported_at_once():
    problems = _problems(_target(endpont="x", probe={"timeout": "x", "retries": "y"}))
    assert len(problems) == 3


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


@pytest.mark.parametrize(
    "text,ref",
    [
        ("env:DASHSCOPE_API_KEY", CredentialRef("env", "DASHSCOPE_API_KEY")),
        ("kms:my-secret", CredentialRef("kms", "my-secret")),
        ("kms:my-secret@ACSPrevious", CredentialRef("kms", "my-secret", stage="ACSPrevious")),
        ("eas:cn-hangzhou/grp.svc", CredentialRef("eas", "grp.svc", region="cn-hangzhou")),
    ],
)
def test_credential_references(text, ref):
    assert parse_ref(text) == ref
    assert str(parse_ref(text)) == text
