"""The `alerts:`, `state:` and `maintenance:` sections (and each target's `alerts:`), validated.

Same contract as the rest of vpcprobe.yaml: every problem is reported as `file: field.path: what
is wrong and the fix`, and a config with a problem runs nothing — a broken channel found at load
time beats one found at 3 a.m. when it should have delivered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.alerts.channels import Channel, parse_channel, read_str_list
from shared.alerts.policy import DegradedPolicy, NotificationKind, Policy, Window
from shared.config.reader import Reader
from shared.errors import clip, excerpt
from shared.state.settings import StoreSettings, read_settings

DAYS = {d: i for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\Z")
_NEVER = ("0", "never", "off", "none")


@dataclass(frozen=True)
class AlertConfig:
    policy: Policy
    channels: tuple[Channel, ...]
    store: StoreSettings
    windows: tuple[Window, ...] = ()
    target_policies: dict[str, Policy] = field(default_factory=dict)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # targets with their own channel list
    status_page_url: str | None = None
    timezone: str = "UTC"

    def policy_for(self, target: str) -> Policy:
        return self.target_policies.get(target, self.policy)

    def route(self, target: str, kind: NotificationKind) -> list[str]:
        """The channels that may deliver this notification, fallbacks in order (config order).

        A recovery follows the same route but stops at a channel with `send_resolved: false`: that
        channel swallows it rather than passing it on to a fallback that never saw the alert."""
        names = self.routes.get(target) or tuple(c.name for c in self.channels)
        if not NotificationKind(kind).clears:
            return list(names)
        by_name = {c.name: c for c in self.channels}
        out: list[str] = []
        for name in names:
            if not by_name[name].send_resolved:
                break
            out.append(name)
        return out


def read_alert_config(data: dict[str, Any], targets: list[Any], problems: list[str], path: str) -> AlertConfig | None:
    """Validate the alerting sections of a config document (`targets`: its targets: items) into
    `problems`; None when there is no `alerts:` section (state: and maintenance: are checked anyway)."""
    top = Reader(data.get("alerts"), "alerts", problems, path)
    policy = read_policy(top, Policy())
    status_page_url = top.str("status_page_url")
    if status_page_url and not status_page_url.startswith(("https://", "http://")):
        top.error(f"must be an http(s):// URL (got {excerpt(status_page_url)})", "status_page_url")
    tz = _timezone(top, "timezone")
    channels, declared = _read_channels(top, problems, path, required="alerts" in data)
    top.finish()
    known_targets = {str(t.get("name")) for t in targets if isinstance(t, dict)}
    policies, routes = _read_target_blocks(targets, declared, policy, problems, path, has_alerts="alerts" in data)
    state_reader = Reader(data.get("state"), "state", problems, path)
    store = read_settings(state_reader)
    state_reader.finish()
    windows = _read_windows(data.get("maintenance"), known_targets, problems, path)
    if "alerts" not in data:
        return None
    return AlertConfig(policy, tuple(channels), store, tuple(windows), policies, routes, status_page_url, tz)


def read_policy(r: Reader, base: Policy) -> Policy:
    """Thresholds, reminder interval and the degraded rule; unset fields keep `base`."""
    repeat: float | None = base.repeat_interval_s
    value = r.get("repeat_interval")
    never = value is False or (isinstance(value, (int, float)) and value == 0 and value is not True)
    if never or (isinstance(value, str) and value.strip().lower() in _NEVER):
        repeat = None  # `repeat_interval: never` (or off, 0): no reminders
    elif value is not None:
        repeat = r.seconds("repeat_interval", base.repeat_interval_s)
    return Policy(
        failure_threshold=r.int("failure_threshold", base.failure_threshold, minimum=1),
        success_threshold=r.int("success_threshold", base.success_threshold, minimum=1),
        repeat_interval_s=repeat,
        degraded=DegradedPolicy(r.choice("degraded", tuple(DegradedPolicy), base.degraded) or base.degraded),
        unknown_threshold=r.int("unknown_threshold", base.unknown_threshold, minimum=0),
    )


def _timezone(r: Reader, key: str) -> str:
    name = r.str(key, "UTC") or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        r.error(f"unknown time zone {excerpt(name)}; use an IANA name such as Asia/Shanghai or UTC", key)
        return "UTC"
    return name


def _read_channels(top: Reader, problems: list[str], path: str, *, required: bool) -> tuple[list[Channel], list[str]]:
    """The valid channels, and every declared name in order (routes are checked against those)."""
    items = top.get("channels")
    if items is None and not required:
        return [], []
    if not isinstance(items, list) or not items:
        top.error("must list at least one channel (each with name and type: dingtalk, email or console)", "channels")
        return [], []
    channels: list[Channel] = []
    declared: list[str] = []
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in declared:
            problems.append(f"{path}: alerts.channels[{name}].name: duplicate channel name")
        elif isinstance(name, str):
            declared.append(name)
        channel = parse_channel(Reader(item, f"alerts.channels[{i}]", problems, path))
        if channel is not None:
            channels.append(channel)
    return channels, declared


def _read_target_blocks(
    targets: list[Any], order: list[str], base: Policy, problems: list[str], path: str, *, has_alerts: bool
) -> tuple[dict[str, Policy], dict[str, tuple[str, ...]]]:
    policies: dict[str, Policy] = {}
    routes: dict[str, tuple[str, ...]] = {}
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "alerts" not in t:
            continue
        name = str(t.get("name"))
        where = f"targets[{clip(name, 63)}]" if t.get("name") is not None else f"targets[{i}]"  # as its own errors
        r = Reader(t["alerts"], f"{where}.alerts", problems, path)
        if not has_alerts:
            r.error("needs a top-level alerts: section with the channels")
        policy = read_policy(r, base)
        if policy != base:
            policies[name] = policy
        wanted = read_str_list(r, "channels")
        unknown = [c for c in wanted if c not in order]
        if unknown and has_alerts:
            r.error(f"unknown channel(s) {', '.join(unknown)}; alerts.channels has: {', '.join(order)}", "channels")
        elif wanted and [c for c in order if c in wanted] != list(wanted):
            expected = ", ".join(c for c in order if c in wanted)
            r.error(
                f"list them in the order of alerts.channels ({expected}): a channel is tried only when the "
                "ones before it failed, and that order is the same for every target",
                "channels",
            )
        elif wanted:
            routes[name] = tuple(dict.fromkeys(wanted))
        r.finish()
    return policies, routes


def _read_windows(items: Any, targets: set[str], problems: list[str], path: str) -> list[Window]:
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append(f"{path}: maintenance: must be a list of windows (name, start, end or duration, timezone)")
        return []
    windows = []
    for i, item in enumerate(items):
        r = Reader(item, f"maintenance[{i}]", problems, path)
        window = _read_window(r, targets)
        r.finish()
        if window is not None:
            windows.append(window)
    return windows


def _read_window(r: Reader, targets: set[str]) -> Window | None:
    name = r.str("name", required=True)
    if name:
        r.path = f"maintenance[{name}]"
    tz_name = _timezone(r, "timezone")
    tz = ZoneInfo(tz_name)
    names = read_str_list(r, "targets")
    for unknown in (n for n in names if n not in targets):
        r.error(f"unknown target {excerpt(unknown)}", "targets")
    raw_start, raw_end = r.get("start"), r.get("end")
    length = r.seconds("duration", None)
    every = read_str_list(r, "every")
    if isinstance(raw_start, int) and not isinstance(raw_start, bool):
        r.error('quote the time: YAML reads an unquoted 12:30 as a number; write start: "12:30"', "start")
        return None
    if raw_start is None:
        r.error('is required: a date and time ("2026-12-01T02:00") or a daily time ("02:00") with duration', "start")
        return None
    start_text = raw_start.isoformat() if isinstance(raw_start, datetime) else str(raw_start).strip()
    clock = _CLOCK.match(start_text)
    if clock:  # recurring
        if raw_end is not None:
            r.error("a daily window (start: HH:MM) takes duration, not end", "end")
        if length is None:
            r.error("is required for a daily window, e.g. duration: 2h", "duration")
            return None
        if length > 86400:
            r.error("a daily window lasts at most 24h", "duration")
        days = []
        for day in every:
            key = day.strip().lower()[:3]
            if key not in DAYS or not day.strip().lower().startswith(key):
                r.error(f"{excerpt(day)} is not a weekday (mon, tue, ... sun)", "every")
            else:
                days.append(DAYS[key])
        return Window(
            name or "?",
            tz_name,
            names,
            daily=time(int(clock.group(1)), int(clock.group(2))),
            duration=timedelta(seconds=length),
            days=tuple(sorted(set(days))),
        )
    if every:
        r.error("only daily windows (start: HH:MM) repeat; a dated window happens once", "every")
    start = _moment(r, "start", raw_start, tz)
    if raw_end is not None:
        end = _moment(r, "end", raw_end, tz)
    elif length is not None and start is not None:
        end = _window_end(r, start, length)
    else:
        r.error("is required: when the window closes (or give duration)", "end")
        return None
    if start is None or end is None:
        return None
    if end <= start:
        r.error("must be after start", "end")
        return None
    return Window(name or "?", tz_name, names, start=start, end=end)


def _window_end(r: Reader, start: datetime, length: float) -> datetime | None:
    """start + duration, or None (with the problem recorded) when that is past what a datetime holds."""
    try:
        return _in_range(start + timedelta(seconds=length))
    except OverflowError:
        r.error("the window would end after the year 9999: give a shorter duration or an earlier start", "duration")
        return None


def _moment(r: Reader, key: str, value: Any, tz: ZoneInfo) -> datetime | None:
    """A date and time; without an offset it is in the window's timezone."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
        return _in_range(moment)
    except ValueError:
        r.error(f"{excerpt(value)} is not a date and time such as 2026-12-01T02:00", key)
    except OverflowError:
        r.error(f"{excerpt(value)} is out of range: a window lies between the years 1 and 9999 in UTC too", key)
    return None


def _in_range(moment: datetime) -> datetime:
    """`moment` if it converts to UTC, which the policy does with every window; OverflowError if not."""
    moment.astimezone(timezone.utc)
    return moment
