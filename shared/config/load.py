"""vpcprobe.yaml: load, validate, and turn into typed targets.

A config error names the file, the field path and the fix, and nothing runs: a half-valid config
would probe the wrong thing and page someone at night for it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from shared.config import urls
from shared.credentials.tokens import CredentialRef, parse_ref
from shared.errors import VpcprobeError

if TYPE_CHECKING:  # shared.credentials.cloud loads when a config is parsed, not when the handler is imported
    from shared.credentials.cloud import CloudSettings

DEFAULT_PATHS = ("vpcprobe.yaml", "/code/vpcprobe.yaml")
# Placeholder host of a target whose endpoint comes from DescribeService (.invalid never resolves).
DEFERRED_HOST = "intranet-endpoint.invalid"
PROBE_MODES = ("models", "chat", "http")
EAS_BODY_LIMIT = 1024 * 1024


class ConfigError(VpcprobeError):
    """One or more config problems, each as `file: path: what is wrong`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ProbeSettings:
    mode: str = "models"
    timeout_s: float = 5.0
    retries: int = 1
    retry_delay_s: float = 0.2
    latency_slo_ms: float | None = None
    model: str | None = None
    stream: bool = False
    method: str = "GET"
    path: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None
    cert_min_days: int = 14


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # dashscope | eas
    endpoint: urls.Endpoint
    api: str  # compatible | native (dashscope); openai (eas)
    api_path: str | None
    credential: CredentialRef | None
    auth: str  # bearer | raw
    probe: ProbeSettings
    workspace: str | None = None
    ca_bundle: str | None = None
    tls_verify: bool = True
    # eas: credential without an endpoint: `endpoint` is a placeholder until the probe reads the
    # service's IntranetEndpoint from DescribeService (the URL rules are applied to that then).
    endpoint_deferred: bool = False

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.endpoint.warnings


@dataclass(frozen=True)
class Config:
    path: str
    region: str | None
    targets: tuple[Target, ...]
    resolve: dict[str, tuple[str, ...]]
    concurrency: int = 100
    raw: dict = field(default_factory=dict, repr=False)
    cloud: CloudSettings = field(default_factory=lambda: _cloud_settings())

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    def select(self, names: list[str] | None) -> list[Target]:
        """Targets by name, in config order; unknown names are an error naming the known ones."""
        if not names:
            return list(self.targets)
        known = {t.name for t in self.targets}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError([f"unknown target(s) {', '.join(unknown)}; configured: {', '.join(sorted(known))}"])
        return [t for t in self.targets if t.name in names]


# --- field readers -------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")


