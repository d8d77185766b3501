"""FC 3.0 timer-trigger schedules: parse a ``cronExpression`` and compute when it fires next.

`vpcprobe serve` runs the probe function locally on the schedule written in s.yaml, so the same
expression must mean the same thing here as on Function Compute. FC's timer syntax is not Unix cron:

* six fields, **seconds first**: ``sec min hour day-of-month month day-of-week``
  (``0 */5 * * * *`` = every five minutes); ``?`` is allowed in day-of-month / day-of-week,
  month and weekday names (``JAN``, ``MON``) are case-insensitive, weekdays are 0-6 with 0 = Sunday;
  when both day fields are restricted a day matching either one fires (classic cron);
* ``@every <duration>``: a fixed interval such as ``@every 5m``, ``@every 1h30m`` or ``@every 30s``;
* times are UTC unless the expression starts with ``CRON_TZ=<IANA zone> `` (for example
  ``CRON_TZ=Asia/Shanghai 0 0 9 * * *`` fires at 09:00 Shanghai time = 01:00 UTC).

``@every`` is anchored to the Unix epoch: the next fire time is the next whole multiple of the
interval since 1970-01-01T00:00:00Z, strictly after the given instant. FC does not document the
phase of an ``@every`` timer; anchoring to the epoch makes local runs reproducible (``@every 5m``
fires at :00, :05, :10 ... like ``0 */5 * * * *``) and is independent of when `serve` started.
A CRON_TZ prefix is accepted with ``@every`` and has no effect on it.

Cron fields are matched against the zone's local wall clock, and each matching wall-clock time
fires once (as classic cron does for fixed-time jobs): when clocks go back, a repeated time fires
at its first occurrence only; when clocks go forward, a skipped time fires right after the jump,
shifted by it (02:30 on a 02:00->03:00 night fires at 03:30). FC does not document its DST
behaviour and may differ from this by one firing on those two nights a year; every other fire
time is exact. croniter serves only as a naive wall-clock calendar here, so its own time-zone
handling (which differs between croniter releases) never matters.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from shared.config.safe_yaml import YamlError, read_yaml_file
from shared.errors import VpcprobeError, excerpt

# croniter < 3 does not export its CroniterError base; these two are what it raises for us.
_CRONITER_ERRORS = (CroniterBadCronError, CroniterBadDateError)

__all__ = ["Schedule", "ScheduleError", "parse_schedule", "probe_schedule_from_syaml"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_WALL_STEPS = 100_000  # > one repeated hour of every-second fires
_MAX_EXPRESSION_CHARS = 1024  # six fields listing every value of each are ~600
_MAX_EVERY = timedelta(days=366)
_TZ_PREFIX = "CRON_TZ="
_EVERY = "@every"
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)
    question_mark: bool = False


_FIELDS = (
    _Field("seconds", 0, 59),
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, question_mark=True),
    _Field("month", 1, 12, names={n: i + 1 for i, n in enumerate(_MONTHS)}),
    _Field("day-of-week", 0, 6, names={n: i for i, n in enumerate(_WEEKDAYS)}, question_mark=True),
)
_PART = re.compile(r"(?P<base>\*|\?|(?P<a>[0-9A-Za-z]+)(?:-(?P<b>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?")


class ScheduleError(VpcprobeError, ValueError):
    """A timer expression (or the s.yaml holding it) that FC would not run as written."""


@dataclass(frozen=True)
class Schedule:
    """One FC timer expression; construct through `parse_schedule` (construction validates)."""

    expression: str
    _zone: tzinfo = field(init=False, repr=False, compare=False)
    _zone_name: str = field(init=False, repr=False, compare=False)
    _cron: str | None = field(init=False, repr=False, compare=False)
    _interval: timedelta | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone_name, zone, cron, interval = _parse(self.expression)
        object.__setattr__(self, "_zone_name", zone_name)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_cron", cron)
        object.__setattr__(self, "_interval", interval)

    @property
    def timezone(self) -> str:
        """IANA name of the zone the fields are read in ("UTC" without CRON_TZ)."""
        return self._zone_name

    @property
    def interval(self) -> timedelta | None:
        """The fixed interval of an ``@every`` schedule; None for cron fields."""
        return self._interval

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), as an aware UTC datetime."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"next_after needs an aware datetime (UTC), got naive {after.isoformat()}")
        if self._interval is not None:
            periods = (after - _EPOCH) // self._interval
            return _EPOCH + (periods + 1) * self._interval
        assert self._cron is not None
        walls = croniter(self._cron, after.astimezone(self._zone).replace(tzinfo=None))
        # A wall time at or before `after` comes back only in a repeated (clocks-back) hour whose
        # first occurrence has passed: skip it. That loop is bounded by the length of that hour.
        for _ in range(_MAX_WALL_STEPS):
            try:
                wall = walls.get_next(datetime)
            except _CRONITER_ERRORS as exc:  # parse-time checks make this unreachable in practice
                raise ScheduleError(f"cron {excerpt(self.expression)}: {exc}") from exc
            fire = wall.replace(tzinfo=self._zone).astimezone(timezone.utc)  # fold=0: first occurrence
            if fire > after:
                return fire
        raise ScheduleError(f"cron {excerpt(self.expression)}: no fire time found after {after.isoformat()}")


def parse_schedule(expression: str) -> Schedule:
    """Validate an FC timer ``cronExpression`` and return its `Schedule`; ScheduleError says why not."""
    if not isinstance(expression, str):
        raise ScheduleError(f"cron expression must be a string, got {type(expression).__name__}")
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ScheduleError(
            f"cron expression is {len(expression)} characters long; an FC timer expression is at most "
            f"{_MAX_EXPRESSION_CHARS}: {excerpt(expression)}"
        )
    return Schedule(expression.strip())


def _parse(expression: str) -> tuple[str, tzinfo, str | None, timedelta | None]:
    """Split off CRON_TZ, then parse ``@every`` or the six cron fields."""
    text = expression.strip()
    if not text:
        raise ScheduleError(
            "cron expression is empty; FC timer cron has six fields, seconds first, "
            "e.g. '0 */5 * * * *', or '@every 5m'"
        )
    zone_name, zone = "UTC", timezone.utc
    if text.startswith("TZ="):
        raise ScheduleError(f"cron {excerpt(expression)}: FC takes the zone as 'CRON_TZ=<zone> ', not 'TZ='")
    if text.startswith(_TZ_PREFIX):
        head, _, rest = text.partition(" ")
        zone_name = head[len(_TZ_PREFIX) :]
        zone = _zone(expression, zone_name)
        text = rest.strip()
        if not text:
            raise ScheduleError(
                f"cron {excerpt(expression)} has a zone but no schedule after it; "
                f"write 'CRON_TZ={zone_name} 0 0 9 * * *'"
            )
    if text.startswith("@"):
        return zone_name, zone, None, _every(expression, text)
    fields = text.split()
    _check_fields(expression, fields)
    # croniter's own six-field order puts seconds last, and older releases reject '?'. Reordering
    # here (rather than croniter's newer second_at_beginning option) and writing '?' as the '*' it
    # means keeps every croniter>=2.0 working.
    cron = " ".join(fields[1:] + fields[:1]).replace("?", "*")
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=timezone.utc)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ScheduleError(f"cron {excerpt(expression)} never fires: no month has that day-of-month") from exc
    except CroniterBadCronError as exc:
        raise ScheduleError(f"cron {excerpt(expression)} is not valid: {exc}") from exc
    return zone_name, zone, cron, None


def _zone(expression: str, name: str) -> tzinfo:
    """Load an IANA zone, or say which name is wrong."""
    if not name:
        raise ScheduleError(f"cron {excerpt(expression)}: CRON_TZ= has no zone; write e.g. 'CRON_TZ=Asia/Shanghai '")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long for a file name
        raise ScheduleError(
            f"cron {excerpt(expression)}: unknown time zone {excerpt(name)} in CRON_TZ; "
            "use an IANA name such as 'Asia/Shanghai' or 'Europe/Berlin'"
        ) from exc


def _every(expression: str, text: str) -> timedelta:
    """Parse ``@every 1h30m`` (whole h/m/s units, in that order) into a positive interval."""
    word, _, duration = text.partition(" ")
    if word != _EVERY:
        raise ScheduleError(
            f"cron {excerpt(expression)}: {excerpt(word)} is not an FC timer form; "
            "use '@every <duration>' (e.g. '@every 1h') or six cron fields, seconds first"
        )
    duration = duration.strip()
    match = _DURATION.fullmatch(duration)
    if not duration or not match:
        raise ScheduleError(
            f"cron {excerpt(expression)}: bad @every duration {excerpt(duration)}; "
            "use whole hours/minutes/seconds such as '5m', '1h30m' or '30s'"
        )
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds  # in whole seconds first: timedelta overflows on huge hours
    if total <= 0:
        raise ScheduleError(f"cron {excerpt(expression)}: the @every interval must be longer than zero")
    if total > _MAX_EVERY.total_seconds():
        raise ScheduleError(f"cron {excerpt(expression)}: the @every interval is longer than a year (8784h)")
    return timedelta(seconds=total)


def _check_fields(expression: str, fields: list[str]) -> None:
    """Check field count and each field's syntax and ranges, with a message a person can act on."""
    if len(fields) == 5:
        raise ScheduleError(
            f"cron {excerpt(expression)} has 5 fields; FC timer cron has six, seconds first: '0 {' '.join(fields)}'"
        )
    if len(fields) != 6:
        raise ScheduleError(
            f"cron {excerpt(expression)} has {len(fields)} fields; FC timer cron has six, "
            "seconds first: 'sec min hour day-of-month month day-of-week', e.g. '0 */5 * * * *'"
        )
    for spec, text in zip(_FIELDS, fields):
        for part in text.split(","):
            _check_part(expression, spec, text, part)


