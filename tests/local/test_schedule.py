"""shared.local.schedule: FC timer expressions (six fields, seconds first; @every; CRON_TZ) and s.yaml."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.local.schedule import Schedule, ScheduleError, parse_schedule, probe_schedule_from_syaml

REPO = Path(__file__).resolve().parents[2]


def utc(text: str) -> datetime:
    """'2024-01-01T00:05:00' (or with .ffffff) as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


NEXT_CASES = [
    # expression, after (UTC), expected next fire (UTC)
    ("0 */5 * * * *", "2024-01-01T00:00:00", "2024-01-01T00:05:00"),  # strictly after a fire time
    ("0 */5 * * * *", "2024-01-01T00:04:59.999999", "2024-01-01T00:05:00"),
    ("0 */1 * * * *", "2024-01-01T10:20:30", "2024-01-01T10:21:00"),
    ("30 15 10 * * *", "2024-01-01T00:00:00", "2024-01-01T10:15:30"),  # sec=30 min=15 hour=10
    ("*/10 * * * * *", "2024-01-01T00:00:05.500000", "2024-01-01T00:00:10"),
    ("0 0 12 ? * MON", "2024-01-01T12:00:00", "2024-01-08T12:00:00"),  # 2024-01-01 is a Monday
    ("0 0 12 * * 0", "2024-01-01T00:00:00", "2024-01-07T12:00:00"),  # 0 = Sunday
    ("0 0 8 * * mon-fri", "2024-01-05T09:00:00", "2024-01-08T08:00:00"),  # Fri after 8 -> Mon
    ("0 0 0 1 jan,JUL ?", "2024-01-01T00:00:00", "2024-07-01T00:00:00"),
    ("0 0 0 29 2 ?", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 59 23 31 12 *", "2024-12-31T23:59:00", "2025-12-31T23:59:00"),
    ("  0 */5 * * * *  ", "2024-01-01T00:01:00", "2024-01-01T00:05:00"),  # surrounding blanks
    # @every: the next whole multiple of the interval since the Unix epoch
    ("@every 5m", "2024-01-01T00:02:03", "2024-01-01T00:05:00"),
    ("@every 5m", "2024-01-01T00:05:00", "2024-01-01T00:10:00"),
    ("@every 30s", "2024-01-01T00:00:29.999999", "2024-01-01T00:00:30"),
    ("@every 1h30m", "2024-01-01T00:00:00", "2024-01-01T01:30:00"),  # 2024-01-01Z is a multiple of 90m
    ("@every 1h30m", "2024-01-01T01:29:59", "2024-01-01T01:30:00"),
    ("@every 7m", "1970-01-01T00:00:00", "1970-01-01T00:07:00"),
    ("CRON_TZ=Asia/Shanghai @every 5m", "2024-01-01T00:02:03", "2024-01-01T00:05:00"),  # zone ignored
    # CRON_TZ: fields read in that zone
    ("CRON_TZ=Asia/Shanghai 0 0 9 * * *", "2024-01-01T00:00:00", "2024-01-01T01:00:00"),
    ("CRON_TZ=Asia/Shanghai 0 0 9 * * *", "2024-01-01T01:00:00", "2024-01-02T01:00:00"),
    ("CRON_TZ=Asia/Shanghai 0 0 0 * * *", "2024-01-01T15:59:59", "2024-01-01T16:00:00"),  # next local day
    ("CRON_TZ=Asia/Kolkata 0 0 9 * * *", "2024-01-01T00:00:00", "2024-01-01T03:30:00"),  # +05:30
    # DST: Europe/Berlin 09:00 is 08:00Z in winter, 07:00Z in summer
    ("CRON_TZ=Europe/Berlin 0 0 9 * * *", "2024-03-30T08:00:00", "2024-03-31T07:00:00"),  # spring forward
    ("CRON_TZ=Europe/Berlin 0 0 9 * * *", "2024-10-26T07:00:00", "2024-10-27T08:00:00"),  # fall back
    ("CRON_TZ=America/New_York 0 0 12 * * *", "2024-03-09T17:00:00", "2024-03-10T16:00:00"),
    # DST edges (Berlin: 2024-03-31 02:00->03:00 at 01:00Z; 2024-10-27 03:00->02:00 at 01:00Z):
    # a skipped wall time fires shifted by the jump, a repeated one at its first occurrence only
    ("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-03-30T12:00:00", "2024-03-31T01:30:00"),  # 03:30 CEST
    ("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-03-31T01:30:00", "2024-04-01T00:30:00"),
    ("CRON_TZ=Europe/Berlin 0 */30 * * * *", "2024-03-31T00:30:00", "2024-03-31T01:00:00"),
    ("CRON_TZ=Europe/Berlin 0 */30 * * * *", "2024-03-31T01:00:00", "2024-03-31T01:30:00"),
    ("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-10-26T12:00:00", "2024-10-27T00:30:00"),  # 02:30 CEST
    ("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-10-27T00:30:00", "2024-10-28T01:30:00"),  # not 02:30 CET
    ("CRON_TZ=Europe/Berlin 0 30 2 * * *", "2024-10-27T01:10:00", "2024-10-28T01:30:00"),  # inside repeat
    ("CRON_TZ=Europe/Berlin 0 */30 * * * *", "2024-10-27T01:10:00", "2024-10-27T02:00:00"),  # 03:00 CET
]


@pytest.mark.parametrize(("expression", "after", "expected"), NEXT_CASES)
def test_next_after(expression: str, after: str, expected: str) -> None:
    got = parse_schedule(expression).next_after(utc(after))
    assert got == utc(expected)
    assert got.utcoffset() == timedelta(0)


ERROR_CASES = [
    # expression, fragment of the message
    ("0 */5 * * *", "has 5 fields; FC timer cron has six, seconds first: '0 0 */5 * * *'"),
    ("* * * * * * *", "has 7 fields"),
    ("hello world", "has 2 fields"),
    ("", "empty"),
    ("   ", "empty"),
    ("61 * * * * *", "seconds field '61': 61 is out of range 0-59"),
    ("0 60 * * * *", "minutes field '60': 60 is out of range 0-59"),
    ("0 0 24 * * *", "hours field '24': 24 is out of range 0-23"),
    ("0 0 0 0 * *", "day-of-month field '0': 0 is out of range 1-31"),
    ("0 0 0 32 * *", "out of range 1-31"),
    ("0 0 0 * 13 *", "month field '13': 13 is out of range 1-12"),
    ("0 0 0 * * 7", "day-of-week field '7': 7 is out of range 0-6"),
    ("0 0 0 * FOO *", "'FOO' is not a number or one of JAN, FEB"),
    ("0 0 0 L * *", "'L' is not a number"),
    ("0 0 0 * * 5#2", "day-of-week field '5#2' is not valid"),
    ("a b c d e f", "seconds field 'a': 'a' is not a number"),
    ("? * * * * *", "'?' is only allowed in day-of-month and day-of-week"),
    ("*/0 * * * * *", "a step of /0 never advances"),
    ("0 0 0 10-5 * *", "range 10-5 runs backwards"),
    ("0 0 0 1,,2 * *", "day-of-month field '1,,2' is not valid"),
    ("0 0 0 31 2 *", "never fires"),
    ("CRON_TZ=Mars/Olympus_Mons 0 0 9 * * *", "unknown time zone 'Mars/Olympus_Mons'"),
    ("CRON_TZ=../../etc/passwd 0 0 9 * * *", "unknown time zone"),
    ("CRON_TZ= 0 0 9 * * *", "CRON_TZ= has no zone"),
    ("CRON_TZ=Asia/Shanghai", "has a zone but no schedule"),
    ("TZ=Asia/Shanghai 0 0 9 * * *", "not 'TZ='"),
    ("@hourly", "'@hourly' is not an FC timer form"),
    ("@every", "bad @every duration ''"),
    ("@every 0m", "longer than zero"),
    ("@every 1.5h", "bad @every duration '1.5h'"),
    ("@every 5 m", "bad @every duration '5 m'"),
    ("@every 30m1h", "bad @every duration '30m1h'"),
    ("@every5m", "'@every5m' is not an FC timer form"),
]


@pytest.mark.parametrize(("expression", "fragment"), ERROR_CASES)
def test_rejects(expression: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(expression)
    message = str(info.value)
    assert fragment in message
    if expression.strip():
        assert repr(expression.strip()) in message  # the message names the expression


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)
    with pytest.raises(ScheduleError, match="must be a string"):
        parse_schedule(None)  # type: ignore[arg-type]


def test_constructing_schedule_directly_validates() -> None:
    with pytest.raises(ScheduleError):
        Schedule("0 */5 * * *")


def test_schedule_value_semantics() -> None:
    schedule = parse_schedule("CRON_TZ=Asia/Shanghai 0 0 9 * * *")
    assert schedule == parse_schedule("CRON_TZ=Asia/Shanghai 0 0 9 * * *")
    assert schedule.expression == "CRON_TZ=Asia/Shanghai 0 0 9 * * *"
    assert schedule.timezone == "Asia/Shanghai"
    assert schedule.interval is None
    assert parse_schedule("@every 1h30m").interval == timedelta(hours=1, minutes=30)
    assert parse_schedule("0 * * * * *").timezone == "UTC"
    with pytest.raises(AttributeError):
        schedule.expression = "0 * * * * *"  # type: ignore[misc]


def test_next_after_accepts_any_aware_zone_and_returns_utc() -> None:
    schedule = parse_schedule("0 0 9 * * *")  # 09:00 UTC
    shanghai_noon = datetime(2024, 1, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # 04:00Z
    got = schedule.next_after(shanghai_noon)
    assert got == utc("2024-01-01T09:00:00")
    assert got.tzinfo == timezone.utc


def test_next_after_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("@every 5m").next_after(datetime(2024, 1, 1))


def test_successive_fires_are_a_sequence() -> None:
    schedule = parse_schedule("0 */20 * * * *")
    fires, t = [], utc("2024-01-01T23:30:00")
    for _ in range(4):
        t = schedule.next_after(t)
        fires.append(t)
    assert fires == [
        utc("2024-01-01T23:40:00"),
        utc("2024-01-02T00:00:00"),
        utc("2024-01-02T00:20:00"),
        utc("2024-01-02T00:40:00"),
    ]


# --- s.yaml ----------------------------------------------------------------------------------


def test_project_syaml_probe_timer() -> None:
    schedule, payload = probe_schedule_from_syaml(REPO / "s.yaml")
    assert schedule.expression == "0 */1 * * * *"
    assert payload == ""
    assert schedule.next_after(utc("2024-01-01T10:20:30")) == utc("2024-01-01T10:21:00")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SYAML = """\
edition: 3.0.0
name: t
vars:
  schedule: ${env('VPCPROBE_TEST_SCHEDULE', '@every 5m')}
  zone: Asia/Shanghai
resources:
  other:
    component: fc3
    props: {functionName: other}
  vpcprobe-probe:
    component: fc3
    props:
      functionName: vpcprobe-probe
      triggers:
        - triggerName: web
          triggerType: http
          triggerConfig: {authType: anonymous, methods: [GET]}
        - triggerName: old
          triggerType: timer
          triggerConfig: {cronExpression: "0 0 0 * * *", enable: false}
        - triggerName: probe-timer
          triggerType: timer
          triggerConfig:
            cronExpression: ${vars.schedule}
            enable: true
            payload: '{"targets": ["a"]}'
  custom:
    component: fc3
    props:
      triggers:
        - triggerType: timer
          triggerConfig:
            cronExpression: CRON_TZ=${vars.zone} 0 0 9 * * *
            enable: true
"""


def test_syaml_resolves_vars_env_default_and_skips_disabled(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VPCPROBE_TEST_SCHEDULE", raising=False)
    schedule, payload = probe_schedule_from_syaml(write(tmp_path, SYAML))
    assert schedule.expression == "@every 5m"
    assert payload == '{"targets": ["a"]}'


def test_syaml_env_overrides_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VPCPROBE_TEST_SCHEDULE", "0 */10 * * * *")
    schedule, _ = probe_schedule_from_syaml(str(write(tmp_path, SYAML)))
    assert schedule.expression == "0 */10 * * * *"


def test_syaml_inline_var_and_other_resource(tmp_path: Path) -> None:
    schedule, payload = probe_schedule_from_syaml(write(tmp_path, SYAML), resource="custom")
    assert schedule.expression == "CRON_TZ=Asia/Shanghai 0 0 9 * * *"
    assert payload == ""
    assert schedule.next_after(utc("2024-01-01T00:00:00")) == utc("2024-01-01T01:00:00")


def test_syaml_bad_env_cron_names_file_and_field(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VPCPROBE_TEST_SCHEDULE", "*/5 * * * *")
    path = write(tmp_path, SYAML)
    with pytest.raises(ScheduleError) as info:
        probe_schedule_from_syaml(path)
    message = str(info.value)
    assert str(path) in message
    assert "resources.vpcprobe-probe.props.triggers[2].triggerConfig.cronExpression" in message
    assert "has 5 fields" in message


SYAML_ERRORS = [
    # (s.yaml text, resource, fragment)
    (SYAML, "nope", "no resource 'nope' under 'resources' (found: other, vpcprobe-probe, custom)"),
    (SYAML, "other", "resources.other.props.triggers has no enabled timer trigger"),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerName: t\n          triggerType: timer\n"
        "          triggerConfig: {cronExpression: '@every 1m', enable: false}\n",
        "p",
        "no enabled timer trigger (disabled: t)",
    ),
    ("resources:\n  p:\n    component: fc3\n", "p", "resources.p.props is missing"),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig: {enable: true}\n",
        "p",
        "triggers[0].triggerConfig.cronExpression is missing",
    ),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig: {cronExpression: '@every 1m', payload: {a: 1}}\n",
        "p",
        "payload must be a string",
    ),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig: {cronExpression: '${resources.q.props.cron}'}\n",
        "p",
        "cannot resolve ${resources.q.props.cron}",
    ),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig: {cronExpression: '${vars.missing}'}\n",
        "p",
        "${vars.missing} is not defined under 'vars'",
    ),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig: {cronExpression: \"${env('VPCPROBE_TEST_UNSET_VAR')}\"}\n",
        "p",
        "needs environment variable VPCPROBE_TEST_UNSET_VAR",
    ),
    (
        "vars:\n  a: ${vars.b}\n  b: ${vars.a}\nresources:\n  p:\n    props:\n      triggers:\n"
        "        - triggerType: timer\n          triggerConfig: {cronExpression: '${vars.a}'}\n",
        "p",
        "nest too deep",
    ),
    (
        "resources:\n  p:\n    props:\n      triggers:\n        - triggerType: timer\n"
        "          triggerConfig:\n            cronExpression: * * * * * *\n",
        "p",
        "invalid YAML",
    ),
    ("- just\n- a list\n", "p", "expected a mapping"),
]


