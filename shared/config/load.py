"""vpcprobe.yaml: find it, load it, validate every section into one typed Config.

A config error names the file, the field path and the fix, and nothing runs: a half-valid config
would probe the wrong thing and page someone at night for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config import urls
from shared.config.reader import ConfigError, Reader
from shared.config.safe_yaml import YamlError, read_yaml_file
from shared.config.targets import ProbeSettings, Target, read_probe, read_target
from shared.credentials.settings import CloudSettings
from shared.errors import clip, excerpt

if TYPE_CHECKING:  # loaded when a config has alerting / gateway sections, not when the handler is imported
    from shared.alerts.config import AlertConfig
    from shared.export.settings import CloudMonitorSettings
    from shared.gateway.settings import GatewaySettings

DEFAULT_PATHS = ("vpcprobe.yaml", "/code/vpcprobe.yaml")


# Targets probed at once. Measured with scripts/bench_scheduling.py, 1000 targets x 2 addresses: 1000
# finishes the round in ~5x one target's time against ~13x for 100, at ~120 MiB peak RSS (README "Scheduling").
DEFAULT_CONCURRENCY = 1000


@dataclass(frozen=True)
class Config:
    """A validated vpcprobe.yaml: what to probe, how to reach the control plane, whom to tell."""

    path: str
    region: str | None
    targets: tuple[Target, ...]
    resolve: dict[str, tuple[str, ...]]
    concurrency: int = DEFAULT_CONCURRENCY
    cloud: CloudSettings = field(default_factory=CloudSettings)
    alerts: AlertConfig | None = None  # None: no alerts: section, nothing to send
    gateway: GatewaySettings | None = None  # None: no gateway: section
    cloudmonitor: CloudMonitorSettings | None = None  # None: no metrics.cloudmonitor, or it is disabled

    def select(self, names: list[str] | None) -> list[Target]:
        """Targets by name, in config order; unknown names are an error naming the known ones."""
        if not names:
            return list(self.targets)
        known = {t.name for t in self.targets}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError([f"unknown target(s) {_some(unknown)}; configured: {_some(sorted(known))}"])
        return [t for t in self.targets if t.name in names]


def _some(names: list[str], shown: int = 10) -> str:
    """Names for a message, the first `shown` of them: an invoke event may name thousands."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(excerpt(n, 63) if len(n) > 63 else n for n in names[:shown]) + more


def find_config(path: str | None = None) -> str:
    """The config path: explicit, else $VPCPROBE_CONFIG, else ./vpcprobe.yaml, else FC's /code."""
    if path:
        return path
    if os.environ.get("VPCPROBE_CONFIG"):
        return os.environ["VPCPROBE_CONFIG"]
    for candidate in DEFAULT_PATHS:
        if Path(candidate).exists():
            return candidate
    raise ConfigError(
        [
            "no config file: pass -c FILE, set VPCPROBE_CONFIG, or create vpcprobe.yaml "
            "(cp vpcprobe.example.yaml vpcprobe.yaml)"
        ]
    )


def load_config(path: str | None = None, *, function_region: str | None = None) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem found."""
    path = find_config(path)
    try:
        data = read_yaml_file(path)  # with limits: size, depth, alias expansion (config/safe_yaml.py)
    except YamlError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    return parse_config(data, path=path, function_region=function_region)


def parse_config(data: Any, *, path: str = "<config>", function_region: str | None = None) -> Config:
    """Validate a parsed document, every section in one pass: one ConfigError lists all its problems."""
    problems: list[str] = []
    top = Reader(data, "", problems, path)
    region = top.str("region") or function_region or os.environ.get("FC_REGION")
    concurrency = top.int("concurrency", DEFAULT_CONCURRENCY, minimum=1)
    resolve = _read_resolve(top, problems, path)
    defaults = Reader(top.get("defaults"), "defaults", problems, path)
    base_probe = read_probe(defaults, ProbeSettings())
    defaults.finish()

    targets: list[Target] = []
    raw_targets = top.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        top.error("must be a non-empty list of targets (each with name, kind and endpoint)", "targets")
        raw_targets = []
    names: set[str] = set()
    for i, raw in enumerate(raw_targets):
        target = read_target(Reader(raw, f"targets[{i}]", problems, path), base_probe, region)
        if target is None:
            continue
        if target.name in names:
            problems.append(f"{path}: targets[{i}].name: duplicate target name '{target.name}'")
        names.add(target.name)
        targets.append(target)
    cloud = _read_cloud(Reader(top.get("cloud"), "cloud", problems, path), region)
    for key in ("alerts", "state", "gateway", "maintenance", "metrics"):  # read below
        top.get(key)
    top.finish()
    alerts = _read_alerting(top.data, raw_targets, problems, path)
    gateway = _read_gateway(top.data, targets, raw_targets, problems, path)
    cloudmonitor = _read_metrics(top.data, region, cloud, problems, path)
    if problems:
        raise ConfigError(problems)
    return Config(path, region, tuple(targets), resolve, concurrency, cloud=cloud, alerts=alerts, gateway=gateway,
                  cloudmonitor=cloudmonitor)


def _read_alerting(data: dict[str, Any], targets: list[Any], problems: list[str], path: str) -> AlertConfig | None:
    """The alerts:, state: and maintenance: sections and the targets' alerts: blocks, when there are any.

    shared.alerts.config (and its channels) is imported only then: a probe-only config keeps the FC
    handler's cold start free of it."""
    if not any(key in data for key in ("alerts", "state", "maintenance")) and not any(
        isinstance(t, dict) and "alerts" in t for t in targets
    ):
        return None
    from shared.alerts.config import read_alert_config

    return read_alert_config(data, targets, problems, path)