def _check_part(expression: str, spec: _Field, text: str, part: str) -> None:
    """One comma-separated item: ``*``, ``?``, ``a``, ``a-b``, each optionally ``/step``."""
    where = f"cron {excerpt(expression)}: {spec.name} field {excerpt(text)}"
    match = _PART.fullmatch(part)
    if not match:
        raise ScheduleError(
            f"{where} is not valid; use numbers, names, '*', ',', '-' and '/'"
            + (" or '?'" if spec.question_mark else "")
        )
    if match["base"] == "?" and not spec.question_mark:
        raise ScheduleError(f"{where}: '?' is only allowed in day-of-month and day-of-week")
    if match["step"] is not None and int(match["step"]) == 0:
        raise ScheduleError(f"{where}: a step of /0 never advances")
    if match["a"] is None:
        return
    low = _value(where, spec, match["a"])
    if match["b"] is not None and _value(where, spec, match["b"]) < low:
        raise ScheduleError(f"{where}: range {match['a']}-{match['b']} runs backwards")


def _value(where: str, spec: _Field, token: str) -> int:
    """A number or name within the field's range."""
    if token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise ScheduleError(f"{where}: {value} is out of range {spec.low}-{spec.high}")
        return value
    if token.upper() in spec.names:
        return spec.names[token.upper()]
    hint = f" or one of {', '.join(spec.names)}" if spec.names else ""
    raise ScheduleError(f"{where}: {excerpt(token)} is not a number{hint}")


