"""The alerts:, state: and maintenance: sections: parsed into typed settings, or every problem reported."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml

from shared.alerts.channels.dingtalk import DEFAULT_URL, DingTalk
from shared.alerts.channels.email import Email
from shared.alerts.policy import DegradedPolicy, NotificationKind, Policy
from shared.config.load import ConfigError, parse_config

TARGETS = """
targets:
  - name: qwen
    kind: dashscope
    endpoint: http://ep-a.dashscope.ap-southeast-1.privatelink.aliyuncs.com
  - name: llm-eas-vpc
    kind: eas
    endpoint: http://1.vpc.ap-southeast-1.pai-eas.aliyuncs.com/api/predict/svc
    alerts: {channels: [mail], degraded: ignore, failure_threshold: 3}
"""
GOOD = (
    TARGETS
    + """
state: {backend: oss, bucket: my-state, endpoint: oss-cn-hangzhou-internal.aliyuncs.com, lease_ttl: 90s}
alerts:
  failure_threshold: 2
  repeat_interval: 30m
  degraded: critical
  timezone: Asia/Shanghai
  status_page_url: https://status.example.com
  channels:
    - name: ops
      type: dingtalk
      access_token: env:DT_TOKEN
      secret: kms:dingtalk-secret
      at_mobiles: [13800000000, "+86-139-0000-0000"]
      send_resolved: false
    - name: mail
      type: email
      host: smtpdm.aliyun.com
      port: 587
      username: alerts@example.com
      password: env:SMTP_PASSWORD
      from: vpcprobe <alerts@example.com>
      to: [oncall@example.com]
    - {name: console, type: console}
maintenance:
  - {name: upgrade, start: "2026-12-01T02:00", end: "2026-12-01T04:00", timezone: Asia/Shanghai, targets: [qwen]}
  - {name: nightly, start: "23:30", duration: 2h, every: [sat, sunday]}
"""
)


def load(text: str):
    return parse_config(yaml.safe_load(text), path="vpcprobe.yaml").alerts


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


def test_a_full_config_is_typed():
    cfg = load(GOOD)
    assert cfg.policy == Policy(2, 1, 1800.0, DegradedPolicy.CRITICAL)
    assert cfg.policy_for("llm-eas-vpc") == Policy(3, 1, 1800.0, "ignore")
    assert cfg.store.backend == "oss" and cfg.store.prefix == "vpcprobe/" and cfg.store.lease_ttl_s == 90
    ops, mail, _console = cfg.channels
    assert isinstance(ops, DingTalk) and ops.url == DEFAULT_URL
    assert ops.at_mobiles == ("13800000000", "+86-139-0000-0000")
    assert str(ops.secret) == "kms:dingtalk-secret" and ops.send_resolved is False
    assert isinstance(mail, Email) and (mail.port, mail.security) == (587, "starttls")
    assert cfg.route("qwen", "firing") == ["ops", "mail", "console"]
    assert cfg.route("qwen", NotificationKind.RESOLVED) == []  # ops swallows recoveries: no fallback announces them
    assert cfg.route("llm-eas-vpc", "firing") == cfg.route("llm-eas-vpc", NotificationKind.RESOLVED) == ["mail"]
    upgrade, nightly = cfg.windows
    assert upgrade.start == datetime(2026, 11, 30, 18, 0, tzinfo=timezone.utc)
    assert upgrade.covers("qwen") and not upgrade.covers("llm-eas-vpc")
    assert nightly.days == (5, 6) and nightly.duration.total_seconds() == 7200 and nightly.timezone == "UTC"


def test_no_alerts_section_means_no_alerting():
    assert load(TARGETS.replace("    alerts: {channels: [mail], degraded: ignore, failure_threshold: 3}\n", "")) is None


def test_misconfigured_channels_are_reported_at_load_with_path_and_fix():
    text = (
        TARGETS
        + """
