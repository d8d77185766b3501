"""The probe engine: one round = every target concurrently, every address of every target.

Each address gets its own fresh connection (Host header and TLS SNI set to the real name), so a
dead zone shows while the name still answers, and the phase timings are of a cold connection —
what a real caller's first request pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import re
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from shared import logs
from shared.config.load import Config, Target
from shared.config.urls import DASHSCOPE_API_PREFIX, UrlError, eas_endpoint
from shared.credentials.tokens import CredentialError, Resolved, TokenProvider
from shared.probe import dns
from shared.verdict.codes import Diagnosis, diagnose, for_status
from shared.verdict.result import DEGRADED, DOWN, UP, AddressResult, ProbeResult, now_rfc3339

USER_AGENT = "vpcprobe/0.1"
MAX_BODY = 64 * 1024
# Failures worth one quick retry: a blip, not a misconfiguration.
TRANSIENT = {
    "connect_timeout",
    "connect_refused",
    "connection_reset",
    "read_timeout",
    "stream_stalled",
    "server_error",
    "request_timeout",
    "rate_limited",
    "eas_queue_full",
    "no_ready_instance",
    "model_unavailable",
    "stream_error_frame",
    "protocol_error",
}


@dataclass
class RequestSpec:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool = False
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None


@dataclass
class _Attempt:
    """What one request to one address observed."""

    phases: dict[str, float | None] = field(default_factory=dict)
    http_status: int | None = None
    code: str | None = None
    detail: str = ""
    tls_days_left: int | None = None


def build_request(target: Target, token: str | None) -> RequestSpec:
    """The probe request for a target's mode; the token goes into the header style its API wants."""
    settings, ep = target.probe, target.endpoint
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}" if target.auth == "bearer" else token
    if target.workspace:
        headers["X-DashScope-WorkSpace"] = target.workspace
    body: Any = None
    method = "GET"
    if settings.mode == "models":
        path = "/compatible-mode/v1/models" if target.kind == "dashscope" else "/v1/models"
    elif settings.mode == "chat":
        method = "POST"
        messages = [{"role": "user", "content": "ping"}]
        if target.kind == "dashscope" and target.api == "native":
            path = DASHSCOPE_API_PREFIX["native"] + "/services/aigc/text-generation/generation"
            body = {
                "model": settings.model,
                "input": {"messages": messages},
                "parameters": {"max_tokens": 1, "result_format": "message", "incremental_output": True},
            }
            if settings.stream:
                headers["X-DashScope-SSE"] = "enable"
        else:
            path = (
                DASHSCOPE_API_PREFIX["compatible"] + "/chat/completions"
                if target.kind == "dashscope"
                else (target.api_path or "/v1/chat/completions")
            )
            body = {"model": settings.model, "messages": messages, "max_tokens": 1}
            if settings.stream:
                body["stream"] = True
    else:
        method, path, body = settings.method, settings.path or "/", settings.body
    if settings.stream:
        headers["Accept"] = "text/event-stream"
    headers.update(settings.headers)
    raw = None
    if body is not None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    return RequestSpec(
        method,
        ep.url_for(path),
        headers,
        raw,
        settings.stream,
        settings.expect_status,
        settings.expect_body,
    )


