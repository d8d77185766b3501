"""The region a config runs in: its own `region:`, else the function's, else FC_REGION (set by FC); where
the config file is found; which configs reach the alerting code (any alerts:, state: or maintenance: section,
or a target's own alerts: block; a probe-only config never does); the resolve: section's problems, word for
word; and split_addr's ports and brackets."""

from __future__ import annotations

import sys
import types

import pytest

from shared.config.load import find_config, load_config, parse_config, split_addr
from shared.config.reader import ConfigError

TARGET = {
    "name": "q",
    "kind": "dashscope",
    "endpoint": "http://ep-r1.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
}


def test_fc_region_is_the_fallback(monkeypatch):
    monkeypatch.setenv("FC_REGION", "ap-southeast-1")
    assert parse_config({"targets": [TARGET]}).region == "ap-southeast-1"
    assert parse_config({"targets": [TARGET]}, function_region="cn-beijing").region == "cn-beijing"
    assert (
        parse_config({"region": "cn-hangzhou", "targets": [TARGET]}, function_region="cn-beijing").region
        == "cn-hangzhou"
    )


def test_no_region_anywhere(monkeypatch):
    monkeypatch.delenv("FC_REGION", raising=False)
    assert parse_config({"targets": [TARGET]}).region is None


def test_the_config_path_explicit_then_the_variable_then_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VPCPROBE_CONFIG", "/etc/vpcprobe/probe.yaml")
    assert find_config("given.yaml") == "given.yaml"
    assert find_config() == "/etc/vpcprobe/probe.yaml"
    monkeypatch.delenv("VPCPROBE_CONFIG")
    (tmp_path / "vpcprobe.yaml").write_text("targets: []")
    assert find_config() == "vpcprobe.yaml"


def test_no_config_anywhere_says_how_to_make_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VPCPROBE_CONFIG", raising=False)
    with pytest.raises(ConfigError) as caught:
        find_config()
    assert caught.value.problems == [
        "no config file: pass -c FILE, set VPCPROBE_CONFIG, or create vpcprobe.yaml "
        "(cp vpcprobe.example.yaml vpcprobe.yaml)"
    ]


@pytest.mark.parametrize("section", ["state", "maintenance"])
def test_a_state_or_maintenance_section_alone_is_read_as_alerting(section):
    with pytest.raises(ConfigError) as caught:
        parse_config({"targets": [TARGET], section: 5})
    assert any(p.startswith(f"<config>: {section}") for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "value,expected",
    [
        ("10.0.0.1:1", ("10.0.0.1", 1)),
        ("10.0.0.1:65535", ("10.0.0.1", 65535)),
        ("[fd00::1]:443", ("fd00::1", 443)),
        ("10.0.0.1:0", (None, None)),
        ("10.0.0.1:65536", (None, None)),
        ("10.0.0.1:x", (None, None)),
        ("host.example:80", (None, None)),
    ],
)
def test_split_addr_takes_ports_1_to_65535_after_an_ip(value, expected):
    assert split_addr(value) == expected


def test_a_loaded_file_gets_the_functions_region(monkeypatch, tmp_path):
    monkeypatch.delenv("FC_REGION", raising=False)
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(
        "targets:\n  - name: q\n    kind: dashscope\n"
        "    endpoint: http://ep-r1.dashscope.ap-southeast-1.privatelink.aliyuncs.com\n"
    )
    assert load_config(str(path), function_region="cn-beijing").region == "cn-beijing"


def alerting_reads(monkeypatch) -> list[str]:
    """Records each call of read_alert_config (the real one answers): the alerting code is imported from
    sys.modules at the call, so a stand-in module there sees whether a config was read as alerting."""
    from shared.alerts import config as alerts_config

    calls: list[str] = []

    def read_alert_config(data, targets, problems, path):
        calls.append(path)
        return alerts_config.read_alert_config(data, targets, problems, path)

    spy = types.ModuleType("shared.alerts.config")
    spy.read_alert_config = read_alert_config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared.alerts.config", spy)
    return calls


def test_a_probe_only_config_never_reaches_the_alerting_code(monkeypatch):
    """The FC handler's cold start stays free of shared.alerts.config when nothing asks for alerting."""
    calls = alerting_reads(monkeypatch)
    config = parse_config({"targets": [TARGET, {**TARGET, "name": "r"}]})
    assert config.alerts is None
    assert calls == []


@pytest.mark.parametrize("section", ["alerts", "state", "maintenance"])
def test_each_alerting_section_reaches_the_alerting_code(monkeypatch, section):
    calls = alerting_reads(monkeypatch)
    with pytest.raises(ConfigError):
        parse_config({"targets": [TARGET], section: 5})
    assert calls == ["<config>"]


def test_a_targets_own_alerts_block_alone_is_read_as_alerting(monkeypatch):
    """Only the target with an alerts: block makes the config an alerting one; the other target has none."""
    calls = alerting_reads(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        parse_config({"targets": [{**TARGET, "name": "r"}, {**TARGET, "alerts": {"failure_threshold": 2}}]})
    assert caught.value.problems == ["<config>: targets[q].alerts: needs a top-level alerts: section with the channels"]
    assert calls == ["<config>"]


def problems_of(data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


@pytest.mark.parametrize("resolve", [["10.0.0.1"], "10.0.0.1", 5])
def test_a_resolve_that_is_not_a_mapping_says_what_it_must_be(resolve):
    assert problems_of({"targets": [TARGET], "resolve": resolve}) == [
        "<config>: resolve: must map host names to an address or a list of addresses (ip or ip:port)"
    ]


def test_a_resolve_value_that_is_not_text_is_a_problem_not_a_crash():
    """YAML gives numbers and mappings where an address was meant: each is named, the good address kept."""
    assert problems_of({"targets": [TARGET], "resolve": {"h": ["10.0.0.1", 7, {"a": 1}]}}) == [
        "<config>: resolve.h: 7 is not an IP address or ip:port",
        "<config>: resolve.h: {'a': 1} is not an IP address or ip:port",
    ]
    assert problems_of({"targets": [TARGET], "resolve": {"h": 10}}) == [
        "<config>: resolve.h: 10 is not an IP address or ip:port",
        "<config>: resolve.h: give at least one address",
    ]


@pytest.mark.parametrize("length,shown", [(60, "h" * 60), (61, "h" * 60 + "…"), (62, "h" * 60 + "…")])
def test_a_long_resolve_host_is_cut_at_60_characters_in_a_problem(length, shown):
    assert problems_of({"targets": [TARGET], "resolve": {"h" * length: []}}) == [
        f"<config>: resolve.{shown}: give at least one address"
    ]


@pytest.mark.parametrize("value", ["X10.0.0.1:80", "[10.0.0.1X]:80", "[X::1]:80", "10.0.0.1]X:80"])
def test_split_addr_strips_only_the_brackets_around_an_ip(value):
    assert split_addr(value) == (None, None)
