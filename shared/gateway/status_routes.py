"""The answers of GET /status, /status.json and /metrics, and the browser's way to present a gateway key.

A browser cannot send `Authorization: Bearer`, but it asks for a user name and password when
answered 401 with `WWW-Authenticate: Basic`: the gateway key is accepted as that password (any
user name), and Prometheus can send it either way. The key is then checked exactly as on the proxy
routes (shared/gateway/keys.py). The page and the exposition load with the first request for them.

/status.json is by default what the page shows (~5 KiB a target); `points=full` adds every point of
24 h and every hourly aggregate of 30 days (~60 KiB a target at one round a minute), and `target=NAME`
(repeatable) narrows either to some targets. /status and /metrics take no parameters and ignore any.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl

from shared import logs
from shared.gateway import status_page
from shared.gateway.errors import ErrorType, GatewayError
from shared.gateway.history_cache import HistoryCache, HistorySnapshot, HistoryUnavailable
from shared.gateway.routes import RouteKind
from shared.gateway.settings import GatewayKey
from shared.text_enum import TextEnum

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="vpcprobe", charset="UTF-8"'}
_BASIC = "basic "
JSON_USAGE = "GET /status.json takes target=NAME (repeatable) and points=summary|full"
MAX_KEPT_BODIES = 32  # rendered bodies kept per snapshot (one per route, key and /status.json query)
_HEADERS = {
    RouteKind.STATUS: status_page.HEADERS,
    RouteKind.STATUS_JSON: [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    # the classic text format every Prometheus reads (Alibaba's Managed Service for Prometheus too); newer
    # prometheus_client versions announce 1.0.0 as their latest, which only Prometheus 3 negotiates
    RouteKind.METRICS: [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
}


def as_key_authorization(authorization: str | None) -> str | None:
    """An Authorization header as KeyRing.authenticate reads it: `Basic base64(user:key)` becomes
    `Bearer key`; any other value is passed on as it is (Bearer, or the raw key)."""
    if authorization is None or authorization.strip()[: len(_BASIC)].lower() != _BASIC:
        return authorization
    try:
        decoded = base64.b64decode(authorization.strip()[len(_BASIC) :].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise GatewayError(401, ErrorType.AUTHENTICATION, "invalid_api_key",
                           "the Basic credentials are not base64 of 'user:key' (UTF-8)",
                           headers=BASIC_CHALLENGE) from None
    password = decoded.partition(":")[2]
    return f"Bearer {password}" if password else None


class Resolution(TextEnum):
    """How much of the 24 h /status.json carries: the page's slots, or every point (and every hour)."""

    SUMMARY = "summary"
    FULL = "full"


@dataclass(frozen=True)
class JsonQuery:
    """What a GET /status.json asks for."""

    targets: tuple[str, ...] = ()  # as named, duplicates dropped; empty = every target the key may see
    points: Resolution = Resolution.SUMMARY


def parse_json_query(query: str, configured: Collection[str], key: GatewayKey | None) -> JsonQuery:
    """The query string of GET /status.json; GatewayError 400 naming a parameter that is unknown, repeated or
    has a bad value, 404 for a target that is not configured, 403 for one the key may not use."""
    targets: list[str] = []
    points: Resolution | None = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "target":
            if value not in configured:
                if not value:
                    raise _bad_query(f"target= needs a target name; {JSON_USAGE}")
                raise GatewayError(404, ErrorType.NOT_FOUND, "unknown_target", f"no target '{value[:100]}'")
            if key is not None and not key.allows_target(value):
                raise GatewayError(403, ErrorType.PERMISSION, "target_not_allowed",
                                   f"key '{key.name}' may not see target '{value}'")
            if value not in targets:
                targets.append(value)
        elif name == "points":
            if points is not None:
                raise _bad_query(f"'points' is given twice; {JSON_USAGE}")
            if value not in {r.value for r in Resolution}:
                raise _bad_query(f"points='{value[:60]}' is not summary or full; {JSON_USAGE}")
            points = Resolution(value)
        else:
            raise _bad_query(f"unknown query parameter '{name[:60]}'; {JSON_USAGE}")
    return JsonQuery(tuple(targets), points or Resolution.SUMMARY)


def with_basic_challenge(exc: GatewayError) -> GatewayError:
    """A refused key on a history route: a 401 also asks a browser to log in, and says how."""
    if exc.status != 401:
        return exc
    message = ("no gateway key: log in with a gateway key as the password (any user name), or send it as a "
               "bearer token" if exc.code == "missing_api_key" else exc.message)
    return GatewayError(401, exc.type, exc.code, message, headers={**exc.headers, **BASIC_CHALLENGE})


class HistoryRoutes:
    """The three routes over one HistoryCache. Each body is rendered in a worker thread (a thousand targets'
    page takes a few hundred ms of CPU: the event loop keeps relaying meanwhile) and kept for the snapshot it
    shows, per route, key and /status.json query, so browsers refreshing and Prometheus scraping cost one
    rendering per state_ttl."""

    def __init__(self, history: HistoryCache) -> None:
        self.history = history
        self._snapshot: HistorySnapshot | None = None  # the snapshot the kept bodies show
        self._rendered: dict[tuple[RouteKind, str | None, JsonQuery | None], bytes] = {}

    def warm_up(self) -> asyncio.Future[HistorySnapshot | HistoryUnavailable]:
        """Start reading the history in the background (at the gateway's startup), so that the first request
        after a cold start finds it read: a thousand targets' first read parses a day of raw hours."""
        return self.history.refresh()

    async def answer(
        self, kind: RouteKind, key: GatewayKey | None, query: str = ""
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """(status, body, headers) of a history route for `key` (None: public, every target)."""
        ask = parse_json_query(query, self.history.order, key) if kind is RouteKind.STATUS_JSON else None
        try:
            snapshot = await self.history.snapshot()
        except HistoryUnavailable as exc:
            if kind is RouteKind.STATUS:
                return 503, status_page.render_unavailable(str(exc)), status_page.HEADERS
            raise GatewayError(503, ErrorType.SERVER, "history_unavailable", str(exc)) from None
        if snapshot is not self._snapshot or len(self._rendered) >= MAX_KEPT_BODIES:
            self._snapshot, self._rendered = snapshot, {}
        slot = (kind, None if key is None else key.name, ask)
        body = self._rendered.get(slot)
        if body is None:
            allowed = _every_target if key is None else key.allows_target
            body = await asyncio.get_running_loop().run_in_executor(None, _render, kind, snapshot, allowed, ask)
            if snapshot is self._snapshot:
                self._rendered[slot] = body
        return 200, body, _HEADERS[kind]


def _render(kind: RouteKind, snapshot: HistorySnapshot, allowed: Callable[[str], bool], ask: JsonQuery | None) -> bytes:
    if kind is RouteKind.STATUS:
        return status_page.render(snapshot, allowed)
    if kind is RouteKind.METRICS:
        from shared.gateway import metrics  # prometheus_client loads with the first scrape

        return metrics.render(snapshot, allowed)
    assert ask is not None
    view = snapshot.view
    view = view.only({t.target for t in view.targets if allowed(t.target) and (not ask.targets or
                                                                                t.target in ask.targets)})
    data = view.full_dict() if ask.points is Resolution.FULL else view.summary_dict(time.time())
    return logs.redact_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False)).encode()


def _every_target(name: str) -> bool:
    return True


def _bad_query(message: str) -> GatewayError:
    return GatewayError(400, ErrorType.INVALID_REQUEST, "invalid_parameter", message)
