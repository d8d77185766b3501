"""One request to one address: per-phase timings from httpcore's trace, and what failed, as a Code.

The request goes to the address itself with the Host header and TLS SNI set to the real name, so
each zone's ENI is reached and timed on its own.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared import logs
from shared.config.targets import Target
from shared.probe.dns import Address
from shared.probe.request import RequestSpec
from shared.probe.sse import read_stream
from shared.probe.tls import cert_days_left
from shared.verdict.codes import Code
from shared.verdict.diagnose import for_status

MAX_BODY = 64 * 1024


@dataclass
class Attempt:
    """What one request to one address observed."""

    phases: dict[str, float | None] = field(default_factory=dict)
    http_status: int | None = None
    code: Code | None = None
    detail: str = ""
    tls_days_left: int | None = None


async def try_address(client: httpx.AsyncClient, target: Target, spec: RequestSpec, addr: Address) -> Attempt:
    """Send `spec` to one address, within the probe timeout; failures are recorded, never raised."""
    ep, settings = target.endpoint, target.probe
    marks: dict[str, float] = {}
    out = Attempt()

    async def trace(name: str, info: dict) -> None:
        marks[name] = time.perf_counter()
        if name == "connection.start_tls.complete":
            out.tls_days_left = cert_days_left(info.get("return_value"))

    ip_host = f"[{addr.ip}]" if ":" in addr.ip else addr.ip
    url = httpx.URL(spec.url).copy_with(host=ip_host.strip("[]"), port=addr.port)
    default_port = 443 if ep.scheme == "https" else 80
    headers = dict(spec.headers)
    headers["Host"] = ep.host if ep.port == default_port else f"{ep.host}:{ep.port}"
    extensions: dict[str, Any] = {"trace": trace}
    if ep.scheme == "https":
        extensions["sni_hostname"] = ep.host
    timeout = httpx.Timeout(settings.timeout_s)
    request = client.build_request(
        spec.method, url, headers=headers, content=spec.body, extensions=extensions, timeout=timeout
    )
    start = time.perf_counter()
    try:
        await asyncio.wait_for(_exchange(client, request, spec, target, out, marks), timeout=settings.timeout_s)
    except asyncio.TimeoutError:
        out.code, what = _timeout_phase(marks, spec.stream)
        out.detail = f"{addr.ip}:{addr.port}: no {what} within {settings.timeout_s:g}s"
    except httpx.HTTPError as exc:
        out.code, out.detail = _classify_error(exc, marks, ep.form)
        out.detail = f"{addr.ip}:{addr.port}: {out.detail}"
    end = time.perf_counter()
    out.phases.update(_phases(marks, start, end))
    return out


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    spec: RequestSpec,
    target: Target,
    out: Attempt,
    marks: dict[str, float],
) -> None:
    response = await client.send(request, stream=True)
    try:
        out.http_status = response.status_code
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if is_sse and response.status_code == 200:
            frame_error = await read_stream(response)
            body = b""
            if frame_error:
                out.code, out.detail = Code.STREAM_ERROR_FRAME, frame_error
                return
        else:
            body = await _read_limited(response)
    finally:
        marks["body.done"] = time.perf_counter()
        await response.aclose()
    if response.status_code not in spec.expect_status:
        code = for_status(response.status_code, kind=target.kind, body=body)
        out.code = code or Code.UNEXPECTED_STATUS
        out.detail = f"HTTP {response.status_code}" + _upstream_message(body)
        return
    if spec.expect_body and not re.search(spec.expect_body, body.decode("utf-8", "replace")):
        out.code, out.detail = Code.BODY_MISMATCH, f"/{spec.expect_body}/ not found in the response"


async def _read_limited(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


def _upstream_message(body: bytes) -> str:
    """The upstream's own error code/message, shortened; it helps, and it never holds our secret."""
    text = body[:2048].decode("utf-8", "replace").strip()
    if not text:
        return " (empty body)"
    try:
        data = json.loads(text)
    except ValueError:
        return f": {logs.redact_text(text[:200])}"
    if isinstance(data, dict):
        err = data.get("error") if isinstance(data.get("error"), dict) else data
        code, message = err.get("code"), err.get("message") or err.get("detail")
        if code or message:
            return ": " + logs.redact_text(" ".join(str(x) for x in (code, message) if x)[:200])
    return f": {logs.redact_text(text[:200])}"


def _timeout_phase(marks: dict[str, float], stream: bool) -> tuple[Code, str]:
    """Which phase the attempt's overall deadline cut short, from the trace marks."""
    if "connection.connect_tcp.complete" not in marks:
        return Code.CONNECT_TIMEOUT, "TCP connection"
    if "connection.start_tls.started" in marks and "connection.start_tls.complete" not in marks:
        return Code.TLS_FAILED, "TLS handshake"
    if "http11.receive_response_headers.complete" in marks and stream:
        return Code.STREAM_STALLED, "stream frame"
    return Code.READ_TIMEOUT, "response"


def _os_errnos(exc: BaseException) -> set[int]:
    """Every errno in the cause chain (anyio wraps per-address connect errors in a group)."""
    found: set[int] = set()
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(getattr(e, "errno", None), int):
            found.add(e.errno)
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        stack.extend(getattr(e, "exceptions", ()) or ())
    return found


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def _classify_error(exc: httpx.HTTPError, marks: dict[str, float], form: str) -> tuple[Code, str]:
    text = str(exc) or type(exc).__name__
    tls_started = "connection.start_tls.started" in marks and "connection.start_tls.complete" not in marks
    errnos = _os_errnos(exc)
    if isinstance(exc, httpx.ConnectTimeout) or errno.ETIMEDOUT in errnos:
        return Code.CONNECT_TIMEOUT, "TCP connect timed out"
    if tls_started or isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):
        return (Code.TLS_ON_HTTP_ONLY if form == "privatelink-default" else Code.TLS_FAILED), text
    if isinstance(exc, httpx.ConnectError):
        if errno.ECONNREFUSED in errnos or "refused" in text.lower():
            return Code.CONNECT_REFUSED, "connection refused"
        if errnos & _UNREACHABLE:
            return Code.CONNECT_TIMEOUT, "no route to host"
        if errno.ECONNRESET in errnos or "reset" in text.lower():
            return Code.CONNECTION_RESET, text
        return Code.CONNECT_REFUSED, text
    if isinstance(exc, httpx.ReadTimeout):
        got_headers = "http11.receive_response_headers.complete" in marks
        return (Code.STREAM_STALLED if got_headers else Code.READ_TIMEOUT), "read timed out"
    if isinstance(exc, httpx.TimeoutException):
        return Code.READ_TIMEOUT, text
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)) or errno.ECONNRESET in errnos:
        return Code.CONNECTION_RESET, text
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending" in text or "disconnected" in text:
            return Code.CONNECTION_RESET, text
        return Code.PROTOCOL_ERROR, text
    return Code.PROTOCOL_ERROR, text


def _phases(marks: dict[str, float], start: float, end: float) -> dict[str, float | None]:
    def span(a: str, b: str) -> float | None:
        if a in marks and b in marks:
            return (marks[b] - marks[a]) * 1000
        return None

    return {
        "connect": span("connection.connect_tcp.started", "connection.connect_tcp.complete"),
        "tls": span("connection.start_tls.started", "connection.start_tls.complete"),
        "ttfb": span("http11.send_request_headers.started", "http11.receive_response_headers.complete"),
        # From the first network activity: our own set-up (first-use imports, pool) is not the path's.
        "total": (marks.get("body.done", end) - marks.get("connection.connect_tcp.started", start)) * 1000,
    }