class Prober:
    """Runs probe rounds; holds what may be reused across rounds in a warm FC instance."""

    def __init__(self, config: Config, tokens: TokenProvider | None = None) -> None:
        self.config = config
        self.tokens = tokens or TokenProvider(cloud=config.cloud)
        self._ssl: dict[tuple, ssl.SSLContext] = {}
        self._clients: dict[tuple, httpx.AsyncClient] | None = None
        self.log = logs.get_logger("vpcprobe.probe")

    async def run_round(self, names: list[str] | None = None) -> list[ProbeResult]:
        """Probe the selected targets concurrently (bounded by `concurrency`), in config order."""
        targets = self.config.select(names)
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(target: Target) -> ProbeResult:
            async with gate:
                return await self._probe_bounded(target)

        async with self._round_clients():
            return list(await asyncio.gather(*(one(t) for t in targets)))

    @contextlib.asynccontextmanager
    async def _round_clients(self) -> AsyncIterator[None]:
        """HTTP clients shared by one round (one per trust setting), closed when it ends."""
        if self._clients is not None:
            yield
            return
        self._clients = {}
        try:
            yield
        finally:
            clients, self._clients = self._clients, None
            for client in clients.values():
                await client.aclose()

    def _client(self, target: Target) -> httpx.AsyncClient:
        # No keep-alive: every request opens a fresh connection, so phases are a cold caller's.
        # trust_env=False: an HTTP(S)_PROXY variable must not reroute the private path.
        key = (target.ca_bundle, target.tls_verify)
        assert self._clients is not None
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(
                verify=self._verify(target),
                trust_env=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            )
        return self._clients[key]

    async def probe_target(self, target: Target) -> ProbeResult:
        async with self._round_clients():
            return await self._probe_bounded(target)

    async def _probe_bounded(self, target: Target) -> ProbeResult:
        settings = target.probe
        budget = settings.timeout_s * (settings.retries + 1) + settings.retry_delay_s * settings.retries + 2.0
        if target.credential is not None and target.credential.scheme != "env":
            # A control-plane fetch, and after a 401 a second fetch and a second try, fit in the budget too.
            budget = 2 * (budget + self.tokens.fetch_budget_s(target.credential))
        try:
            return await asyncio.wait_for(self._probe(target), timeout=budget)
        except asyncio.TimeoutError:
            return self._failed(target, diagnose("read_timeout", f"probe exceeded its {budget:.1f}s budget"))
        except Exception as exc:  # a probe bug must not take the round down with it
            self.log.error("probe_crashed", target=target.name, error=exc)
            return self._failed(target, diagnose("server_error", f"probe error: {type(exc).__name__}"))

    def _failed(self, target: Target, diag: Diagnosis, **extra: Any) -> ProbeResult:
        return ProbeResult(
            target.name,
            target.kind,
            target.endpoint.base_url,
            DOWN,
            diagnosis=diag,
            form=target.endpoint.form,
            mode=target.probe.mode,
            warnings=list(target.warnings),
            **extra,
        )

    async def _probe(self, target: Target) -> ProbeResult:
        checked_at = now_rfc3339()
        ref, resolved = target.credential, None
        started = self.tokens.now()
        if ref is not None:
            try:
                resolved = await self.tokens.resolve(ref)
            except CredentialError as exc:
                return self._failed(target, diagnose("credential_unavailable", str(exc)), checked_at=checked_at)
        result = await self._probe_with(target, resolved, checked_at)
        if ref is None or resolved is None or ref.scheme == "env" or not _refresh_worthy(result, resolved, started):
            return result
        # A cached credential failed: fetch it again once. A rotated KMS secret or EAS token (401), or a
        # service that stopped since it was cached, shows now rather than after the cache TTL.
        self.tokens.invalidate(ref, resolved.value)
        try:
            fresh = await self.tokens.resolve(ref)
        except CredentialError as exc:
            self.log.warning("credential_refresh_failed", target=target.name, error=str(exc))
            return result
        if fresh.value == resolved.value and fresh.eas == resolved.eas:
            return result  # nothing changed: the failure stands, no second request
        again = await self._probe_with(target, fresh, checked_at)
        again.credential_refreshed = fresh.value != resolved.value
        return again

    async def _probe_with(self, target: Target, resolved: Resolved | None, checked_at: str) -> ProbeResult:
        """One probe with a resolved credential: EAS service state first, then every address."""
        eas = resolved.eas if resolved is not None else None
        extra: dict[str, Any] = {"checked_at": checked_at}
        problem: UrlError | None = None
        if target.endpoint_deferred:
            try:
                target = self._discovered(target, eas)
            except UrlError as exc:
                problem = exc
        if eas is not None:
            extra["eas_service"] = eas.summary()
            if not eas.serving:
                why = f" ({eas.reason or eas.message})" if (eas.reason or eas.message) else ""
                detail = (
                    f"{target.credential}: DescribeService says status {eas.status}, "
                    f"{eas.running} of {eas.total} instances running{why}; no request was sent"
                )
                diag = diagnose("eas_service_not_running", detail, service=eas.name, region=eas.region)
                return self._failed(target, diag, **extra)
        if problem is not None:
            code = "eas_service_not_found" if eas is None or not eas.intranet_endpoint else "path_not_found"
            return self._failed(target, diagnose(code, str(problem), service=target.endpoint.service), **extra)
        result = await self._probe_http(target, resolved.value if resolved is not None else None, checked_at)
        result.eas_service = extra.get("eas_service")
        return result

    def _discovered(self, target: Target, eas: Any) -> Target:
        """The target with the endpoint DescribeService gave (IntranetEndpoint), under the same URL rules."""
        if eas is None or not eas.intranet_endpoint:
            raise UrlError(
                f"{target.credential}: DescribeService gave no IntranetEndpoint; give the target an 'endpoint'"
            )
        url = eas.intranet_endpoint
        service = None if "/api/predict/" in url else target.endpoint.service
        endpoint, api_path = eas_endpoint(url, service=service, function_region=self.config.region)
        return replace(target, endpoint=endpoint, api_path=target.api_path or api_path, endpoint_deferred=False)

    async def _probe_http(self, target: Target, token: str | None, checked_at: str) -> ProbeResult:
        spec = build_request(target, token)
        ep = target.endpoint
        res = await dns.resolve(ep.host, ep.port, self.config.resolve)
        base = ProbeResult(
            target.name,
            target.kind,
            spec.url,
            DOWN,
            checked_at=checked_at,
            form=ep.form,
            mode=target.probe.mode,
            warnings=list(target.warnings),
        )
        base.phases_ms = {"dns": res.elapsed_ms}
        if not res.addresses:
            base.diagnosis = diagnose("dns_unresolved", f"{ep.host}: {res.error or 'no addresses'}", host=ep.host)
            return base
        addresses = await asyncio.gather(*(self._probe_address(target, spec, a, res) for a in res.addresses))
        base.addresses = list(addresses)
        return self._verdict(target, base, res)

    def _verdict(self, target: Target, result: ProbeResult, res: dns.Resolution) -> ProbeResult:
        ep = target.endpoint
        good = [a for a in result.addresses if a.status != DOWN]
        bad = [a for a in result.addresses if a.status == DOWN]
        lead = good[0] if good else result.addresses[0]
        result.phases_ms = dict(lead.phases_ms)
        result.http_status = lead.http_status
        result.tls_days_left = lead.tls_days_left
        if not good:
            codes = Counter(a.diagnosis.code for a in bad if a.diagnosis)
            top = codes.most_common(1)[0][0]
            result.status = DOWN
            first = next(a for a in bad if a.diagnosis and a.diagnosis.code == top)
            result.diagnosis = first.diagnosis
            if len(bad) > 1:
                result.diagnosis = Diagnosis(
                    top, f"{first.diagnosis.message} (all {len(bad)} addresses)", first.diagnosis.remedy
                )
        elif bad:
            result.status = DEGRADED
            detail = ", ".join(f"{a.ip}: {a.diagnosis.code if a.diagnosis else 'down'}" for a in bad)
            result.diagnosis = diagnose(
                "zones_down", f"{len(bad)} of {len(result.addresses)} down ({detail})", host=ep.host
            )
        elif any(a.status == DEGRADED for a in good):
            result.status = DEGRADED
            result.diagnosis = next(a.diagnosis for a in good if a.status == DEGRADED)
        else:
            result.status = UP
        public = [a.ip for a in result.addresses if not a.private]
        if result.status == UP and ep.expect_private and public and res.source != "literal":
            result.status = DEGRADED
            result.diagnosis = diagnose("dns_public_address", f"{ep.host} -> {', '.join(public)}", host=ep.host)
        if ep.form in ("privatelink-default", "privatelink-custom") and len(result.addresses) == 1:
            result.warnings.append(
                f"{ep.host} resolves to one address only: the endpoint has an ENI in a single zone; the docs "
                "recommend vSwitches in at least two zones so a zone failure moves traffic to another ENI"
            )
        return result

    async def _probe_address(
        self, target: Target, spec: RequestSpec, addr: dns.Address, res: dns.Resolution
    ) -> AddressResult:
        settings = target.probe
        out = AddressResult(addr.ip, addr.port, addr.private)
        attempt = _Attempt()
        for n in range(settings.retries + 1):
            if n:
                await asyncio.sleep(settings.retry_delay_s)
            attempt = await self._attempt(target, spec, addr)
            out.attempts = n + 1
            if attempt.code not in TRANSIENT:
                break
        attempt.phases["dns"] = res.elapsed_ms
        if attempt.phases.get("total") is not None:
            attempt.phases["total"] += res.elapsed_ms
        out.phases_ms, out.http_status, out.tls_days_left = attempt.phases, attempt.http_status, attempt.tls_days_left
        ep = target.endpoint
        context = {"host": ep.host, "port": addr.port, "scheme": ep.scheme, "region": ep.region, "service": ep.service}
        if attempt.code:
            out.status = DOWN
            out.diagnosis = diagnose(attempt.code, attempt.detail, **context)
            return out
        out.status = UP
        total = attempt.phases.get("total") or 0.0
        if settings.latency_slo_ms is not None and total > settings.latency_slo_ms:
            out.status = DEGRADED
            out.diagnosis = diagnose("slow", f"{total:.0f} ms > {settings.latency_slo_ms:.0f} ms", **context)
        elif attempt.tls_days_left is not None and attempt.tls_days_left < settings.cert_min_days:
            out.status = DEGRADED
            out.diagnosis = diagnose("tls_cert_expiring", f"{attempt.tls_days_left} days left", **context)
        return out

    def _verify(self, target: Target) -> ssl.SSLContext:
        """One SSL context per trust setting, built once: building one costs tens of ms of CPU."""
        key = (target.ca_bundle, target.tls_verify)
        if key not in self._ssl:
            if not target.tls_verify:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif target.ca_bundle:
                ctx = ssl.create_default_context(cafile=target.ca_bundle)
            else:
                ctx = httpx.create_ssl_context()
            self._ssl[key] = ctx
        return self._ssl[key]

    async def _attempt(self, target: Target, spec: RequestSpec, addr: dns.Address) -> _Attempt:
        ep, settings = target.endpoint, target.probe
        marks: dict[str, float] = {}
        out = _Attempt()

        async def trace(name: str, info: dict) -> None:
            marks[name] = time.perf_counter()
            if name == "connection.start_tls.complete":
                out.tls_days_left = _cert_days_left(info.get("return_value"))

        ip_host = f"[{addr.ip}]" if ":" in addr.ip else addr.ip
        url = httpx.URL(spec.url).copy_with(host=ip_host.strip("[]"), port=addr.port)
        default_port = 443 if ep.scheme == "https" else 80
        headers = dict(spec.headers)
        headers["Host"] = ep.host if ep.port == default_port else f"{ep.host}:{ep.port}"
        extensions: dict[str, Any] = {"trace": trace}
        if ep.scheme == "https":
            extensions["sni_hostname"] = ep.host
        timeout = httpx.Timeout(settings.timeout_s)
        client = self._client(target)
        request = client.build_request(
            spec.method, url, headers=headers, content=spec.body, extensions=extensions, timeout=timeout
        )
        start = time.perf_counter()
        try:
            await asyncio.wait_for(
                self._exchange(client, request, spec, target, out, marks), timeout=settings.timeout_s
            )
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
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        spec: RequestSpec,
        target: Target,
        out: _Attempt,
        marks: dict[str, float],
    ) -> None:
        response = await client.send(request, stream=True)
        try:
            out.http_status = response.status_code
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            if is_sse and response.status_code == 200:
                frame_error = await _read_stream(response)
                body = b""
                if frame_error:
                    out.code, out.detail = "stream_error_frame", frame_error
                    return
            else:
                body = await _read_limited(response)
        finally:
            marks["body.done"] = time.perf_counter()
            await response.aclose()
        if response.status_code not in spec.expect_status:
            code = for_status(response.status_code, kind=target.kind, body=body)
            out.code = code or "unexpected_status"
            out.detail = f"HTTP {response.status_code}" + _upstream_message(body)
            return
        if spec.expect_body and not re.search(spec.expect_body, body.decode("utf-8", "replace")):
            out.code, out.detail = "body_mismatch", f"/{spec.expect_body}/ not found in the response"


