"""`vpcprobe doctor URL`: one endpoint, step by step, in the order the seed FAQ troubleshoots.

URL rules -> DNS (private?) -> TCP per address -> TLS -> HTTP -> auth -> path, each with the
remedy the docs give. It reuses the probe engine, then explains what the engine saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from urllib.parse import urlsplit

from shared.config import urls
from shared.config.load import Config
from shared.config.targets import ProbeSettings, Target
from shared.credentials.refs import CredentialRef
from shared.errors import clip, excerpt
from shared.probe.engine import Prober
from shared.probe.request import build_request
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status

OK, FAIL, WARN = "ok  ", "FAIL", "warn"
_PREDICT = re.compile(r"^/api/predict/([^/]+)")


def doctor_target(url: str, token_env: str | None = None) -> tuple[Target, list[tuple[str, str, str]]]:
    """A throwaway target for the URL; a URL-rule failure is reported, then probed as given anyway.
    Raises MalformedUrlError for a string no request can be sent to: bad input, not a finding."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise urls.MalformedUrlError(f"{excerpt(url, 200)} is not a valid URL: {clip(str(exc))}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise urls.MalformedUrlError(
            f"{excerpt(url, 200)} is not an http(s) URL; give the endpoint as you would call it, e.g. "
            "http://ep-xxx.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
        )
    steps: list[tuple[str, str, str]] = []
    host = parts.hostname
    kind = "eas" if "pai-eas" in host or "/api/predict/" in url else "dashscope"
    api_path = None
    try:
        if kind == "eas":
            ep, api_path = urls.eas_endpoint(url)
        else:
            ep, _mode = urls.dashscope_endpoint(url)
        steps.append((OK, "URL rules", f"{ep.form} endpoint, {ep.scheme} on port {ep.port}"))
        for w in ep.warnings:
            steps.append((WARN, "URL rules", w))
    except urls.MalformedUrlError:
        raise
    except urls.UrlError as exc:
        steps.append((FAIL, "URL rules", str(exc)))
        scheme = parts.scheme
        form = "privatelink-default" if ".privatelink." in host else "custom"
        ep = urls.Endpoint(kind, form, scheme, host, parts.port or (443 if scheme == "https" else 80), "")
        api_path = parts.path.rstrip("/") or None
    if kind == "eas" and ep.service is None and (named := _PREDICT.match(api_path or "")):
        ep = dataclasses.replace(ep, service=named.group(1))  # an instance ip:port: the service is in the path
    if api_path:
        urls.check_request_path(api_path, url)
    cred = CredentialRef("env", token_env) if token_env else None
    mode = "http" if api_path else "models"
    probe = ProbeSettings(mode=mode, path=api_path, retries=0, timeout_s=5.0)
    auth = "raw" if kind == "eas" else "bearer"
    target = Target("doctor", kind, ep, "compatible", None, cred, auth, probe)
    build_request(target, None)  # the URL the probe would send: a doubled path segment is refused here
    return target, steps


def _render(result: ProbeResult, steps: list[tuple[str, str, str]]) -> str:
    lines = [f"vpcprobe doctor {result.url}", ""]
    lines += [f"[{mark}] {name}: {text}" for mark, name, text in steps]
    code = result.diagnosis.code if result.diagnosis else None
    dns_ms = result.phases_ms.get("dns")
    if code == Code.DNS_UNRESOLVED:
        lines.append(f"[{FAIL}] DNS: {result.diagnosis.message}")
    else:
        for a in result.addresses:
            where = "private" if a.private else "PUBLIC"
            lines.append(f"[{OK if a.private else WARN}] DNS: {a.ip} ({where}) in {dns_ms:.0f} ms")
    for a in result.addresses:
        acode = a.error_code
        connect = a.phases_ms.get("connect")
        if connect is not None:
            lines.append(f"[{OK}] TCP {a.ip}:{a.port}: connected in {connect:.0f} ms")
        else:
            lines.append(f"[{FAIL}] TCP {a.ip}:{a.port}: {a.error_message or 'not reached'}")
            continue
        tls = a.phases_ms.get("tls")
        if tls is not None:
            days = f", certificate valid {a.tls_days_left} more days" if a.tls_days_left is not None else ""
            lines.append(f"[{OK}] TLS: handshake in {tls:.0f} ms{days}")
        elif acode in (Code.TLS_FAILED, Code.TLS_ON_HTTP_ONLY):
            lines.append(f"[{FAIL}] TLS: {a.error_message}")
            continue
        if a.http_status is None:
            lines.append(f"[{FAIL}] HTTP: {a.error_message or 'no response'}")
            continue
        lines.append(f"[{OK}] HTTP: status {a.http_status}, first byte after {a.phases_ms.get('ttfb') or 0:.0f} ms")
        auth_bad = acode in (Code.UNAUTHORIZED, Code.FORBIDDEN)
        lines.append(f"[{FAIL if auth_bad else OK}] auth: {a.error_message if auth_bad else 'accepted'}")
        path_bad = acode in (Code.PATH_NOT_FOUND, Code.EAS_SERVICE_NOT_FOUND)
        lines.append(f"[{FAIL if path_bad else OK}] path: {a.error_message if path_bad else 'found'}")
    lines.append("")
    if result.diagnosis:
        lines.append(f"verdict: {result.status.upper()} — {result.diagnosis.code}: {result.diagnosis.message}")
        lines.append(f"remedy: {result.diagnosis.remedy}")
    else:
        lines.append(f"verdict: {result.status.upper()}")
    return "\n".join(lines)


def run_doctor(url: str, token_env: str | None = None) -> tuple[int, str]:
    """Diagnose one URL; returns (exit code, report). A string no request can be sent to (not an http(s)
    URL, a bad host name or port, a doubled path segment) is exit 2."""
    try:
        target, steps = doctor_target(url, token_env)
    except urls.MalformedUrlError as exc:
        return 2, f"vpcprobe doctor: {exc}"
    config = Config("<doctor>", None, (target,), {})
    result = asyncio.run(Prober(config).probe_target(target))
    if token_env is None and result.diagnosis and result.diagnosis.code == Code.UNAUTHORIZED:
        result.diagnosis = diagnose(Code.UNAUTHORIZED, "no token sent: pass --token-env NAME")
    failed = any(mark == FAIL for mark, _, _ in steps) or result.status != Status.UP
    return (1 if failed else 0), _render(result, steps)
