"""Which route a request takes, and the request targets the gateway refuses before looking further.

Nothing in a request picks a host: the first path segment names a configured target (or one of
the gateway's own routes) and the rest is appended to that target's base URL. So the rest must not
be able to climb out of it or mean something else to the upstream than to us: dot segments (plain,
percent-encoded or double-encoded), empty segments, encoded slashes and backslashes, control
characters and absolute-form request targets are refused with 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from shared.gateway.errors import ErrorType, GatewayError
from shared.gateway.settings import RESERVED
from shared.text_enum import TextEnum

if TYPE_CHECKING:  # only the type: the routes read config.targets
    from shared.config.load import Config
    from shared.config.targets import Target

__all__ = ["RESERVED", "Route", "RouteKind", "route_request", "upstream_path_for_model"]

OPENAI_PATHS = frozenset({"chat/completions", "completions", "embeddings"})
DASHSCOPE_PREFIXES = ("/compatible-mode/v1/", "/api/v1/")
PASSTHROUGH_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_PASSTHROUGH_ALLOWED = tuple(sorted(PASSTHROUGH_METHODS))
_DECODE_ROUNDS = 3  # %252e%252e is ".." after two decodes; a third catches one more layer
# Anything _check_layer refuses: one search per layer, the checks that name the problem only when it matches.
_SUSPECT = re.compile(r"[\x00-\x1f\x7f\\#]|//|\.\.|(?:^|/)\.(?:/|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_QUERY = re.compile(r"[\x00-\x20\x7f#]")


class RouteKind(TextEnum):
    HEALTH = "health"
    PASSTHROUGH = "passthrough"
    OPENAI = "openai"
    MODELS = "models"
    PROBE = "probe"  # POST /probe: a probe round on demand (shared/gateway/probe_route.py)
    STATUS = "status"  # GET /status: the HTML status page
    STATUS_JSON = "status_json"  # GET /status.json: the same data
    METRICS = "metrics"  # GET /metrics: Prometheus text exposition


# The read-only views of the probe history (shared/gateway/status_page.py, metrics.py).
STATUS_ROUTES = {"status": RouteKind.STATUS, "status.json": RouteKind.STATUS_JSON, "metrics": RouteKind.METRICS}


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    target: Target | None = None  # PASSTHROUGH
    upstream_path: str = ""  # PASSTHROUGH: path (+ "?query") to append to target.endpoint.base_url
    openai_path: str = ""  # OPENAI: "chat/completions" | "completions" | "embeddings"
    query: str = ""  # PROBE, STATUS, STATUS_JSON, METRICS: the query string, as sent (?target=...)


def route_request(method: str, raw_path: bytes, query_string: bytes, config: Config) -> Route:
    """The route of a request, from the raw request target (never a decoded one); GatewayError otherwise."""
    path = _checked_path(raw_path)
    query = _checked_query(query_string)
    first, _, rest = path[1:].partition("/")
    if first == "healthz" and not rest:
        _allow(method, ("GET", "HEAD"), path)
        return Route(RouteKind.HEALTH)
    if first == "v1":
        return _openai_route(method, rest, path)
    if first in STATUS_ROUTES and not rest:
        _allow(method, ("GET", "HEAD"), path)
        return Route(STATUS_ROUTES[first], query=query)
    if first == "probe" and not rest:
        _allow(method, ("POST",), path)
        return Route(RouteKind.PROBE, query=query)
    if first in RESERVED or not first:
        raise _unknown_route(path)
    target = _targets_by_name(config).get(first)
    if target is None:
        configured = ", ".join(sorted(t.name for t in config.targets)) or "none"
        raise GatewayError(
            404, ErrorType.NOT_FOUND, "unknown_target", f"no target '{first}'; configured targets: {configured}"
        )
    _allow(method, _PASSTHROUGH_ALLOWED, path)
    upstream = "/" + rest if rest or path.endswith("/") else ""
    if target.kind == "dashscope" and not upstream.startswith(DASHSCOPE_PREFIXES):
        raise GatewayError(
            404,
            ErrorType.NOT_FOUND,
            "unknown_route",
            f"DashScope target '{target.name}' takes /{target.name}/compatible-mode/v1/... (OpenAI-compatible) "
            f"or /{target.name}/api/v1/... (DashScope API), not {path}",
        )
    return Route(RouteKind.PASSTHROUGH, target=target, upstream_path=upstream + (f"?{query}" if query else ""))


def upstream_path_for_model(target: Target, openai_path: str) -> str:
    """The upstream path of an OpenAI base URL call on `target`: DashScope's compatible mode, or EAS's /v1."""
    if target.kind == "dashscope":
        return "/compatible-mode/v1/" + openai_path
    return "/v1/" + openai_path


def _openai_route(method: str, rest: str, path: str) -> Route:
    if rest == "models":
        _allow(method, ("GET",), path)
        return Route(RouteKind.MODELS)
    if rest in OPENAI_PATHS:
        _allow(method, ("POST",), path)
        return Route(RouteKind.OPENAI, openai_path=rest)
    raise _unknown_route(path)


def _allow(method: str, allowed: tuple[str, ...], path: str) -> None:
    if method not in allowed:
        raise GatewayError(
            405,
            ErrorType.INVALID_REQUEST,
            "method_not_allowed",
            f"{method} is not allowed on {path}; allowed: {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


def _unknown_route(path: str) -> GatewayError:
    return GatewayError(
        404,
        ErrorType.NOT_FOUND,
        "unknown_route",
        f"no route {path}: the gateway serves /healthz, /v1/chat/completions, /v1/completions, /v1/embeddings, "
        "GET /v1/models and /<target>/<path>",
    )


def _invalid(what: str) -> GatewayError:
    return GatewayError(400, ErrorType.INVALID_REQUEST, "invalid_path", f"refused request target: {what}")


def _checked_path(raw_path: bytes) -> str:
    """The raw path as text, after refusing every form that could mean another path upstream."""
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid("bytes outside ASCII (percent-encode them)") from None
    if not path.startswith("/"):
        raise _invalid("not origin-form: the request target must start with '/' (absolute-form is refused)")
    if " " in path:
        raise _invalid("space (percent-encode it as %20)")
    slashes = path.count("/")
    text = path
    for _ in range(_DECODE_ROUNDS):
        _check_layer(text)
        if text.count("/") != slashes:
            raise _invalid("encoded slash (%2F)")
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded
    else:
        raise _invalid(f"percent-encoding nested more than {_DECODE_ROUNDS - 1} levels deep")
    return path


_by_name: tuple[object, dict[str, Target]] = (None, {})


def _targets_by_name(config: Config) -> dict[str, Target]:
    """config.targets by name, built once per config (a request names its target: no scan of the list)."""
    global _by_name
    targets, by_name = _by_name
    if targets is not config.targets:
        by_name = {t.name: t for t in config.targets}
        _by_name = (config.targets, by_name)
    return by_name


def _check_layer(text: str) -> None:
    """One decoding layer of a path: no control characters, backslashes, empty or dot segments."""
    if not _SUSPECT.search(text):
        return
    if _CONTROL.search(text):
        raise _invalid("control character")
    if "\\" in text:
        raise _invalid("backslash")
    if "#" in text:
        raise _invalid("fragment in the request target")
    if "//" in text:
        raise _invalid("empty path segment (//)")
    if ".." in text or any(segment == "." for segment in text.split("/")):
        raise _invalid("dot segment (.. or .)")


def _checked_query(query_string: bytes) -> str:
    """The query as sent, refused when it holds bytes no valid request target has."""
    try:
        query = query_string.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid("bytes outside ASCII in the query (percent-encode them)") from None
    if _BAD_QUERY.search(query):
        raise _invalid("control character, space or '#' in the query")
    return query
