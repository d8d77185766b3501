"""The gateway as one raw ASGI 3 app: routes, keys, body limits, model routing, streaming relay, one log line.

No framework: every request costs only what it needs (a route lookup, a key check, one upstream
request), and the response is relayed chunk by chunk the moment each arrives, so a stream through
the gateway looks to the SDKs exactly like the endpoint's own. Errors are OpenAI-style JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from shared import logs
from shared.config.load import Config
from shared.config.reader import ConfigError
from shared.config.targets import Target
from shared.credentials.provider import TokenProvider, shared_provider
from shared.errors import VpcprobeError
from shared.gateway.errors import ErrorType, GatewayError, ResponseAborted
from shared.gateway.health import ProbeHealth
from shared.gateway.history_cache import HistoryCache
from shared.gateway.keys import KeyRing
from shared.gateway.probe_route import OnDemandProbe
from shared.gateway.routes import Route, RouteKind, route_request, upstream_path_for_model
from shared.gateway.settings import DEFAULT_BODY_LIMITS, GatewayKey, GatewaySettings
from shared.gateway.status_routes import HistoryRoutes, as_key_authorization, with_basic_challenge
from shared.gateway.upstream import (
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    UpstreamTrace,
)
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose, for_status

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
# scope["extensions"][DISCONNECT_HOOK], when the server offers it: hook(callback) calls callback() once if the
# client's connection is lost before the response completes, and returns the function that unhooks it.
DISCONNECT_HOOK = "vpcprobe.disconnect_hook"
DisconnectHook = Callable[[Callable[[], None]], Callable[[], None]]
# In an http.response.start message: the first body message follows at once (its bytes are at hand), so a
# server that knows the key writes the head with it, in one write; others ignore it.
HOLD_HEAD = "vpcprobe.hold_head"

MAX_HEADER_BYTES = 8 * 1024  # FC's HTTP trigger refuses more (400); refusing here says so in JSON
USAGE_SCAN_BYTES = 1024 * 1024  # JSON answers up to this size are parsed afterwards for `usage`
ERROR_BODY_BYTES = 64 * 1024  # a non-JSON upstream error body read for its diagnosis
SSE_TAIL_BYTES = 16 * 1024  # the end of a stream kept to find the last frame's `usage`
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade"}
)
# Never forwarded upstream: hop-by-hop, the client's credential and cookies, FC's own headers, and
# framing the upstream request recomputes.
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"authorization", b"cookie", b"content-length", b"expect"}
# Never sent to the client: hop-by-hop and what FC's HTTP trigger forbids in a response.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server"}
_DROP_PREFIXES = (b"x-fc-", b"proxy-")
_JSON = [(b"content-type", b"application/json")]
_HEALTH_BODY = b'{"status":"ok"}'
# The answer to an unexpected exception: the client learns nothing of it; the request's log line says what.
_INTERNAL = GatewayError(500, ErrorType.SERVER, "internal_error",
                         "the gateway failed on this request; its log line for the request says why")
_HISTORY_ROUTES = frozenset({RouteKind.STATUS, RouteKind.STATUS_JSON, RouteKind.METRICS})
ROUTE_CACHE_SIZE = 512
ROUTE_CACHE_KEY_BYTES = 512  # longer request targets are routed each time (no kilobytes of keys held)
# Request log fields the gateway composes from its config and constants alone (key and target names, resolved
# addresses, route and error codes, the method httptools accepted), and the numbers it counts (status, timings,
# bytes, failovers; the usage, integers only by _usage_of): no caller text, no secret, so the log line skips
# redacting them. The path, the model, an error and failover details are redacted as every log value is.
_OWN_FIELDS = frozenset({"key_name", "route", "method", "targets", "addresses", "address", "code", "status",
                         "failovers", "ttfb_ms", "total_ms", "bytes_in", "bytes_out", "usage"})


class GatewayApp:
    """The ASGI callable: lifespan opens and closes the upstream pools; http requests are served."""

    def __init__(self, config: Config, settings: GatewaySettings, tokens: TokenProvider) -> None:
        self.config = config
        self.settings = settings
        self.tokens = tokens
        self.keys = KeyRing(settings.keys, tokens)
        self.health = ProbeHealth(config, ttl_s=settings.state_ttl_s)
        self.on_demand = OnDemandProbe(config, settings, tokens)  # POST /probe
        self.history = HistoryRoutes(HistoryCache(config, ttl_s=settings.state_ttl_s))
        self.targets: dict[str, Target] = {t.name: t for t in config.targets}
        # The OpenAI base URL reads a body before it knows the target: the largest limit of any kind.
        kinds = {t.kind for t in self.targets.values()} or {"dashscope"}
        widest = max(kinds, key=self._kind_limit)
        self._model_route_limit = (self._kind_limit(widest), widest)
        # Clients call the same few paths: a request target's route is worked out once (it depends on the config
        # only, which an app never changes), up to ROUTE_CACHE_SIZE of them.
        self._routes: dict[tuple[str, bytes, bytes], Route] = {}
        self.upstream: UpstreamClient | None = None
        self._log = logs.get_logger("vpcprobe.gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    # ----------------------------------------------------------------- lifespan

    async def startup(self) -> None:
        """Open the upstream client (also done on the first request when a server skips lifespan), and start
        reading the probe history in the background for the first GET /status."""
        if self.upstream is None:
            self.history.warm_up()
            s = self.settings
            self.upstream = UpstreamClient(
                self.config,
                self.tokens,
                connect_timeout_s=s.connect_timeout_s,
                first_byte_timeout_s=s.first_byte_timeout_s,
                idle_timeout_s=s.idle_timeout_s,
            )

    async def shutdown(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            await upstream.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": logs.redact_text(str(exc))})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ----------------------------------------------------------------- http

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ex = _Exchange(scope)
        watch: _DisconnectWatch | None = None
        try:
            try:
                route: Route | None = self._route(scope)
                unrouted = None
            except GatewayError as exc:
                if exc.status not in (404, 405):
                    raise  # a malformed request is refused before any key lookup
                route, unrouted = None, exc  # ... but what is configured is said only to a caller with a key
            if route is not None and route.kind is RouteKind.HEALTH:
                ex.route = route.kind
                await _send_bytes(send, 200, _HEALTH_BODY, _JSON, head=ex.method == "HEAD")
                return  # health checks every few seconds: not logged
            if route is not None and route.kind in _HISTORY_ROUTES:
                ex.route = route.kind
                await self._history_view(ex, route, send)
                return
            key = await self.keys.authenticate(ex.header(b"authorization"))
            ex.key = key.name
            if unrouted is not None:
                raise unrouted
            assert route is not None
            ex.route = route.kind
            self.keys.check_rate(key)
            if route.kind is RouteKind.PROBE:
                await self._probe(ex, key, route, send)
                return
            if route.kind is RouteKind.MODELS:
                await self._models(ex, key, send)
            else:
                if route.target is not None:
                    _check_target(key, route.target)  # before reading a body that would only be refused
                body = await self._body(ex, route, receive)
                # The body is in: from here a client that goes away cancels this task (and the upstream).
                watch = ex.watch = _DisconnectWatch(receive, scope.get("extensions", {}).get(DISCONNECT_HOOK))
                if route.kind is RouteKind.PASSTHROUGH:
                    await self._passthrough(ex, key, route, body, send)
                else:
                    await self._openai(ex, key, route, body, send)
        except GatewayError as exc:
            if watch is not None:
                watch.stop()
            if ex.response_started:
                ex.code = exc.code
                raise  # mid-stream: the server aborts the connection, so the client sees it broken
            ex.status, ex.code = exc.status, exc.code
            await _send_error(send, exc)
        except asyncio.CancelledError:
            if watch is None or not watch.disconnected:
                raise
            ex.status, ex.code = 499, "client_disconnected"
            _uncancel()
        except (_ClientGone, OSError):  # the client left while we read its body or wrote to it
            ex.status, ex.code = 499, "client_disconnected"
        except Exception as exc:  # a bug, or a failure nothing above foresaw: never the server's text 500
            if watch is not None:
                watch.stop()
            ex.code, ex.error = _INTERNAL.code, f"{type(exc).__name__}: {exc}"  # redacted in the log line
            if ex.response_started:
                raise ResponseAborted(_INTERNAL.message) from None  # the server aborts: the client sees it broken
            ex.status = _INTERNAL.status
            await _send_error(send, _INTERNAL)
        finally:
            if watch is not None:
                watch.stop()
            if ex.route is not RouteKind.HEALTH:
                self._log_request(ex)

    def _route(self, scope: Scope) -> Route:
        size = sum(len(k) + len(v) for k, v in scope["headers"])
        if size > MAX_HEADER_BYTES:
            raise GatewayError(
                431, ErrorType.INVALID_REQUEST, "headers_too_large",
                f"request headers total {size} bytes; the limit is {MAX_HEADER_BYTES} (FC's HTTP trigger limit)",
            )
        raw_path = scope.get("raw_path") or scope["path"].encode()
        method, query = scope["method"], scope.get("query_string", b"")
        key = (method, raw_path, query)
        route = self._routes.get(key)
        if route is None:
            route = route_request(method, raw_path, query, self.config)  # a refused request target raises: not kept
            if len(raw_path) + len(query) <= ROUTE_CACHE_KEY_BYTES:
                if len(self._routes) >= ROUTE_CACHE_SIZE:
                    self._routes.clear()
                self._routes[key] = route
        return route

    async def _models(self, ex: _Exchange, key: GatewayKey, send: Send) -> None:
        """GET /v1/models: the OpenAI base URL's models this key may use."""
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "vpcprobe"}
                for name in self._models_of(key)]
        body = json.dumps({"object": "list", "data": data}, separators=(",", ":")).encode()
        ex.status = 200
        ex.bytes_out = len(body)
        await _send_bytes(send, 200, body, _JSON)

    async def _history_view(self, ex: _Exchange, route: Route, send: Send) -> None:
        """GET /status, /status.json, /metrics: public with gateway.status.public; else a gateway key, also as
        the HTTP Basic password (a browser's login prompt). A key sees the targets it may use; no rpm counted."""
        key: GatewayKey | None = None
        if not self.settings.status_public:
            try:
                key = await self.keys.authenticate(as_key_authorization(ex.header(b"authorization")))
            except GatewayError as exc:
                raise with_basic_challenge(exc) from None
            ex.key = key.name
        ex.status, body, headers = await self.history.answer(route.kind, key, route.query)
        ex.bytes_out = len(body)
        await _send_bytes(send, ex.status, body, headers, head=ex.method == "HEAD")

    async def _probe(self, ex: _Exchange, key: GatewayKey, route: Route, send: Send) -> None:
        """POST /probe: a round now, or handed to the probe function (shared/gateway/probe_route.py)."""
        ex.status, body = await self.on_demand.answer(key, route.query, ex.targets)
        ex.bytes_out = len(body)
        await _send_bytes(send, ex.status, body, _JSON)

    def _models_of(self, key: GatewayKey) -> list[str]:
        return [
            name for name, routes in self.settings.models.items()
            if key.allows_model(name) and any(key.allows_target(r.target) for r in routes)
        ]

    async def _passthrough(self, ex: _Exchange, key: GatewayKey, route: Route, body: bytes, send: Send) -> None:
        target = route.target
        assert target is not None
        ex.targets.append(target.name)  # key access and body size were checked when the body was read
        resp = await self._send_upstream(ex, target, route.upstream_path, _forwarded(ex.headers), body)
        await self._relay(ex, resp, send)

    async def _openai(self, ex: _Exchange, key: GatewayKey, route: Route, body: bytes, send: Send) -> None:
        """The OpenAI base URL: the body's model picks an ordered route list; failover down the list."""
        data = _json_object(body)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, ErrorType.INVALID_REQUEST, "missing_model",
                               "the request body needs a 'model' (GET /v1/models lists them)")
        ex.model = model
        routes = self.settings.models.get(model)
        if routes is None:
            allowed = ", ".join(self._models_of(key)) or "none"
            raise GatewayError(404, ErrorType.NOT_FOUND, "model_not_found",
                               f"model '{model}' is not served here; models this key may use: {allowed}")
        if not key.allows_model(model):
            raise GatewayError(403, ErrorType.PERMISSION, "model_not_allowed",
                               f"key '{key.name}' may not use model '{model}'")
        usable = [(self.targets[r.target], r.model) for r in routes
                  if r.target in self.targets and key.allows_target(r.target)]
        if not usable:
            raise GatewayError(403, ErrorType.PERMISSION, "target_not_allowed",
                               f"key '{key.name}' may use none of model '{model}''s targets")
        up = [u for u in usable if not self.health.is_down(u[0].name)]
        order = up or usable  # never refuse traffic because the probe says down: try them all then
        headers = _forwarded(ex.headers)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        too_large: GatewayError | None = None
        last: UpstreamError | None = None
        for i, (target, upstream_model) in enumerate(order):
            try:
                self._check_body(target, body)
            except GatewayError as exc:
                too_large = too_large or exc
                continue
            data["model"] = upstream_model
            payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
            ex.targets.append(target.name)
            path = upstream_path_for_model(target, route.openai_path)
            more = i + 1 < len(order)
            try:
                resp = await self._send_upstream(ex, target, path, headers, payload)
            except UpstreamError as exc:
                if not exc.failover or not more:
                    raise
                last = exc
                self._route_failover(ex, target, exc.code, order[i + 1][0])
                continue
            if resp.retryable and more:
                resp.abort()
                self._route_failover(ex, target, f"status {resp.status}", order[i + 1][0])
                continue
            await self._relay(ex, resp, send)
            return
        if last is not None:
            raise last
        assert too_large is not None
        raise too_large

    def _route_failover(self, ex: _Exchange, target: Target, reason: str, nxt: Target) -> None:
        entry = {"model": ex.model or "", "target": target.name, "reason": reason, "next": nxt.name}
        ex.trace.failovers.append(entry)
        self._log.warning("gateway_route_failover", **entry)

    async def _send_upstream(
        self, ex: _Exchange, target: Target, path_qs: str, headers: list[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        if self.upstream is None:
            await self.startup()
        assert self.upstream is not None
        return await self.upstream.send(target, ex.method, path_qs, headers, body or None, ex.trace)

    async def _relay(self, ex: _Exchange, resp: UpstreamResponse, send: Send) -> None:
        """Send the upstream's answer as it arrives; an upstream failure mid-body aborts the client's."""
        ex.status = resp.status
        ex.address = resp.address
        headers, sse, scan_json = _response_headers(resp.headers)
        if resp.status == 401 or (resp.status >= 400 and not _is_json(headers)):
            raise await _upstream_error(resp)
        keep = bytearray()
        try:
            await send({"type": "http.response.start", "status": resp.status, "headers": headers,
                        HOLD_HEAD: resp.at_hand})
            ex.response_started = True
            ex.ttfb_ms = (time.perf_counter() - ex.start) * 1000
            ended = False
            while (chunk := await resp.next_chunk()) is not None:
                ex.bytes_out += len(chunk)
                if sse:
                    keep += chunk
                    if len(keep) > 2 * SSE_TAIL_BYTES:
                        del keep[:-SSE_TAIL_BYTES]
                elif scan_json and len(keep) + len(chunk) <= USAGE_SCAN_BYTES:
                    keep += chunk
                else:
                    scan_json = False
                # The body's end came with this chunk (a small answer, a stream's last frame): one send ends it.
                ended = resp.drained
                if ended and ex.watch is not None:
                    ex.watch.stop()  # completing the response makes receive() say disconnect: not the client leaving
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
            if not ended:
                if ex.watch is not None:
                    ex.watch.stop()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException:
            resp.abort()
            raise
        resp.release()
        if resp.status >= 400:
            code = for_status(resp.status, kind=resp.target.kind, body=bytes(keep) if scan_json else b"")
            ex.code = code.value if code is not None else None
        if sse:
            ex.usage = _sse_usage(bytes(keep))
        elif scan_json:
            ex.usage = _json_usage(bytes(keep))

    async def _body(self, ex: _Exchange, route: Route, receive: Receive) -> bytes:
        """The request body, refused with 413 as soon as it is known to be over the limit."""
        limit = self._limit_for(route)
        declared = ex.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit[0]:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit[0]:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        ex.bytes_in = size
        return b"".join(chunks)

    def _limit_for(self, route: Route) -> tuple[int, str]:
        """(bytes, target kind) for reading: the target's kind, or the largest of a model route's kinds."""
        if route.target is not None:
            return self._kind_limit(route.target.kind), route.target.kind
        return self._model_route_limit

    def _kind_limit(self, kind: str) -> int:
        limits = self.settings.body_limit
        return limits.get(kind, DEFAULT_BODY_LIMITS.get(kind, DEFAULT_BODY_LIMITS["dashscope"]))

    def _check_body(self, target: Target, body: bytes) -> None:
        limit = self._kind_limit(target.kind)
        if len(body) > limit:
            raise _too_large((limit, target.kind), target.name)

    def _log_request(self, ex: _Exchange) -> None:
        fields: dict[str, Any] = {
            "key_name": ex.key,
            "route": ex.route.value if ex.route is not None else None,
            "method": ex.method,
            "path": ex.path,
            "status": ex.status,
            "targets": ex.targets,
            "addresses": ex.trace.addresses,
            "address": ex.address,
            "failovers": len(ex.trace.failovers),
            "ttfb_ms": round(ex.ttfb_ms, 3) if ex.ttfb_ms is not None else None,
            "total_ms": round((time.perf_counter() - ex.start) * 1000, 3),
            "bytes_in": ex.bytes_in,
            "bytes_out": ex.bytes_out,
        }
        if ex.model is not None:
            fields["model"] = ex.model
        if ex.code is not None:
            fields["code"] = ex.code
        if ex.trace.failovers:
            fields["failover_detail"] = ex.trace.failovers
        if ex.trace.credential_refreshed:
            fields["credential_refreshed"] = True
        if ex.error is not None:
            fields["error"] = ex.error
        if ex.usage:
            fields["usage"] = ex.usage
        logs.write_event("gateway_request", fields, verbatim=_OWN_FIELDS)  # per request: not structlog's chain


def create_app(config: Config, *, tokens: TokenProvider | None = None) -> GatewayApp:
    """The gateway for a loaded config; its `gateway:` section says who may call and the model routes."""
    if config.gateway is None:
        raise ConfigError([f"{config.path}: gateway: the section is missing: the gateway needs its keys"])
    if tokens is None:
        tokens = shared_provider()
        tokens.configure(config.cloud)
    return GatewayApp(config, config.gateway, tokens)


class _Exchange:
    """One request's facts, gathered for its log line (never the key, never a body)."""

    __slots__ = ("start", "method", "path", "headers", "route", "key", "model", "targets", "trace", "address",
                 "status", "code", "ttfb_ms", "bytes_in", "bytes_out", "usage", "response_started", "watch", "error")

    def __init__(self, scope: Scope) -> None:
        self.start = time.perf_counter()
        self.method: str = scope["method"]
        self.path: str = scope["path"]  # no query string: it may carry tokens
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.route: RouteKind | None = None
        self.key: str | None = None
        self.model: str | None = None
        self.targets: list[str] = []
        self.trace = UpstreamTrace()
        self.address: str | None = None
        self.status: int | None = None
        self.code: str | None = None
        self.ttfb_ms: float | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.usage: dict[str, int] | None = None
        self.response_started = False
        self.watch: _DisconnectWatch | None = None
        self.error: str | None = None  # an unexpected exception, type and message (the request's log line only)

    def header(self, name: bytes) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v.decode("latin-1")
        return None


class _ClientGone(VpcprobeError):
    """The client disconnected before its request body was complete: there is nobody to answer."""


class _DisconnectWatch:
    """Cancels the request's task when the client disconnects: the upstream request is cancelled with it.

    The server's DISCONNECT_HOOK (shared/gateway/server.py) tells it for free; under a server without it, a
    task waits for http.disconnect from receive() (a task and two loop passes per request)."""

    __slots__ = ("disconnected", "_task", "_watcher", "_unhook")

    def __init__(self, receive: Receive, hook: DisconnectHook | None = None) -> None:
        self.disconnected = False
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._unhook: Callable[[], None] | None = None
        if hook is not None:
            self._unhook = hook(self._lost)
        else:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    def _lost(self) -> None:
        if self._unhook is not None and self._task is not None:
            self._unhook = None
            self.disconnected = True
            self._task.cancel()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self._watcher is not None and self._task is not None:
                    self.disconnected = True
                    self._task.cancel()
                return

    def stop(self) -> None:
        """The response is complete (or failing on our side): a later disconnect is not the client leaving."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
        unhook, self._unhook = self._unhook, None
        if unhook is not None:
            unhook()


def _check_target(key: GatewayKey, target: Target) -> None:
    if not key.allows_target(target.name):
        raise GatewayError(403, ErrorType.PERMISSION, "target_not_allowed",
                           f"key '{key.name}' may not use target '{target.name}'")


def _uncancel() -> None:
    """Python 3.11+: the disconnect's cancel was handled; the task is not being cancelled any more."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


def _forwarded(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's request headers that go upstream: no hop-by-hop, credential, cookie or FC header."""
    named: set[bytes] = set()
    for k, v in headers:
        if k.lower() == b"connection":
            named.update(t.strip().lower() for t in v.split(b","))
    out = []
    for k, v in headers:
        name = k.lower()
        if name in _REQUEST_DROP or name in named or name.startswith(_DROP_PREFIXES):
            continue
        out.append((k.decode("latin-1"), v.decode("latin-1")))
    return out


def _response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
    """(headers for the client, is SSE, worth scanning for usage) from the upstream's raw headers.

    Content-Length passes only on a plain fixed-length answer: a stream goes out chunked, which is
    also how FC recognises a streaming response."""
    out: list[tuple[bytes, bytes]] = []
    chunked = sse = json_body = encoded = False
    length: bytes | None = None
    for k, v in raw:
        name = k.lower()
        if name == b"transfer-encoding":
            chunked = True
            continue
        if name == b"content-length":
            length = v
            continue
        if name in _RESPONSE_DROP or name.startswith(_DROP_PREFIXES):
            continue
        if name == b"content-disposition" and v.lower().lstrip().startswith(b"attachment"):
            continue
        if name == b"content-type":
            low = v.lower()
            sse = low.startswith(b"text/event-stream")
            json_body = b"json" in low
        elif name == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
            encoded = True
        out.append((name, v))
    if sse:
        out = [(k, v) for k, v in out if k not in (b"cache-control", b"x-accel-buffering")]
        out += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
    elif length is not None and not chunked:
        out.append((b"content-length", length))
    return out, sse and not encoded, json_body and not encoded


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and b"json" in v.lower() for k, v in headers)


async def _upstream_error(resp: UpstreamResponse) -> GatewayError:
    """The gateway's OpenAI-style error, with the probe's diagnosis, for an upstream answer the client cannot use
    as it is: a 401 (it rejects the credential the gateway injected, not the client's key: 502, so no SDK reads
    it as "your key is wrong") and any error that is not JSON (EAS gateway text, an empty 404). Other JSON error
    bodies pass untouched."""
    try:
        text = await resp.read(ERROR_BODY_BYTES)
    except GatewayError:
        text = b""
    if len(text) < ERROR_BODY_BYTES:
        resp.release()
    else:
        resp.abort()
    target = resp.target
    code = for_status(resp.status, kind=target.kind, body=text) or Code.UNEXPECTED_STATUS
    said = " ".join(text[:200].decode("utf-8", "replace").split())
    detail = f"{target.name} at {resp.address} answered {resp.status}" + (f": {said}" if said else " (empty body)")
    ep = target.endpoint
    diag = diagnose(code, detail, host=ep.host, port=ep.port, scheme=ep.scheme, region=ep.region, service=ep.service)
    status = 502 if resp.status == 401 else resp.status
    return GatewayError(status, ErrorType.UPSTREAM, code.value, diag.message, remedy=diag.remedy)


def _usage_of(obj: Any) -> dict[str, int] | None:
    """The integer counters of a `usage` object: token counts, never text."""
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return None
    counts = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    return counts or None


_USAGE_KEY = b'"usage"'


def _json_usage(body: bytes) -> dict[str, int] | None:
    if _USAGE_KEY not in body:
        return None  # not worth a parse (a models list, an answer without usage)
    try:
        return _usage_of(orjson.loads(body))
    except ValueError:
        return None


def _sse_usage(tail: bytes) -> dict[str, int] | None:
    """The usage of the last SSE frame that carries one (OpenAI's final chunk, DashScope's last event). Only
    frames that name `"usage"` are parsed: most streams carry it in one frame, or (no include_usage) none."""
    if _USAGE_KEY not in tail:
        return None
    for frame in reversed(tail.replace(b"\r\n", b"\n").split(b"\n\n")):
        if _USAGE_KEY not in frame:
            continue
        data = b"\n".join(line[5:].lstrip() for line in frame.split(b"\n") if line.startswith(b"data:"))
        if not data or data == b"[DONE]":
            continue
        try:
            usage = _usage_of(orjson.loads(data))
        except ValueError:
            continue
        if usage:
            return usage
    return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GatewayError(400, ErrorType.INVALID_REQUEST, "invalid_json",
                           "the request body must be a JSON object (with 'model')")
    return data


def _too_large(limit: tuple[int, str], target: str | None = None) -> GatewayError:
    size, kind = limit
    why = " (the EAS gateway refuses bigger bodies with 413)" if kind == "eas" else ""
    where = f"target '{target}' ({kind})" if target else f"{kind} targets"
    diag = diagnose(Code.BODY_TOO_LARGE)
    return GatewayError(
        413, ErrorType.INVALID_REQUEST, Code.BODY_TOO_LARGE.value,
        f"request body over the {_size(size)} limit of {where}{why}; nothing was sent upstream",
        remedy=diag.remedy,
    )


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


async def _send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool = False
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers, HOLD_HEAD: True})
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


async def _send_error(send: Send, exc: GatewayError) -> None:
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await _send_bytes(send, exc.status, exc.body(), _JSON + extra)
