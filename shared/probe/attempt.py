"""One request to one address: per-phase timings taken at the socket, and what failed, as a Code.

The request goes to the address itself with the Host header and TLS SNI set to the real name, so
each zone's ENI is reached and timed on its own, on a connection of its own (transport.py).
"""

from __future__ import annotations

import errno
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared import logs
from shared.config.targets import Target
from shared.probe.deadline import Deadline, DeadlineExpired
from shared.probe.dns import Address
from shared.probe.request import RequestSpec
from shared.probe.sse import read_stream
from shared.probe.tls import cert_days_left, cert_not_after
from shared.probe.transport import (
    ConnectFailed,
    ConnectionLost,
    Exchange,
    Marks,
    ProtocolViolation,
    Request,
    RequestRefused,
    Stage,
    TlsFailed,
    TransportError,
)
from shared.verdict.codes import Code
from shared.verdict.diagnose import for_status, for_tls_failure

MAX_BODY = 64 * 1024


@dataclass
class Attempt:
    """What one request to one address observed."""

    phases: dict[str, float | None] = field(default_factory=dict)
    # The same exchange cut as blackbox_exporter cuts it (resolve is added by the engine).
    blackbox_phases: dict[str, float | None] = field(default_factory=dict)
    http_status: int | None = None
    code: Code | None = None
    detail: str = ""
    tls_days_left: int | None = None
    tls_not_after: str | None = None


async def try_address(
    target: Target,
    spec: RequestSpec,
    addr: Address,
    tls: ssl.SSLContext | None = None,
    request: Request | None = None,
) -> Attempt:
    """Send `spec` to one address within the probe timeout, which starts now; failures are recorded, never raised.

    `tls` is the SSL context of an https target, built before the attempt (and kept) by the caller;
    `request` is `wire_request(spec, target)`, built once for all of a target's addresses and retries.
    """
    ep, settings = target.endpoint, target.probe
    out = Attempt()
    exchange = Exchange()
    marks = exchange.marks
    start = time.perf_counter()
    try:
        request = request or wire_request(spec, target)
        request.wire()  # a header that cannot be sent is refused before any connection is opened
        async with Deadline(settings.timeout_s):
            await exchange.open(addr.ip, addr.port, tls if ep.scheme == "https" else None, ep.host)
            await _exchange(exchange, request, spec, target, out)
    except DeadlineExpired:
        out.code, what = _timeout_phase(marks, spec.stream)
        out.detail = f"{addr.ip}:{addr.port}: no {what} within {settings.timeout_s:g}s"
    except TransportError as exc:
        out.code, detail = _classify_error(exc, ep.form)
        out.detail = f"{addr.ip}:{addr.port}: {detail}"
    finally:
        exchange.close()
    end = time.perf_counter()
    out.phases.update(_phases(marks, start, end))
    out.blackbox_phases.update(_blackbox_phases(marks, end))
    # Certificate parsing (cryptography.x509) happens here, after every timestamp was taken.
    out.tls_days_left = cert_days_left(exchange.peer_cert_der)
    out.tls_not_after = cert_not_after(exchange.peer_cert_der)
    return out


def wire_request(spec: RequestSpec, target: Target) -> Request:
    """What goes on the wire for `spec`: Host is the real name, whichever address it is sent to."""
    ep = target.endpoint
    url = urlsplit(spec.url)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    default_port = 443 if ep.scheme == "https" else 80
    host = ep.host if ep.port == default_port else f"{ep.host}:{ep.port}"
    headers = [("Host", host)] + [(k, v) for k, v in spec.headers.items() if k.lower() != "host"]
    return Request(spec.method, path, headers, spec.body)


