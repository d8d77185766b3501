"""The region a config runs in: its own `region:`, else the function's, else FC_REGION (set by FC); where
the config file is found; and a state: or maintenance: section alone is an alerting config."""

from __future__ import annotations

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
