"""The answers of GET /status, /status.json and /metrics, and the browser's way to present a gateway key.

A browser cannot send `Authorization: Bearer`, but it asks for a user name and password when
answered 401 with `WWW-Authenticate: Basic`: the gateway key is accepted as that password (any
user name), and Prometheus can send it either way. The key is then checked exactly as on the proxy
routes (shared/gateway/keys.py). The page and the exposition load with the first request for them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable

from shared import logs
from shared.gateway import status_page
from shared.gateway.errors import ErrorType, GatewayError
from shared.gateway.history_cache import HistoryCache, HistorySnapshot, HistoryUnavailable
from shared.gateway.routes import RouteKind
from shared.gateway.settings import GatewayKey

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="vpcprobe", charset="UTF-8"'}
_BASIC = "basic "
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


def with_basic_challenge(exc: GatewayError) -> GatewayError:
    """A refused key on a history route: a 401 also asks a browser to log in, and says how."""
    if exc.status != 401:
        return exc
    message = ("no gateway key: log in with a gateway key as the password (any user name), or send it as a "
               "bearer token" if exc.code == "missing_api_key" else exc.message)
    return GatewayError(401, exc.type, exc.code, message, headers={**exc.headers, **BASIC_CHALLENGE})


class HistoryRoutes:
    """The three routes over one HistoryCache. Each body is rendered in a worker thread (a thousand targets'
    page takes about a second of CPU: the event loop keeps relaying meanwhile) and kept for the snapshot it
    shows, per route and key, so browsers refreshing and Prometheus scraping cost one rendering per state_ttl."""

    def __init__(self, history: HistoryCache) -> None:
        self.history = history
        self._rendered: dict[tuple[RouteKind, str | None], tuple[HistorySnapshot, bytes]] = {}

    async def answer(self, kind: RouteKind, key: GatewayKey | None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """(status, body, headers) of a history route for `key` (None: public, every target)."""
        try:
            snapshot = await self.history.snapshot()
        except HistoryUnavailable as exc:
            if kind is RouteKind.STATUS:
                return 503, status_page.render_unavailable(str(exc)), status_page.HEADERS
            raise GatewayError(503, ErrorType.SERVER, "history_unavailable", str(exc)) from None
        slot = (kind, None if key is None else key.name)
        kept = self._rendered.get(slot)
        if kept is not None and kept[0] is snapshot:
            body = kept[1]
        else:
            allowed = _every_target if key is None else key.allows_target
            body = await asyncio.get_running_loop().run_in_executor(None, _render, kind, snapshot, allowed)
            self._rendered[slot] = (snapshot, body)
        return 200, body, _HEADERS[kind]


def _render(kind: RouteKind, snapshot: HistorySnapshot, allowed: Callable[[str], bool]) -> bytes:
    if kind is RouteKind.STATUS:
        return status_page.render(snapshot, allowed)
    if kind is RouteKind.METRICS:
        from shared.gateway import metrics  # prometheus_client loads with the first scrape

        return metrics.render(snapshot, allowed)
    data = snapshot.view.to_dict()
    data["targets"] = [t for t in data.get("targets", []) if allowed(t.get("target", ""))]
    return logs.redact_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False)).encode()


def _every_target(name: str) -> bool:
    return True