# ---------------------------------------------------------------------------------------------
# s.yaml


def probe_schedule_from_syaml(path: str | Path, resource: str = "vpcprobe-probe") -> tuple[Schedule, str]:
    """The enabled timer trigger of `resource` in an s.yaml: its Schedule and payload ("" if none).

    ``${vars.x}`` and ``${env('X', 'default')}`` references are resolved the way Serverless Devs
    resolves them, so `vpcprobe serve` fires on exactly the schedule `s deploy` would install.
    With several enabled timer triggers the first one wins.
    """
    path = Path(path)
    try:
        doc = read_yaml_file(str(path))  # with the config's limits: size, depth, alias expansion
    except YamlError as exc:
        raise ScheduleError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ScheduleError(f"{path}: expected a mapping with 'resources', got {type(doc).__name__}")
    ctx = _Refs(path, doc.get("vars") or {})
    resources = ctx.get(doc, "resources", "resources")
    if not isinstance(resources, dict) or resource not in resources:
        known = ", ".join(resources) if isinstance(resources, dict) and resources else "none"
        raise ScheduleError(f"{path}: no resource {excerpt(resource)} under 'resources' (found: {known})")
    res = ctx.get(resources, resource, f"resources.{resource}")
    where = f"resources.{resource}.props"
    props = ctx.get(res, "props", where) if isinstance(res, dict) else None
    if not isinstance(props, dict):
        raise ScheduleError(f"{path}: {where} is missing or not a mapping")
    triggers = ctx.get(props, "triggers", f"{where}.triggers") or []
    if not isinstance(triggers, list):
        raise ScheduleError(f"{path}: {where}.triggers must be a list")
    timers, disabled = [], []
    for i in range(len(triggers)):
        here = f"{where}.triggers[{i}]"
        trigger = ctx.get(triggers, i, here)
        if not isinstance(trigger, dict) or ctx.get(trigger, "triggerType", f"{here}.triggerType") != "timer":
            continue
        config = ctx.get(trigger, "triggerConfig", f"{here}.triggerConfig")
        if not isinstance(config, dict):
            raise ScheduleError(f"{path}: {here}.triggerConfig must be a mapping with cronExpression")
        enable = ctx.get(config, "enable", f"{here}.triggerConfig.enable")
        if enable is False or (isinstance(enable, str) and enable.strip().lower() == "false"):
            disabled.append(str(trigger.get("triggerName", i)))
            continue
        timers.append((here, config))
    if not timers:
        detail = f" (disabled: {', '.join(disabled)})" if disabled else ""
        raise ScheduleError(
            f"{path}: {where}.triggers has no enabled timer trigger{detail}; "
            "add one with triggerType: timer and triggerConfig.cronExpression"
        )
    here, config = timers[0]
    cron = ctx.get(config, "cronExpression", f"{here}.triggerConfig.cronExpression")
    if cron is None:
        raise ScheduleError(f"{path}: {here}.triggerConfig.cronExpression is missing")
    payload = ctx.get(config, "payload", f"{here}.triggerConfig.payload")
    if payload is None:
        payload = ""
    if not isinstance(payload, str):
        raise ScheduleError(
            f"{path}: {here}.triggerConfig.payload must be a string (FC passes it verbatim; quote JSON as a string)"
        )
    try:
        return parse_schedule(cron), payload
    except ScheduleError as exc:
        raise ScheduleError(f"{path}: {here}.triggerConfig.cronExpression: {exc}") from exc


