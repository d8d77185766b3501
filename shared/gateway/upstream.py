"""The gateway's upstream client: one request to a target, tried across its zone addresses.

A private endpoint's name resolves to one ENI per zone; a dead ENI must not fail requests while
another answers. So every address gets its own keep-alive pool (shared/gateway/client.py) that
connects only to that address: the Host header and TLS SNI stay the real name, as in the probe, and a
failover is simply the next address. Bodies pass through untouched (no decompression) and are
never buffered: the caller awaits `UpstreamResponse.next_chunk()` and forwards each chunk at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared import logs
from shared.config.load import Config
from shared.config.targets import Target
from shared.config.urls import UrlError
from shared.credentials.errors import CredentialError
from shared.credentials.provider import Resolved, TokenProvider
from shared.gateway.client import (
    ConnectFailed,
    ConnectFailure,
    ConnectTimeout,
    Disconnected,
    FirstByteTimeout,
    IdleTimeout,
    InvalidRequest,
    ProtocolError,
    TlsFailed,
    UpstreamConnectionError,
    UpstreamPool,
    UpstreamReply,
)
from shared.gateway.errors import ErrorType, GatewayError
from shared.probe import dns
from shared.probe.tls import cached_context
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose, for_tls_failure

# Statuses worth another address (or the next route): throttled, EAS queue full, server errors.
RETRY_STATUSES = frozenset({429, 450})
DNS_TTL_S = 5.0
POOL_KEEPALIVE_S = 60.0


def is_retryable_status(status: int) -> bool:
    """A status another address or route target may answer better (nothing reached the client yet)."""
    return status in RETRY_STATUSES or status >= 500


class UpstreamError(GatewayError):
    """A target that could not be reached or did not answer: the probe's diagnosis code and remedy.

    `failover` says whether the next route target may be tried (connect-level failures); a read
    timeout is not retried, since the upstream may be working on the request."""

    def __init__(self, status: int, code: Code, message: str, remedy: str, *, failover: bool) -> None:
        super().__init__(status, ErrorType.UPSTREAM, code.value, message, remedy=remedy)
        self.failover = failover


class StreamBroken(GatewayError):
    """The upstream failed after the response started: the client connection must be aborted."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(502, ErrorType.UPSTREAM, code.value, message)


@dataclass
class UpstreamTrace:
    """What one request did upstream, for its log line: addresses tried, failovers, credential refresh."""

    addresses: list[str] = field(default_factory=list)
    failovers: list[dict[str, str]] = field(default_factory=list)
    credential_refreshed: bool = False


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read chunk by chunk."""

    __slots__ = ("status", "headers", "target", "address", "_reply", "_idle_s")

    def __init__(self, reply: UpstreamReply, target: Target, address: str, idle_s: float) -> None:
        self._reply = reply
        self._idle_s = idle_s
        self.status = reply.status
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(reply.raw_headers)
        self.target = target
        self.address = address

    @property
    def retryable(self) -> bool:
        return is_retryable_status(self.status)

    @property
    def at_hand(self) -> bool:
        """Body bytes, or the body's end, have arrived: `chunks()` yields or ends without waiting."""
        return self._reply.buffered > 0 or self._reply.complete

    @property
    def drained(self) -> bool:
        """The body has arrived to its end and every byte of it was handed over by `chunks()`."""
        return self._reply.complete and not self._reply.buffered

    async def next_chunk(self) -> bytes | None:
        """The body bytes that arrived since the last call (waiting for some), or None at the body's end; an
        idle gap over the timeout or a broken connection raises StreamBroken."""
        try:
            return await self._reply.next_chunk(self._idle_s)
        except IdleTimeout:
            raise StreamBroken(Code.STREAM_STALLED, f"no data from {self.address} for {self._idle_s:g}s") from None
        except ProtocolError as exc:
            raise StreamBroken(Code.PROTOCOL_ERROR, f"{self.address}: {exc}") from None
        except UpstreamConnectionError as exc:
            raise StreamBroken(Code.CONNECTION_RESET, f"{self.address}: {exc}") from None

    async def read(self, limit: int) -> bytes:
        """A small body (an error answer) at most `limit` bytes, for diagnosis."""
        out = bytearray()
        while len(out) < limit and (data := await self.next_chunk()) is not None:
            out += data
        return bytes(out[:limit])

    def release(self) -> None:
        """Done reading: the connection goes back to the pool if the body was read to the end."""
        self._reply.release()

    def abort(self) -> None:
        """Close the connection (never pooled): the upstream sees the client go away."""
        self._reply.abort()