def _refresh_worthy(result: ProbeResult, resolved: Resolved, started: float) -> bool:
    """Whether a failed probe should fetch its cached cloud credential again: after a 401 from any
    address, or when an EAS target fails (its service may have stopped since it was cached)."""
    if resolved.fetched_at >= started:
        return False  # fetched for this very probe: fetching again would give the same answer
    if any(a.diagnosis is not None and a.diagnosis.code == "unauthorized" for a in result.addresses):
        return True
    return resolved.eas is not None and result.status == DOWN


async def _read_limited(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


async def _read_stream(response: httpx.Response) -> str | None:
    """Read SSE frames to the end; an error frame inside a 200 stream is returned as text."""
    from httpx_sse import EventSource

    async for event in EventSource(response).aiter_sse():
        if event.data == "[DONE]":
            break
        try:
            data = json.loads(event.data) if event.data else {}
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if isinstance(data.get("error"), dict):
            err = data["error"]
            return f"{err.get('code') or err.get('type')}: {err.get('message', '')}"[:300]
        if event.event == "error" or (data.get("code") and "output" not in data):
            return f"{data.get('code')}: {data.get('message', '')}"[:300]
    return None


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


def _timeout_phase(marks: dict[str, float], stream: bool) -> tuple[str, str]:
    """Which phase the attempt's overall deadline cut short, from the trace marks."""
    if "connection.connect_tcp.complete" not in marks:
        return "connect_timeout", "TCP connection"
    if "connection.start_tls.started" in marks and "connection.start_tls.complete" not in marks:
        return "tls_failed", "TLS handshake"
    if "http11.receive_response_headers.complete" in marks and stream:
        return "stream_stalled", "stream frame"
    return "read_timeout", "response"


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


def _classify_error(exc: httpx.HTTPError, marks: dict[str, float], form: str) -> tuple[str, str]:
    text = str(exc) or type(exc).__name__
    tls_started = "connection.start_tls.started" in marks and "connection.start_tls.complete" not in marks
    errnos = _os_errnos(exc)
    if isinstance(exc, httpx.ConnectTimeout) or errno.ETIMEDOUT in errnos:
        return "connect_timeout", "TCP connect timed out"
    if tls_started or isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):
        code = "tls_on_http_only" if form == "privatelink-default" else "tls_failed"
        return code, text
    if isinstance(exc, httpx.ConnectError):
        if errno.ECONNREFUSED in errnos or "refused" in text.lower():
            return "connect_refused", "connection refused"
        if errnos & _UNREACHABLE:
            return "connect_timeout", "no route to host"
        if errno.ECONNRESET in errnos or "reset" in text.lower():
            return "connection_reset", text
        return "connect_refused", text
    if isinstance(exc, httpx.ReadTimeout):
        got_headers = "http11.receive_response_headers.complete" in marks
        return ("stream_stalled" if got_headers else "read_timeout"), "read timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "read_timeout", text
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)) or errno.ECONNRESET in errnos:
        return "connection_reset", text
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending" in text or "disconnected" in text:
            return "connection_reset", text
        return "protocol_error", text
    return "protocol_error", text


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


def _cert_days_left(stream: Any) -> int | None:
    """Days until the peer certificate expires; parsed from DER so it works with verify off too."""
    try:
        ssl_object = stream.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    except Exception:
        return None
    if not der:
        return None
    from datetime import datetime, timezone

    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return (not_after - datetime.now(timezone.utc)).days


async def run_round(
    config: Config, names: list[str] | None = None, tokens: TokenProvider | None = None
) -> list[ProbeResult]:
    """One probe round (convenience for callers that do not keep a Prober)."""
    return await Prober(config, tokens).run_round(names)
