"""The gateway: section: read in the config's one pass, every problem named with its field path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.config.load import ConfigError, parse_config
from shared.credentials.refs import CredentialRef
from shared.gateway.settings import (
    FC_SYNC_BODY_LIMIT,
    GatewayKey,
    GatewaySettings,
    ModelRoute,
    parse_size,
)

ROOT = Path(__file__).resolve().parents[2]
DS = {"name": "qwen", "kind": "dashscope", "endpoint": "http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"}
EAS = {"name": "llm", "kind": "eas", "endpoint": "http://1234567890.vpc.cn-beijing.pai-eas.aliyuncs.com/api/predict/llm"}
KEY = {"name": "app", "key": "env:GATEWAY_KEY_APP"}


def config(gateway: Any, *targets: dict[str, Any]) -> dict[str, Any]:
    return {"targets": list(targets or (DS, EAS)), "gateway": gateway}


def read(gateway: Any, *targets: dict[str, Any]) -> GatewaySettings:
    settings = parse_config(config(gateway, *targets), path="cfg.yaml").gateway
    assert settings is not None
    return settings


def problems(gateway: Any, *targets: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config(gateway, *targets), path="cfg.yaml")
    return info.value.problems


def gateway_modules_after_parsing(data: dict[str, Any]) -> list[str]:
    """The shared.gateway modules a fresh interpreter has loaded after parse_config(data)."""
    code = (
        "import sys; from shared.config.load import parse_config; "
        f"parse_config({data!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('shared.gateway')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out)


def test_no_gateway_section_no_settings_and_no_import():
    assert parse_config({"targets": [DS]}).gateway is None
    # A probe-only config keeps the probe function's cold start free of shared.gateway.
    assert gateway_modules_after_parsing({"targets": [DS]}) == []
    loaded = gateway_modules_after_parsing({"targets": [DS], "gateway": {"keys": [KEY]}})
    assert loaded == ["shared.gateway", "shared.gateway.settings"]


def test_a_full_section():
    settings = read(
        {
            "keys": [
                {"name": "chat-app", "key": "env:K1", "targets": ["qwen"], "models": ["qwen-plus"], "rpm": 600},
                {"name": "batch", "key": "kms:gateway-batch@ACSCurrent"},
            ],
            "models": {
                "qwen-plus": [{"target": "qwen", "model": "qwen-plus-latest"}, {"target": "llm"}],
                "deepseek": [{"target": "llm", "model": "DeepSeek-R1-Distill-Qwen-7B"}],
            },
            "body_limit": {"eas": "512KB", "dashscope": "16MB"},
            "timeouts": {"connect": "2s", "first_byte": "90s", "idle": "500ms"},
            "state_ttl": "30s",
            "status": {"public": True},
        }
    )
    assert settings.keys == (
        GatewayKey("chat-app", CredentialRef("env", "K1"), frozenset({"qwen"}), frozenset({"qwen-plus"}), 600),
        GatewayKey("batch", CredentialRef("kms", "gateway-batch", stage="ACSCurrent")),
    )
    assert settings.models == {
        "qwen-plus": (ModelRoute("qwen", "qwen-plus-latest"), ModelRoute("llm", "qwen-plus")),  # model defaults
        "deepseek": (ModelRoute("llm", "DeepSeek-R1-Distill-Qwen-7B"),),
    }
    assert settings.body_limit == {"eas": 512 * 1024, "dashscope": 16 * 1024 * 1024}
    assert (settings.connect_timeout_s, settings.first_byte_timeout_s, settings.idle_timeout_s) == (2.0, 90.0, 0.5)
    assert (settings.state_ttl_s, settings.status_public) == (30.0, True)


def test_defaults():
    settings = read({"keys": [KEY]})
    assert settings.models == {}
    assert settings.body_limit == {"eas": 1024 * 1024, "dashscope": 32 * 1024 * 1024}
    assert (settings.connect_timeout_s, settings.first_byte_timeout_s, settings.idle_timeout_s) == (5.0, 300.0, 120.0)
    assert (settings.state_ttl_s, settings.status_public) == (10.0, False)
    key = settings.keys[0]
    assert (key.targets, key.models, key.rpm) == (None, None, None)


def test_key_access_checks():
    key = GatewayKey("k", CredentialRef("env", "K"), frozenset({"qwen"}), frozenset({"qwen-plus"}))
    assert key.allows_target("qwen") and not key.allows_target("llm")
    assert key.allows_model("qwen-plus") and not key.allows_model("deepseek")
    everything = GatewayKey("k", CredentialRef("env", "K"))
    assert everything.allows_target("anything") and everything.allows_model("anything")


@pytest.mark.parametrize(
    "gateway,expected",
    [
        (None, "cfg.yaml: gateway.keys: must be a non-empty list of keys"),
        ({"keys": []}, "cfg.yaml: gateway.keys: must be a non-empty list of keys"),
        ({"keys": [{"key": "env:K"}]}, "cfg.yaml: gateway.keys[0].name: is required"),
        ({"keys": [{"name": "a b", "key": "env:K"}]}, "cfg.yaml: gateway.keys[0].name: must be 1-63 letters"),
        ({"keys": [KEY, {**KEY, "key": "env:OTHER"}]}, "cfg.yaml: gateway.keys[1].name: duplicate key name 'app'"),
        ({"keys": [{"name": "a"}]}, "cfg.yaml: gateway.keys[0].key: is required: a reference, env:VAR or kms:SECRET"),
        ({"keys": [{"name": "a", "key": "sk-inline-secret"}]}, "cfg.yaml: gateway.keys[0].key: must be a reference"),
        ({"keys": [{"name": "a", "key": "env:"}]}, "cfg.yaml: gateway.keys[0].key: malformed env: reference"),
        ({"keys": [{"name": "a", "key": "eas:cn-beijing/llm"}]}, "cfg.yaml: gateway.keys[0].key: must be env:VAR or"),
        ({"keys": [{**KEY, "targets": ["qwen", "nope"]}]}, "gateway.keys[0].targets: unknown target(s) nope; "
         "configured: llm, qwen"),
        ({"keys": [{**KEY, "targets": []}]}, "cfg.yaml: gateway.keys[0].targets: must be a non-empty list"),
        ({"keys": [{**KEY, "targets": "qwen"}]}, "cfg.yaml: gateway.keys[0].targets: must be a non-empty list"),
        ({"keys": [{**KEY, "models": ["gpt-4"]}]}, "gateway.keys[0].models: unknown model(s) gpt-4; configured: none"),
        ({"keys": [{**KEY, "rpm": 0}]}, "cfg.yaml: gateway.keys[0].rpm: must be a whole number of requests per minute"),
        ({"keys": [{**KEY, "rpm": "60"}]}, "cfg.yaml: gateway.keys[0].rpm: must be a whole number"),
        ({"keys": [{**KEY, "rpm": True}]}, "cfg.yaml: gateway.keys[0].rpm: must be a whole number"),
        ({"keys": [{**KEY, "rmp": 5}]}, "cfg.yaml: gateway.keys[0].rmp: unknown field; did you mean 'rpm'?"),
        ({"keys": [KEY], "models": ["qwen"]}, "cfg.yaml: gateway.models: must map model names to route lists"),
        ({"keys": [KEY], "models": {"m": []}}, "cfg.yaml: gateway.models.m: must be a non-empty list of routes"),
        ({"keys": [KEY], "models": {"m": [{"target": "nope"}]}}, "cfg.yaml: gateway.models.m[0].target: unknown "
         "target 'nope'; configured: llm, qwen"),
        ({"keys": [KEY], "models": {"m": [{"model": "x"}]}}, "cfg.yaml: gateway.models.m[0].target: is required"),
        ({"keys": [KEY], "models": {"m": ["qwen"]}}, "cfg.yaml: gateway.models.m[0]: must be a mapping"),
        ({"keys": [KEY], "body_limit": {"eas": "1 TB"}}, "cfg.yaml: gateway.body_limit.eas: must be a size"),
        ({"keys": [KEY], "body_limit": {"eas": 0}}, "cfg.yaml: gateway.body_limit.eas: must be a size"),
        ({"keys": [KEY], "body_limit": {"dashscope": "64MB"}}, "gateway.body_limit.dashscope: must be at most 32MB"),
        ({"keys": [KEY], "body_limit": {"http": "1MB"}}, "cfg.yaml: gateway.body_limit.http: unknown field"),
        ({"keys": [KEY], "timeouts": {"idle": "forever"}}, "cfg.yaml: gateway.timeouts.idle: must be a positive"),
        ({"keys": [KEY], "timeouts": {"total": "10m"}}, "cfg.yaml: gateway.timeouts.total: unknown field"),
        ({"keys": [KEY], "state_ttl": -1}, "cfg.yaml: gateway.state_ttl: must be a positive duration"),
        ({"keys": [KEY], "status": {"public": "yes"}}, "cfg.yaml: gateway.status.public: must be true or false"),
        ({"keys": [KEY], "keyz": []}, "cfg.yaml: gateway.keyz: unknown field; did you mean 'keys'?"),
        ([KEY], "cfg.yaml: gateway: must be a mapping, got list"),
    ],
)
def test_every_problem_names_its_field(gateway, expected):
    found = problems(gateway)
    assert any(expected in p for p in found), found


def test_a_target_may_not_take_a_gateway_route_name():
    found = problems({"keys": [KEY]}, DS, {**EAS, "name": "healthz"}, {**DS, "name": "v1"})
    assert [p for p in found if "route of the gateway" in p] == [
        "cfg.yaml: targets[1].name: 'healthz' is a route of the gateway itself "
        "(/_gw, /healthz, /metrics, /probe, /status, /status.json, /v1); rename the target",
        "cfg.yaml: targets[2].name: 'v1' is a route of the gateway itself "
        "(/_gw, /healthz, /metrics, /probe, /status, /status.json, /v1); rename the target",
    ]
    # Without a gateway: section nothing is routed by name, so the name is fine.
    assert parse_config({"targets": [{**DS, "name": "metrics"}]}).targets[0].name == "metrics"


def test_a_disabled_target_is_not_routable():
    found = problems({"keys": [{**KEY, "targets": ["llm"]}]}, DS, {**EAS, "enabled": False})
    assert found == ["cfg.yaml: gateway.keys[0].targets: unknown target(s) llm; configured: qwen"]


def test_gateway_problems_come_with_the_rest_of_the_file():
    bad_target = {**DS, "kind": "nope"}
    found = problems({"keys": [{"name": "a", "key": "inline"}]}, bad_target, EAS)
    assert any(p.startswith("cfg.yaml: targets[qwen].kind:") for p in found), found
    assert any(p.startswith("cfg.yaml: gateway.keys[0].key:") for p in found), found


def test_a_secret_written_inline_is_never_echoed():
    found = problems({"keys": [{"name": "a", "key": "sk-canary-gateway-inline-1"}]})
    assert found and not any("sk-canary-gateway-inline-1" in p for p in found)


@pytest.mark.parametrize(
    "value,size",
    [
        (1048576, 1048576),
        ("1MB", 1024 * 1024),
        ("1mb", 1024 * 1024),
        ("512KB", 512 * 1024),
        ("32MB", 32 * 1024 * 1024),
        ("2 MiB", 2 * 1024 * 1024),
        ("100", 100),
        ("10B", 10),
        ("1GB", 1024**3),
    ],
)
def test_sizes(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -5, "0MB", "1.5MB", "MB", "1 TB", "", None, True, 1.5, ["1MB"]])
def test_not_sizes(value):
    assert parse_size(value) is None


def test_the_largest_body_limit_is_fcs():
    assert read({"keys": [KEY], "body_limit": {"dashscope": "32MB", "eas": FC_SYNC_BODY_LIMIT}}).body_limit == {
        "dashscope": FC_SYNC_BODY_LIMIT,
        "eas": FC_SYNC_BODY_LIMIT,
    }