class UpstreamClient:
    """Sends requests to targets: addresses in order, credentials in the target's style, failover."""

    def __init__(
        self,
        config: Config,
        tokens: TokenProvider,
        *,
        connect_timeout_s: float = 5.0,
        first_byte_timeout_s: float = 300.0,
        idle_timeout_s: float = 120.0,
        dns_ttl_s: float = DNS_TTL_S,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._connect_timeout_s = connect_timeout_s
        self._first_byte_timeout_s = first_byte_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._dns_ttl_s = dns_ttl_s
        self._pool = UpstreamPool(idle_expiry_s=POOL_KEEPALIVE_S)
        self._dns: dict[tuple[str, int], tuple[float, dns.Resolution]] = {}
        self._discovered: dict[tuple[str, str], Target] = {}
        self._log = logs.get_logger("vpcprobe.gateway")

    async def close(self) -> None:
        """Close every pool (lifespan shutdown)."""
        self._pool.close()

    async def send(
        self,
        target: Target,
        method: str,
        path_qs: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        trace: UpstreamTrace,
    ) -> UpstreamResponse:
        """The first answer that is not worth another address; the last address's answer otherwise.

        Raises UpstreamError when no address answered at all (connect-level failures everywhere)."""
        resolved = await self._credential(target)
        target = self._endpoint_of(target, resolved)
        ep = target.endpoint
        resolution = await self._resolve(ep.host, ep.port)
        if not resolution.addresses:
            detail = resolution.error or "no addresses"
            diag = diagnose(Code.DNS_UNRESOLVED, f"{ep.host}: {detail}", host=ep.host)
            raise UpstreamError(502, Code.DNS_UNRESOLVED, diag.message, diag.remedy, failover=True)
        request_target = ep.base_path.rstrip("/") + path_qs
        value = resolved.value if resolved is not None else None
        last_error: UpstreamError | None = None
        addresses = resolution.addresses
        for i, addr in enumerate(addresses):
            address = _show(addr.ip, addr.port)
            trace.addresses.append(f"{target.name}@{address}")
            refreshed = False
            while True:
                try:
                    resp = await self._request(target, addr, method, request_target,
                                               _with_credential(target, headers, value), body)
                except UpstreamError as exc:
                    last_error = exc
                    break
                if resp.status == 401 and target.credential is not None and not refreshed:
                    fresh = await self._refreshed(target, value)
                    if fresh is not None:
                        resp.abort()
                        value, refreshed, trace.credential_refreshed = fresh, True, True
                        continue
                upstream = UpstreamResponse(resp, target, address, self._idle_timeout_s)
                if is_retryable_status(resp.status) and i + 1 < len(addresses):
                    upstream.abort()
                    last_error = None
                    self._failover(trace, target, address, f"status {resp.status}", addresses[i + 1])
                    break
                return upstream
            if last_error is not None:
                if not last_error.failover:
                    raise last_error
                if i + 1 < len(addresses):
                    self._failover(trace, target, address, last_error.code, addresses[i + 1])
        assert last_error is not None
        raise last_error

    def _failover(self, trace: UpstreamTrace, target: Target, address: str, reason: str, nxt: dns.Address) -> None:
        entry = {"target": target.name, "address": address, "reason": reason, "next": _show(nxt.ip, nxt.port)}
        trace.failovers.append(entry)
        self._log.warning("gateway_failover", **entry)

    async def _request(
        self,
        target: Target,
        addr: dns.Address,
        method: str,
        request_target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> UpstreamReply:
        ep = target.endpoint
        try:
            return await self._pool.request(
                method, request_target, _wire(headers), body,
                ip=addr.ip, port=addr.port, server_name=ep.host, url_port=ep.port,
                ssl_context=cached_context(target.ca_bundle, target.tls_verify) if ep.scheme == "https" else None,
                connect_timeout=self._connect_timeout_s, first_byte_timeout=self._first_byte_timeout_s,
            )
        except (UpstreamConnectionError, InvalidRequest) as exc:
            raise self._diagnosed(exc, target, addr) from None

    def _diagnosed(self, exc: BaseException, target: Target, addr: dns.Address) -> UpstreamError:
        """The probe's diagnosis of a failed attempt: code, what happened at which address, the remedy."""
        code, detail, failover = classify(exc, target.endpoint.form)
        ep = target.endpoint
        where = f"{target.name} at {_show(addr.ip, addr.port)} ({ep.host})"
        diag = diagnose(code, f"{where}: {detail}", host=ep.host, port=ep.port, scheme=ep.scheme,
                        region=ep.region, service=ep.service)
        status = 504 if code in (Code.CONNECT_TIMEOUT, Code.READ_TIMEOUT) else 502
        return UpstreamError(status, code, diag.message, diag.remedy, failover=failover)

    async def _resolve(self, host: str, port: int) -> dns.Resolution:
        """The name's addresses, cached a few seconds: a zone that dies shows up within the TTL."""
        key = (host, port)
        now = time.monotonic()
        cached = self._dns.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        resolution = await dns.resolve(host, port, self._config.resolve)
        # An error is kept briefly too, so a dead name does not cost a lookup per request.
        self._dns[key] = (now + self._dns_ttl_s, resolution)
        return resolution

    async def _credential(self, target: Target) -> Resolved | None:
        if target.credential is None:
            return None
        try:
            return self._tokens.at_hand(target.credential) or await self._tokens.resolve(target.credential)
        except CredentialError as exc:
            diag = diagnose(Code.CREDENTIAL_UNAVAILABLE, f"{target.name}: {exc}")
            raise UpstreamError(502, Code.CREDENTIAL_UNAVAILABLE, diag.message, diag.remedy, failover=True) from None

    async def _refreshed(self, target: Target, used: str | None) -> str | None:
        """After a 401: the value to retry with once, or None (the 401 stands).

        A cached value (kms:, eas:) is dropped and fetched again, and the request is retried with what
        the fetch gives; an env: value is read at use, so it is retried only when the variable changed."""
        assert target.credential is not None
        dropped = self._tokens.invalidate(target.credential, used)
        try:
            fresh = await self._tokens.get(target.credential)
        except CredentialError:
            return None
        return fresh if dropped or fresh != used else None

    def _endpoint_of(self, target: Target, resolved: Resolved | None) -> Target:
        """An EAS target whose endpoint comes from DescribeService (IntranetEndpoint), like the probe's."""
        if not target.endpoint_deferred:
            return target
        eas = resolved.eas if resolved is not None else None
        url = eas.intranet_endpoint if eas is not None else None
        if not url:
            diag = diagnose(Code.EAS_SERVICE_NOT_FOUND, f"{target.name}: DescribeService gave no IntranetEndpoint",
                            service=target.endpoint.service, region=target.endpoint.region)
            raise UpstreamError(502, Code.EAS_SERVICE_NOT_FOUND, diag.message, diag.remedy, failover=True)
        found = self._discovered.get((target.name, url))
        if found is None:
            try:
                found = target.with_intranet_endpoint(url, self._config.region)
            except UrlError as exc:
                diag = diagnose(Code.PATH_NOT_FOUND, f"{target.name}: {exc}", service=target.endpoint.service)
                raise UpstreamError(502, Code.PATH_NOT_FOUND, diag.message, diag.remedy, failover=True) from None
            self._discovered[(target.name, url)] = found
        return found


def classify(exc: BaseException, form: str) -> tuple[Code, str, bool]:
    """Map a client failure to (diagnosis code, what happened, whether another address may be tried)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectTimeout):
        return Code.CONNECT_TIMEOUT, text, True
    if isinstance(exc, TlsFailed):
        return for_tls_failure(exc.reason, form), text, True
    if isinstance(exc, ConnectFailed):
        if exc.reason is ConnectFailure.REFUSED:
            return Code.CONNECT_REFUSED, "connection refused", True
        if exc.reason is ConnectFailure.UNREACHABLE:
            return Code.NO_ROUTE, "no route to host", True
        if exc.reason is ConnectFailure.RESET:
            return Code.CONNECTION_RESET, "connection reset while connecting", True
        return Code.CONNECT_REFUSED, text, True
    if isinstance(exc, (FirstByteTimeout, IdleTimeout)):
        return Code.READ_TIMEOUT, "no response headers before the first-byte timeout", False
    if isinstance(exc, Disconnected):
        # A pooled connection the upstream had just dropped is retried by the client itself; this one was fresh.
        return Code.CONNECTION_RESET, "the connection closed before a response", True
    return Code.PROTOCOL_ERROR, text, False


def _with_credential(target: Target, headers: Sequence[tuple[str, str]], value: str | None) -> list[tuple[str, str]]:
    """The forwarded headers plus the target's own credential in its style (and its workspace)."""
    out = list(headers)
    if value is not None:
        out.append(("Authorization", f"Bearer {value}" if target.auth == "bearer" else value))
    if target.workspace:
        out = [(k, v) for k, v in out if k.lower() != "x-dashscope-workspace"]
        out.append(("X-DashScope-WorkSpace", target.workspace))
    return out


def _wire(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as sent: latin-1, as HTTP/1.1 carries them (a value outside it is refused, never mangled)."""
    try:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    except UnicodeEncodeError:
        raise InvalidRequest("a request header is not latin-1 text") from None


def _show(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

