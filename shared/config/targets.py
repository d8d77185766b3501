"""A target and its probe settings, read from one `targets:` item (or `defaults:`).

The endpoint forms and their rules are config/urls.py's; this reads the fields around them and
settles what a target's request is: api, auth, probe mode, and an EAS endpoint deferred to
DescribeService when only an eas: credential says where the service is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.config import urls
from shared.config.reader import Reader
from shared.credentials.refs import CredentialRef, parse_ref
from shared.errors import clip, excerpt

# Placeholder host of a target whose endpoint comes from DescribeService (.invalid never resolves).
DEFERRED_HOST = "intranet-endpoint.invalid"
PROBE_MODES = ("models", "chat", "http")
EAS_BODY_LIMIT = 1024 * 1024
MAX_RETRIES = 10  # a refused connection fails at once: a billion retries would hold the round for days
_RE_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}\Z")  # RFC 9110 token
# No CR, LF or other controls; Latin-1 only, as HTTP/1.1 carries nothing else.
_RE_HEADER_VALUE = re.compile(r"^[^\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]{0,8192}\Z")
_RE_WORKSPACE = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")  # sent as the X-DashScope-WorkSpace header


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

    @property
    def request_path(self) -> str:
        """The API path the probe appends to the endpoint for this target's mode and API."""
        mode = self.probe.mode
        if mode == "http":
            return self.probe.path or "/"
        if self.kind == "dashscope":
            if mode == "models":
                return urls.DASHSCOPE_API_PREFIX["compatible"] + "/models"
            if self.api == "native":
                return urls.DASHSCOPE_API_PREFIX["native"] + "/services/aigc/text-generation/generation"
            return urls.DASHSCOPE_API_PREFIX["compatible"] + "/chat/completions"
        if mode == "models":
            return "/v1/models"
        return self.api_path or "/v1/chat/completions"

    def with_intranet_endpoint(self, url: str, function_region: str | None) -> Target:
        """This deferred EAS target at the URL DescribeService gave (IntranetEndpoint), under the same URL
        rules as a configured endpoint; raises UrlError when the URL breaks them."""
        service = None if "/api/predict/" in url else self.endpoint.service
        endpoint, api_path = urls.eas_endpoint(url, service=service, function_region=function_region)
        return replace(self, endpoint=endpoint, api_path=self.api_path or api_path, endpoint_deferred=False)


def read_probe(r: Reader, base: ProbeSettings) -> ProbeSettings:
    """A `probe:` block (or `defaults:`); unset fields keep `base`."""
    expect = r.get("expect_status")
    if expect is None:
        expect_status = base.expect_status
    else:
        items = expect if isinstance(expect, list) else [expect]
        if all(isinstance(x, int) and 100 <= x <= 599 for x in items) and items:
            expect_status = tuple(items)
        else:
            r.error(f"must be an HTTP status or a list of them (got {excerpt(expect)})", "expect_status")
            expect_status = base.expect_status
    headers = _read_headers(r)
    expect_body = r.str("expect_body", base.expect_body)
    if expect_body is not None:
        try:
            re.compile(expect_body)
        except (re.error, RecursionError, OverflowError) as exc:  # a pattern nested too deep, a huge repeat count
            r.error(f"is not a valid regular expression: {clip(str(exc))}", "expect_body")
    method = (r.str("method", base.method) or "GET").upper()
    if method not in ("GET", "POST", "HEAD", "PUT", "OPTIONS"):
        r.error(f"must be GET, POST, HEAD, PUT or OPTIONS (got {excerpt(method)})", "method")
    path = r.str("path", base.path)
    if path is not None and not urls.RE_REQUEST_PATH.match(path):
        r.error(f"must start with / and hold no spaces or control characters (got {excerpt(path)})", "path")
        path = base.path
    body = r.get("body", base.body)
    if isinstance(body, str) and not _utf8(body):
        r.error("holds a lone surrogate (a \\ud800-style escape) that UTF-8 cannot carry", "body")
        body = base.body
    elif body is not None and not isinstance(body, str) and (why := _json_error(body)):
        r.error(f"must be text or JSON (mappings, lists, strings, numbers): {why}", "body")
        body = base.body
    return ProbeSettings(
        mode=r.choice("mode", PROBE_MODES, base.mode) or "models",
        timeout_s=r.seconds("timeout", base.timeout_s) or base.timeout_s,
        retries=r.int("retries", base.retries, maximum=MAX_RETRIES),
        retry_delay_s=r.seconds("retry_delay", base.retry_delay_s) or base.retry_delay_s,
        latency_slo_ms=_ms(r.seconds("latency_slo", None)) or base.latency_slo_ms,
        model=r.str("model", base.model),
        stream=r.bool("stream", base.stream),
        method=method,
        path=path,
        body=body,
        headers={**base.headers, **headers},
        expect_status=expect_status,
        expect_body=expect_body,
        cert_min_days=r.int("cert_min_days", base.cert_min_days),
    )