@pytest.mark.parametrize(("text", "resource", "fragment"), SYAML_ERRORS)
def test_syaml_errors(tmp_path: Path, monkeypatch, text: str, resource: str, fragment: str) -> None:
    monkeypatch.delenv("VPCPROBE_TEST_UNSET_VAR", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ScheduleError) as info:
        probe_schedule_from_syaml(path, resource=resource)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_syaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="cannot read"):
        probe_schedule_from_syaml(tmp_path / "absent.yaml")


# ------------------------------------------------------------------ issue 11: limits


@pytest.mark.parametrize(
    "expression,expected",
    [
        ("@every 99999999999999h", "the @every interval is longer than a year (8784h)"),
        ("@every 8785h", "the @every interval is longer than a year (8784h)"),
        ("CRON_TZ=" + "A" * 300 + " 0 * * * * *", "unknown time zone 'AAAA"),
        ("CRON_TZ=Asia/Shanghai\x00 0 * * * * *", "unknown time zone"),
        ("0 " + "1," * 600 + "1 * * * *", "cron expression is 1211 characters long; an FC timer expression is at most"),
        ("9" * 5000 + " * * * * *", "cron expression is 5010 characters long"),
    ],
)
def test_limits(expression, expected):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(expression)
    assert expected in str(info.value) and len(str(info.value)) < 400


def test_a_year_long_interval_still_works():
    schedule = parse_schedule("@every 8784h")
    assert schedule.interval == timedelta(days=366)
    assert schedule.next_after(datetime(2026, 1, 1, tzinfo=timezone.utc)) > datetime(2026, 1, 1, tzinfo=timezone.utc)