class Reader:
    """Reads one mapping, recording problems with their field path instead of stopping at the first."""

    def __init__(self, data: Any, path: str, problems: list[str], file: str):
        self.path, self.problems, self.file = path, problems, file
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.error(f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data = data
        self.seen: set[str] = set()

    def error(self, message: str, key: str | None = None) -> None:
        where = f"{self.path}.{key}" if key and self.path else (key or self.path or "(top level)")
        self.problems.append(f"{self.file}: {where}: {message}")

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.get(key)
        if value is None:
            if required:
                self.error("is required", key)
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(f"must be a string, got {type(value).__name__}", key)
            return default
        return str(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str | None:
        value = self.str(key, default)
        if value is not None and value not in options:
            self.error(f"must be one of {', '.join(options)} (got '{value}')", key)
            return default
        return value

    def int(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(f"must be a whole number >= {minimum} (got {value!r})", key)
            return default
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(f"must be true or false (got {value!r})", key)
            return default
        return value

    def seconds(self, key: str, default: float | None) -> float | None:
        """A duration: 5, 5s, 500ms, 2m; bare numbers are seconds."""
        value = self.get(key)
        if value is None:
            return default
        m = _DURATION.match(str(value).strip()) if not isinstance(value, bool) else None
        if not m or float(m.group(1)) <= 0:
            self.error(f"must be a positive duration such as 500ms, 5s or 2m (got {value!r})", key)
            return default
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
        return float(m.group(1)) * scale

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                close = difflib.get_close_matches(str(key), sorted(self.seen), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(sorted(self.seen))}"
                self.error(f"unknown field{hint}", str(key))




# --- loading ---------------------------------------------------------------------------------------


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
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}: {where}invalid YAML: {problem}"]) from None
    return parse_config(data, path=path, function_region=function_region)


def parse_config(data: Any, *, path: str = "<config>", function_region: str | None = None) -> Config:
    problems: list[str] = []
    top = Reader(data, "", problems, path)
    region = top.str("region") or function_region or os.environ.get("FC_REGION")
    concurrency = top.int("concurrency", 100, minimum=1)
    resolve = _read_resolve(top, problems, path)
    defaults = Reader(top.get("defaults"), "defaults", problems, path)
    base_probe = _read_probe(defaults, ProbeSettings(), kind=None)
    defaults.finish()

    targets: list[Target] = []
    raw_targets = top.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        top.error("must be a non-empty list of targets (each with name, kind and endpoint)", "targets")
        raw_targets = []
    names: set[str] = set()
    for i, raw in enumerate(raw_targets):
        target = _read_target(Reader(raw, f"targets[{i}]", problems, path), base_probe, region)
        if target is None:
            continue
        if target.name in names:
            problems.append(f"{path}: targets[{i}].name: duplicate target name '{target.name}'")
        names.add(target.name)
        targets.append(target)
    cloud = _read_cloud(Reader(top.get("cloud"), "cloud", problems, path), region)
    # Sections owned by other modules (alerts, state, gateway) are validated by them.
    for key in ("alerts", "state", "gateway", "maintenance"):
        top.get(key)
    top.finish()
    if problems:
        raise ConfigError(problems)
    return Config(path, region, tuple(targets), resolve, concurrency, raw=dict(data), cloud=cloud)


_RE_ENDPOINT = re.compile(r"^(https?://)?[A-Za-z0-9.{}_-]+(:\d+)?$")


def _cloud_settings(**values: Any) -> CloudSettings:
    from shared.credentials.cloud import CloudSettings

    return CloudSettings(**values)


def _read_cloud(r: Reader, region: str | None) -> CloudSettings:
    """The optional `cloud:` section: control-plane endpoints, cache TTL, timeouts (all have defaults)."""
    base = _cloud_settings()
    endpoints = {}
    for key in ("kms_endpoint", "eas_endpoint", "fc_endpoint"):
        value = r.str(key)
        if value is None:
            continue
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"region", "account_id"}
        if not _RE_ENDPOINT.match(value) or unknown:
            r.error(
                f"must be a host name or http(s)://host[:port], optionally with {{region}} / {{account_id}} "
                f"(got '{value}'), e.g. kms-vpc.{{region}}.aliyuncs.com",
                key,
            )
            continue
        endpoints[key] = value
    account_id = r.str("account_id")
    if account_id is not None and not account_id.isdigit():
        r.error(f"must be the numeric Alibaba Cloud account id (got '{account_id}')", "account_id")
        account_id = None
    settings = _cloud_settings(
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
        for v in values:
            ip, port = split_addr(str(v))
            if ip is None:
                problems.append(f"{path}: resolve.{host}: '{v}' is not an IP address or ip:port")
            else:
                addrs.append(str(v))
        if not addrs:
            problems.append(f"{path}: resolve.{host}: give at least one address")
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


def _read_probe(r: Reader, base: ProbeSettings, kind: str | None) -> ProbeSettings:
    expect = r.get("expect_status")
    if expect is None:
        expect_status = base.expect_status
    else:
        items = expect if isinstance(expect, list) else [expect]
        if all(isinstance(x, int) and 100 <= x <= 599 for x in items) and items:
            expect_status = tuple(items)
        else:
            r.error(f"must be an HTTP status or a list of them (got {expect!r})", "expect_status")
            expect_status = base.expect_status
    headers = r.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        r.error("must map header names to string values", "headers")
        headers = {}
    if any(k.lower() == "authorization" for k in headers):
        r.error("must not set Authorization: name the credential with 'credential' instead", "headers")
    expect_body = r.str("expect_body", base.expect_body)
    if expect_body is not None:
        try:
            re.compile(expect_body)
        except re.error as exc:
            r.error(f"is not a valid regular expression: {exc}", "expect_body")
    method = (r.str("method", base.method) or "GET").upper()
    if method not in ("GET", "POST", "HEAD", "PUT", "OPTIONS"):
        r.error(f"must be GET, POST, HEAD, PUT or OPTIONS (got {method})", "method")
    return ProbeSettings(
        mode=r.choice("mode", PROBE_MODES, base.mode) or "models",
        timeout_s=r.seconds("timeout", base.timeout_s) or base.timeout_s,
        retries=r.int("retries", base.retries),
        retry_delay_s=r.seconds("retry_delay", base.retry_delay_s) or base.retry_delay_s,
        latency_slo_ms=_ms(r.seconds("latency_slo", None)) or base.latency_slo_ms,
        model=r.str("model", base.model),
        stream=r.bool("stream", base.stream),
        method=method,
        path=r.str("path", base.path),
        body=r.get("body", base.body),
        headers={**base.headers, **headers},
        expect_status=expect_status,
        expect_body=expect_body,
        cert_min_days=r.int("cert_min_days", base.cert_min_days),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _read_target(r: Reader, base_probe: ProbeSettings, function_region: str | None) -> Target | None:
    name = r.str("name", required=True)
    if name is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", name):
        r.error("must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit", "name")
    if name is not None:
        r.path = f"targets[{name}]"
    kind = r.choice("kind", ("dashscope", "eas"), None)
    if kind is None and "kind" not in r.data:
        r.error("is required: dashscope or eas", "kind")
    credential = None
    if (ref := r.get("credential")) is not None:
        try:
            credential = parse_ref(ref)
        except ValueError as exc:
            r.error(str(exc), "credential")
    probe_reader = Reader(r.get("probe"), f"{r.path}.probe", r.problems, r.file)
    probe = _read_probe(probe_reader, base_probe, kind)
    probe_reader.finish()
    ca_bundle = r.str("ca_bundle")
    tls_verify = r.bool("tls_verify", True)
    workspace = r.str("workspace")
    url = r.str("endpoint")
    endpoint = api_path = None
    deferred = False
    api = "openai"
    auth = "bearer"
    try:
        if kind == "dashscope":
            for key in ("service", "api_path", "uid", "gateway", "instance", "network"):
                if key in r.data:
                    r.error("belongs to eas targets, not dashscope", key)
                    r.seen.add(key)
            endpoint, implied = urls.dashscope_endpoint(
                url, region=r.str("region"), endpoint_id=r.str("endpoint_id"), domain=r.str("domain")
            )
            api = r.choice("api", ("compatible", "native"), implied or "compatible") or "compatible"
            if implied and api != implied:
                r.error(f"endpoint path implies api '{implied}' but api says '{api}'", "api")
            if probe.mode == "chat" and not probe.model:
                probe = _replace(probe, model="qwen-flash")
        elif kind == "eas" and _deferred(url, credential, r):
            # The endpoint comes from DescribeService's IntranetEndpoint at probe time.
            assert credential is not None
            endpoint, deferred = _deferred_endpoint(r, credential), True
            api_path = r.str("api_path")
        elif kind == "eas":
            endpoint, found_api_path = urls.eas_endpoint(
                url,
                service=r.str("service"),
                region=r.str("region"),
                uid=r.str("uid"),
                network=r.choice("network", ("vpc", "public"), "vpc") or "vpc",
                gateway=r.str("gateway"),
                instance=r.str("instance"),
                function_region=function_region,
            )
            api_path = r.str("api_path") or found_api_path
        if kind == "eas":
            if api_path and not api_path.startswith("/"):
                api_path = "/" + api_path
            auth = r.choice("auth", ("raw", "bearer"), "raw") or "raw"
            if probe.mode == "chat" and not probe.model:
                r.error(
                    "chat probes of an EAS service need 'model' (the served model name, see GET /v1/models)",
                    "probe.model",
                )
            body = probe.body
            if body is not None and len(body if isinstance(body, str) else yaml.safe_dump(body)) > EAS_BODY_LIMIT:
                r.error("probe body is over 1 MB: the EAS gateway rejects request bodies over 1 MB (413)", "probe.body")
    except urls.UrlError as exc:
        r.error(str(exc), "endpoint")
    if probe.mode == "http" and not probe.path:
        r.error("http probes need 'path' (appended to the endpoint)", "probe.path")
    if ca_bundle and not Path(ca_bundle).is_file():
        r.error(f"file '{ca_bundle}' does not exist", "ca_bundle")
    for key in ("region", "endpoint_id", "domain", "api", "auth", "enabled", "alerts"):  # alerts: shared.alerts.config
        r.get(key)
    r.finish()
    if endpoint is None or name is None or kind is None or r.get("enabled", True) is False:
        return None
    return Target(
        name, kind, endpoint, api, api_path, credential, auth, probe, workspace, ca_bundle, tls_verify, deferred
    )


def _deferred(url: str | None, credential: CredentialRef | None, r: Reader) -> bool:
    """An eas: credential and nothing that locates the service: DescribeService will say where it is."""
    located = url is not None or any(k in r.data for k in ("uid", "instance", "gateway"))
    return not located and credential is not None and credential.scheme == "eas"


def _deferred_endpoint(r: Reader, credential: CredentialRef) -> urls.Endpoint:
    region = r.str("region")
    if region and region != credential.region:
        r.error(f"is '{region}' but the credential {credential} names region {credential.region}", "region")
    service = r.str("service") or credential.name
    r.get("network")
    return urls.Endpoint(
        "eas", "eas-describe-service", "http", DEFERRED_HOST, 80, f"/api/predict/{service}", credential.region, service
    )


def _replace(probe: ProbeSettings, **changes: Any) -> ProbeSettings:
    from dataclasses import replace

    return replace(probe, **changes)