def _read_headers(r: Reader) -> dict[str, str]:
    """`headers:`: names are HTTP tokens, values one line each (a newline would inject a header)."""
    headers = r.get("headers") or {}
    if not isinstance(headers, dict):
        r.error(f"must map header names to string values (got {type(headers).__name__})", "headers")
        return {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _RE_HEADER_NAME.match(name):
            r.error(f"{excerpt(name)} is not a header name (letters, digits and -_.!#$%&'*+^`|~)", "headers")
            return {}
        if not isinstance(value, str) or not _RE_HEADER_VALUE.match(value):
            r.error(
                f"{name}: must be a one-line string of Latin-1 characters, at most 8 KiB (got {excerpt(value)})",
                "headers",
            )
            return {}
        if name.lower() == "authorization":
            r.error("must not set Authorization: name the credential with 'credential' instead", "headers")
    return headers


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _json_error(body: Any) -> str | None:
    """Why a probe body cannot be sent as JSON (a YAML date, a set, binary), or None when it can."""
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return clip(str(exc))
    return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def read_target(r: Reader, base_probe: ProbeSettings, function_region: str | None) -> Target | None:
    """One `targets:` item; None when it is disabled or too broken to probe (its problems are recorded)."""
    name = r.str("name", required=True)
    if name is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z", name):
        r.error("must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit", "name")
        name = None
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
            r.error(clip(str(exc)), "credential")
    probe_reader = Reader(r.get("probe"), f"{r.path}.probe", r.problems, r.file)
    probe = read_probe(probe_reader, base_probe)
    probe_reader.finish()
    ca_bundle = r.str("ca_bundle")
    tls_verify = r.bool("tls_verify", True)
    workspace = r.str("workspace")
    if workspace is not None and not _RE_WORKSPACE.match(workspace):
        r.error(f"must be a workspace id: letters, digits, '_', '-' and '.' (got {excerpt(workspace)})", "workspace")
        workspace = None
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
                probe = replace(probe, model="qwen-flash")
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
            if api_path and not urls.RE_REQUEST_PATH.match(api_path):
                r.error(f"must be a URL path, no spaces or control characters (got {excerpt(api_path)})", "api_path")
                api_path = None
            auth = r.choice("auth", ("raw", "bearer"), "raw") or "raw"
            if probe.mode == "chat" and not probe.model:
                r.error(
                    "chat probes of an EAS service need 'model' (the served model name, see GET /v1/models)",
                    "probe.model",
                )
            body = probe.body
            if body is not None and len(body if isinstance(body, str) else json.dumps(body)) > EAS_BODY_LIMIT:
                r.error("probe body is over 1 MB: the EAS gateway rejects request bodies over 1 MB (413)", "probe.body")
    except urls.UrlError as exc:
        r.error(str(exc), "endpoint")
    if probe.mode == "http" and not probe.path:
        r.error("http probes need 'path' (appended to the endpoint)", "probe.path")
    if ca_bundle and not _is_file(ca_bundle):
        r.error(f"file {excerpt(ca_bundle)} does not exist", "ca_bundle")
    elif ca_bundle and (why := _ca_bundle_problem(ca_bundle)):
        r.error(f"file {excerpt(ca_bundle)} is not a PEM CA bundle: {why}", "ca_bundle")
    for key in ("region", "endpoint_id", "domain", "api", "auth", "enabled", "alerts"):  # alerts: with alerts:
        r.get(key)
    r.finish()
    if endpoint is None or name is None or kind is None or r.get("enabled", True) is False:
        return None
    target = Target(
        name, kind, endpoint, api, api_path, credential, auth, probe, workspace, ca_bundle, tls_verify, deferred
    )
    return _check_request_url(r, target)


def _check_request_url(r: Reader, target: Target) -> Target | None:
    """The URL the probe will request, settled now: a doubled `/v1/v1` is a config error, not a probe that
    crashes every round; an API path the mode does not use is a warning."""
    try:
        urls.join_url(target.endpoint.base_url, target.request_path)
        if target.api_path:  # also when this mode does not use it: a later switch to chat would crash
            urls.join_url(target.endpoint.base_url, target.api_path)
    except urls.UrlError as exc:
        key = "probe.path" if target.probe.mode == "http" else "api_path" if "api_path" in r.data else "endpoint"
        r.error(str(exc), key)
        return None
    if target.api_path and target.probe.mode != "chat":
        unused = (
            f"the API path {excerpt(target.api_path)} (api_path, or the endpoint URL after the service) is used "
            f"by chat probes only; this {target.probe.mode} probe requests {target.request_path}"
        )
        return replace(target, endpoint=replace(target.endpoint, warnings=(*target.endpoint.warnings, unused)))
    return target


def _is_file(path: str) -> bool:
    """Path.is_file, also False for a name too long for the file system (which is_file raises for)."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _ca_bundle_problem(path: str) -> str | None:
    """Why the file cannot be loaded as CA certificates (every probe of the target crashed on it), or None."""
    import ssl  # only for a config that names a bundle

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return clip(str(exc), 120)
    return None


def _deferred(url: str | None, credential: CredentialRef | None, r: Reader) -> bool:
    """An eas: credential and nothing that locates the service: DescribeService will say where it is."""
    located = url is not None or any(k in r.data for k in ("uid", "instance", "gateway"))
    return not located and credential is not None and credential.scheme == "eas"


def _deferred_endpoint(r: Reader, credential: CredentialRef) -> urls.Endpoint:
    region = r.str("region")
    if region and region != credential.region:
        r.error(f"is {excerpt(region)} but the credential {credential} names region {credential.region}", "region")
    service = r.str("service") or credential.name
    r.get("network")
    return urls.Endpoint(
        "eas", "eas-describe-service", "http", DEFERRED_HOST, 80, f"/api/predict/{service}", credential.region, service
    )