_REF = re.compile(r"\$\{([^}]*)\}")
_WHOLE_VAR = re.compile(r"\$\{\s*vars\.([\w.-]+)\s*\}")
_ENV = re.compile(r"env\(\s*(['\"])([^'\"]+)\1\s*(?:,\s*(['\"])([^'\"]*)\3\s*)?\)")
_VAR = re.compile(r"vars\.([\w.-]+)")


@dataclass
class _Refs:
    """Serverless Devs references in the values we read: ``${vars.a.b}`` and ``${env('X', 'd')}``."""

    path: Path
    variables: Any

    def get(self, node: Any, key: Any, where: str) -> Any:
        """node[key] with references resolved (None when absent)."""
        try:
            value = node[key]
        except (KeyError, IndexError, TypeError):
            return None
        return self.resolve(value, where)

    def resolve(self, value: Any, where: str, depth: int = 0) -> Any:
        """Resolve one value; a lone ``${vars.x}`` keeps x's type, others substitute as text."""
        if not isinstance(value, str) or "${" not in value:
            return value
        if depth > 10:
            raise ScheduleError(f"{self.path}: {where}: references nest too deep (a cycle in vars?)")
        whole = _WHOLE_VAR.fullmatch(value.strip())
        if whole:
            return self.resolve(self._var(whole.group(1), where), where, depth + 1)

        def one(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            var = _VAR.fullmatch(expr)
            if var:
                return str(self.resolve(self._var(var.group(1), where), where, depth + 1))
            env = _ENV.fullmatch(expr)
            if env:
                name, default = env.group(2), env.group(4)
                if name in os.environ:
                    return os.environ[name]
                if default is not None:
                    return default
                raise ScheduleError(f"{self.path}: {where}: ${{{expr}}} needs environment variable {name}")
            raise ScheduleError(
                f"{self.path}: {where}: cannot resolve ${{{expr}}} outside Serverless Devs; "
                "only ${vars.x} and ${env('X', 'default')} are supported here"
            )

        return _REF.sub(one, value)

    def _var(self, dotted: str, where: str) -> Any:
        node = self.variables
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ScheduleError(f"{self.path}: {where}: ${{vars.{dotted}}} is not defined under 'vars'")
            node = node[part]
        return node