async def _exchange(exchange: Exchange, request: Request, spec: RequestSpec, target: Target, out: Attempt) -> None:
    response = await exchange.send(request)
    out.http_status = response.status
    body = b""
    if response.content_type.startswith("text/event-stream") and response.status == 200:
        frame_error = await read_stream(exchange.body())
        if frame_error:
            out.code, out.detail = Code.STREAM_ERROR_FRAME, frame_error
            return
    else:
        body = b"".join([chunk async for chunk in exchange.body(limit=MAX_BODY)])
    if response.status not in spec.expect_status:
        code = for_status(response.status, kind=target.kind, body=body)
        out.code = code or Code.UNEXPECTED_STATUS
        out.detail = f"HTTP {response.status}" + _upstream_message(body)
        return
    if spec.expect_body and not re.search(spec.expect_body, body.decode("utf-8", "replace")):
        out.code, out.detail = Code.BODY_MISMATCH, f"/{spec.expect_body}/ not found in the response"


def _upstream_message(body: bytes) -> str:
    """The upstream's own error code/message, shortened after redaction (a secret cut in half by the
    shortening would no longer match)."""
    text = body[:2048].decode("utf-8", "replace").strip()
    if not text:
        return " (empty body)"
    try:
        data = json.loads(text)
    except ValueError:
        return f": {logs.redact_text(text)[:200]}"
    if isinstance(data, dict):
        err = data.get("error") if isinstance(data.get("error"), dict) else data
        code, message = err.get("code"), err.get("message") or err.get("detail")
        if code or message:
            return ": " + logs.redact_text(" ".join(str(x) for x in (code, message) if x))[:200]
    return f": {logs.redact_text(text)[:200]}"


def _timeout_phase(marks: Marks, stream: bool) -> tuple[Code, str]:
    """Which phase the attempt's deadline cut short."""
    stage = marks.stage()
    if stage is Stage.CONNECT:
        return Code.CONNECT_TIMEOUT, "TCP connection"
    if stage is Stage.TLS:
        return Code.TLS_FAILED, "TLS handshake"
    if stage is Stage.BODY and stream:
        return Code.STREAM_STALLED, "stream frame"
    return Code.READ_TIMEOUT, "response"


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def _classify_error(exc: TransportError, form: str | None) -> tuple[Code, str]:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectFailed):
        if exc.errno == errno.ETIMEDOUT:
            return Code.CONNECT_TIMEOUT, "TCP connect timed out"
        if exc.errno == errno.ECONNREFUSED:
            return Code.CONNECT_REFUSED, "connection refused"
        if exc.errno in _UNREACHABLE:
            return Code.NO_ROUTE, f"{text.lower()} ({errno.errorcode[exc.errno]})"
        if exc.errno == errno.ECONNRESET:
            return Code.CONNECTION_RESET, text
        return Code.CONNECT_REFUSED, text
    if isinstance(exc, TlsFailed):
        return for_tls_failure(exc.reason, form), text
    if isinstance(exc, RequestRefused):
        return Code.REQUEST_HEADER_INVALID, text
    if isinstance(exc, ConnectionLost):
        return Code.CONNECTION_RESET, text
    if isinstance(exc, ProtocolViolation):
        return Code.PROTOCOL_ERROR, text
    return Code.PROTOCOL_ERROR, text


def _span(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000


def _phases(marks: Marks, start: float, end: float) -> dict[str, float | None]:
    """vpcprobe's phases (README "The result object"); `dns` is added by the engine."""
    first = marks.connect_start if marks.connect_start is not None else start
    return {
        "connect": _span(marks.connect_start, marks.connect_end),
        "tls": _span(marks.tls_start, marks.tls_end),
        "ttfb": _span(marks.request_start, marks.headers_done),
        # From the first network activity: our own set-up (building the request) is not the path's.
        "total": _span(first, marks.body_end if marks.body_end is not None else end),
    }


def _blackbox_phases(marks: Marks, end: float) -> dict[str, float | None]:
    """blackbox_exporter's probe_http_duration_seconds phases; `resolve` is added by the engine.

    processing: connection ready (after TLS) to the first response byte; transfer: first byte to body end.
    """
    ready = marks.tls_end if marks.tls_start is not None else marks.connect_end
    return {
        "connect": _span(marks.connect_start, marks.connect_end),
        "tls": _span(marks.tls_start, marks.tls_end),
        "processing": _span(ready, marks.first_byte),
        "transfer": _span(marks.first_byte, marks.body_end if marks.body_end is not None else None),
    }