alerts:
  degraded: sometimes
  channels:
    - name: ops
      type: dingtalk
      access_token: SECinline-canary-secret-123
      url: https://oapi.dingtalk.com/robot/send?access_token=url-canary-token-456
      at_mobiles: [call-me]
      mention: all
    - name: mail
      type: email
      host: smtp.example.com
      port: 25
      password: env:SMTP_PASSWORD
      from: nobody
      to: []
    - {name: ops, type: console}
    - {name: pager, type: pagerduty, key: x}
"""
    )
    found = problems(text)
    joined = "\n".join(found)
    expected = [
        "vpcprobe.yaml: alerts.degraded: must be one of warning, critical, ignore (got 'sometimes')",
        "alerts.channels[ops].access_token: must be a reference: env:NAME",
        "alerts.channels[ops].url: must not carry a query string: give the token as access_token",
        "alerts.channels[ops].at_mobiles: 'call-me' is not a mobile number",
        "alerts.channels[ops].mention: unknown field",
        "alerts.channels[mail].port: port 25 is blocked on Alibaba Cloud; use 465 (security: ssl)",
        "alerts.channels[mail].username: is required with password",
        "alerts.channels[mail].from: 'nobody' is not an email address",
        "alerts.channels[mail].to: is required: one or more email addresses",
        "alerts.channels[ops].name: duplicate channel name",
        "alerts.channels[pager].type: must be one of dingtalk, email, console (got 'pagerduty')",
    ]
    for line in expected:
        assert line in joined, line
    assert "canary" not in joined  # an inline secret, or a URL carrying one, is never echoed


def test_routes_state_and_windows_are_checked():
    text = (
        TARGETS.replace("channels: [mail]", "channels: [console, ops]")
        + """
state: {backend: file, bucket: b}
alerts:
  repeat_interval: never
  channels:
    - {name: ops, type: dingtalk, access_token: env:T}
    - {name: console, type: console}
maintenance:
  - {name: a, start: 12:30, duration: 1h}
  - {name: b, start: "2026-12-01T04:00", end: "2026-12-01T02:00", targets: [nope]}
  - {name: c, start: "02:00", timezone: Mars/Olympus}
"""
    )
    joined = "\n".join(problems(text))
    for line in (
        "targets[llm-eas-vpc].alerts.channels: list them in the order of alerts.channels (ops, console)",
        "state.bucket: belongs to backend: oss",
        'maintenance[a].start: quote the time: YAML reads an unquoted 12:30 as a number; write start: "12:30"',
        "maintenance[b].targets: unknown target 'nope'",
        "maintenance[b].end: must be after start",
        "maintenance[c].timezone: unknown time zone 'Mars/Olympus'",
        "maintenance[c].duration: is required for a daily window",
    ):
        assert line in joined, line


def test_unknown_route_and_target_alerts_without_a_section():
    text = TARGETS + "alerts:\n  channels: [{name: ops, type: console}]\n"
    assert problems(text) == [
        "vpcprobe.yaml: targets[llm-eas-vpc].alerts.channels: unknown channel(s) mail; alerts.channels has: ops"
    ]
    assert any("targets[llm-eas-vpc].alerts: needs a top-level alerts: section" in p for p in problems(TARGETS))


def test_repeat_interval_never_and_warning_default():
    cfg = load(TARGETS.replace("channels: [mail]", "channels: [c]") + "alerts:\n  repeat_interval: off\n"
               "  channels: [{name: c, type: console}]\n")
    assert cfg.policy.repeat_interval_s is None and cfg.policy.degraded == DegradedPolicy.WARNING


def test_a_dingtalk_url_with_user_and_password_is_refused_without_echoing_them():
    """Error texts name the robot's host; a user:password@ in the URL would ride along into them."""
    text = """
targets: []
alerts:
  channels:
    - name: ops
      type: dingtalk
      access_token: env:DT_TOKEN
      url: https://robot:pw-canary-789@oapi.dingtalk.com/robot/send
"""
    joined = "\n".join(problems(text))
    assert "alerts.channels[ops].url: must not carry user:password@" in joined
    assert "canary" not in joined