def _read_gateway(
    data: dict[str, Any], targets: list[Target], raw_targets: list[Any], problems: list[str], path: str
) -> GatewaySettings | None:
    """The gateway: section, when there is one; shared.gateway.settings is imported only then."""
    if "gateway" not in data:
        return None
    from shared.gateway.settings import read_gateway

    return read_gateway(data, targets, raw_targets, problems, path)


def _read_metrics(
    data: dict[str, Any], region: str | None, cloud: CloudSettings, problems: list[str], path: str
) -> CloudMonitorSettings | None:
    """The metrics: section (the CloudMonitor export), when there is one; shared.export is imported only then."""
    if "metrics" not in data:
        return None
    from shared.export.settings import read_metrics

    return read_metrics(data, region, cloud, problems, path)


_RE_ENDPOINT = re.compile(r"^(https?://)?[A-Za-z0-9.{}_-]+(:\d+)?\Z")


def _read_cloud(r: Reader, region: str | None) -> CloudSettings:
    """The optional `cloud:` section: control-plane endpoints, cache TTL, timeouts (all have defaults)."""
    base = CloudSettings()
    endpoints = {}
    for key in ("kms_endpoint", "eas_endpoint", "fc_endpoint"):
        value = r.str(key)
        if value is None:
            continue
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"region", "account_id"}
        if not _RE_ENDPOINT.match(value) or unknown:
            r.error(
                f"must be a host name or http(s)://host[:port], optionally with {{region}} / {{account_id}} "
                f"(got {excerpt(value)}), e.g. kms-vpc.{{region}}.aliyuncs.com",
                key,
            )
            continue
        endpoints[key] = value
    account_id = r.str("account_id")
    if account_id is not None and not account_id.isdigit():
        r.error(f"must be the numeric Alibaba Cloud account id (got {excerpt(account_id)})", "account_id")
        account_id = None
    settings = CloudSettings(
        region=region,
        network=r.choice("network", ("vpc", "public"), None),
        account_id=account_id,
        cache_ttl_s=r.seconds("cache_ttl", base.cache_ttl_s) or base.cache_ttl_s,
        timeout_s=r.seconds("timeout", base.timeout_s) or base.timeout_s,
        retries=r.int("retries", base.retries),
        retry_delay_s=r.seconds("retry_delay", base.retry_delay_s) or base.retry_delay_s,
        **endpoints,
    )
    r.finish()
    return settings


def _read_resolve(top: Reader, problems: list[str], path: str) -> dict[str, tuple[str, ...]]:
    raw = top.get("resolve") or {}
    out: dict[str, tuple[str, ...]] = {}
    if not isinstance(raw, dict):
        top.error("must map host names to an address or a list of addresses (ip or ip:port)", "resolve")
        return out
    for host, value in raw.items():
        values = value if isinstance(value, list) else [value]
        addrs = []
        where = f"resolve.{clip(str(host), 60)}"
        for v in values:
            ip, port = split_addr(v) if isinstance(v, str) else (None, None)
            if ip is None:
                problems.append(f"{path}: {where}: {excerpt(v)} is not an IP address or ip:port")
            else:
                addrs.append(v)
        if not addrs:
            problems.append(f"{path}: {where}: give at least one address")
        out[str(host).lower()] = tuple(addrs)
    return out


def split_addr(value: str) -> tuple[str | None, int | None]:
    """'10.0.0.1' -> ('10.0.0.1', None); '10.0.0.1:8080' -> (..., 8080); '[::1]:80' works too."""
    value = value.strip()
    if urls.is_ip(value):
        return value, None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if sep and port.isdigit() and urls.is_ip(host) and 0 < int(port) < 65536:
        return host, int(port)
    return None, None
