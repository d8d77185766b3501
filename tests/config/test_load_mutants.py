"""The region a config runs in: its own `region:`, else the function's, else FC_REGION (set by FC)."""

from __future__ import annotations

from shared.config.load import parse_config

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
