"""Routing from the raw request target: the gateway's own routes, passthrough to configured targets only,
and every traversal or smuggling form refused before any target is looked at."""

from __future__ import annotations

import json

import pytest

from shared.config.load import Config, parse_config
from shared.gateway.errors import GatewayError
from shared.gateway.routes import RESERVED, Route, RouteKind, route_request, upstream_path_for_model

CONFIG: Config = parse_config(
    {
        "targets": [
            {"name": "qwen", "kind": "dashscope", "endpoint": "http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"},
            {
                "name": "llm",
                "kind": "eas",
                "endpoint": "http://1234567890.vpc.cn-beijing.pai-eas.aliyuncs.com/api/predict/llm",
            },
        ],
        "gateway": {"keys": [{"name": "app", "key": "env:GW_KEY"}]},
    }
)
QWEN, LLM = CONFIG.targets


def route(method: str, path: bytes, query: bytes = b"") -> Route:
    return route_request(method, path, query, CONFIG)


def refused(method: str, path: bytes, query: bytes = b"") -> GatewayError:
    with pytest.raises(GatewayError) as info:
        route(method, path, query)
    return info.value


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_healthz(method):
    assert route(method, b"/healthz") == Route(RouteKind.HEALTH)


@pytest.mark.parametrize("openai_path", ["chat/completions", "completions", "embeddings"])
def test_openai_base_url(openai_path):
    assert route("POST", f"/v1/{openai_path}".encode(), b"x=1") == Route(RouteKind.OPENAI, openai_path=openai_path)


def test_models_list():
    assert route("GET", b"/v1/models") == Route(RouteKind.MODELS)


@pytest.mark.parametrize(
    "path,query,upstream",
    [
        (b"/qwen/compatible-mode/v1/chat/completions", b"", "/compatible-mode/v1/chat/completions"),
        (b"/qwen/compatible-mode/v1/models", b"limit=5", "/compatible-mode/v1/models?limit=5"),
        (b"/qwen/api/v1/services/aigc/text-generation/generation", b"", "/api/v1/services/aigc/text-generation/"
         "generation"),
        (b"/qwen/api/v1/tasks/abc-123", b"", "/api/v1/tasks/abc-123"),
    ],
)
def test_dashscope_passthrough(path, query, upstream):
    assert route("POST", path, query) == Route(RouteKind.PASSTHROUGH, target=QWEN, upstream_path=upstream)


@pytest.mark.parametrize(
    "path,query,upstream",
    [
        (b"/llm/v1/chat/completions", b"", "/v1/chat/completions"),
        (b"/llm/v1/models", b"a=b%20c&d", "/v1/models?a=b%20c&d"),
        (b"/llm/predict/my%20model", b"", "/predict/my%20model"),  # kept encoded, as sent
        (b"/llm/", b"", "/"),
        (b"/llm", b"", ""),  # the service's base URL itself (custom processors)
        (b"/llm", b"q=1", "?q=1"),
    ],
)
def test_eas_passthrough(path, query, upstream):
    assert route("POST", path, query) == Route(RouteKind.PASSTHROUGH, target=LLM, upstream_path=upstream)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_passthrough_methods(method):
    assert route(method, b"/llm/v1/models").kind == RouteKind.PASSTHROUGH


def test_upstream_path_for_model():
    assert upstream_path_for_model(QWEN, "chat/completions") == "/compatible-mode/v1/chat/completions"
    assert upstream_path_for_model(LLM, "embeddings") == "/v1/embeddings"
    assert QWEN.endpoint.base_url + upstream_path_for_model(QWEN, "completions") == (
        "http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com/compatible-mode/v1/completions"
    )
    assert LLM.endpoint.base_url + upstream_path_for_model(LLM, "chat/completions") == (
        "http://1234567890.vpc.cn-beijing.pai-eas.aliyuncs.com/api/predict/llm/v1/chat/completions"
    )


@pytest.mark.parametrize(
    "path",
    [
        b"/qwen/../llm/v1/models",
        b"/llm/v1/../../other",
        b"/llm/..",
        b"/..",
        b"/llm/v1/x..y",  # strict: no '..' anywhere
        b"/llm/./v1/models",
        b"/llm/v1/.",
        b"/llm/%2e%2e/x",
        b"/llm/%2E%2e/x",
        b"/llm/.%2E/x",
        b"/llm/%2e/x",
        b"/llm/%252e%252e/x",  # double-encoded
        b"/llm/%25252e%25252e/x",
        b"/llm//v1/models",
        b"//llm/v1/models",
    ],
)
def test_traversal_is_refused(path):
    error = refused("GET", path)
    assert (error.status, error.type.value, error.code) == (400, "invalid_request_error", "invalid_path")


@pytest.mark.parametrize(
    "path,what",
    [
        (b"/llm/v1%2fmodels", "encoded slash"),
        (b"/llm/v1%2Fmodels", "encoded slash"),
        (b"/llm/v1%252fmodels", "encoded slash"),
        (b"/llm/v1%5cmodels", "backslash"),
        (b"/llm/v1%5Cmodels", "backslash"),
        (b"/llm/v1\\models", "backslash"),
        (b"/llm/v1/models\x00", "control character"),
        (b"/llm/v1/models%00", "control character"),
        (b"/llm/v1/models%0d%0aX-Injected:%201", "control character"),
        (b"/llm/v1/mo dels", "space"),
        (b"/llm/v1/models\x7f", "control character"),
        (b"/llm/v1/models#frag", "fragment"),
        (b"/llm/v1/mod\xc3\xa9ls", "outside ASCII"),
        (b"http://evil.example/llm/v1/models", "absolute-form"),
        (b"llm/v1/models", "absolute-form"),
        (b"*", "absolute-form"),
        (b"", "absolute-form"),
        (b"/llm/%2525252e", "nested"),
    ],
)
def test_smuggling_forms_are_refused(path, what):
    error = refused("GET", path)
    assert (error.status, error.code) == (400, "invalid_path")
    assert what in error.message


@pytest.mark.parametrize("query", [b"a=1\x00", b"a=1 b", b"a=\r\nX: y", b"a=\xff", b"a#b"])
def test_bad_queries_are_refused(query):
    error = refused("GET", b"/llm/v1/models", query)
    assert (error.status, error.code) == (400, "invalid_path")


def test_refusal_comes_before_target_lookup():
    assert refused("GET", b"/nope/../llm").code == "invalid_path"


def test_trailing_slash_is_kept():
    assert route("GET", b"/llm/v1/models/").upstream_path == "/v1/models/"


def test_unknown_target_names_the_configured_ones():
    error = refused("POST", b"/gpt/v1/chat/completions")
    assert (error.status, error.type.value, error.code) == (404, "not_found_error", "unknown_target")
    assert error.message == "no target 'gpt'; configured targets: llm, qwen"
    assert json.loads(error.body()) == {
        "error": {"message": error.message, "type": "not_found_error", "code": "unknown_target"}
    }


def test_target_names_match_exactly():
    assert refused("GET", b"/QWEN/api/v1/x").code == "unknown_target"
    assert refused("GET", b"/%71wen/api/v1/x").code == "unknown_target"


@pytest.mark.parametrize(
    "path",
    [b"/qwen/v1/chat/completions", b"/qwen/compatible-mode/v2/x", b"/qwen", b"/qwen/", b"/qwen/api/v1"],
)
def test_dashscope_takes_its_two_prefixes_only(path):
    error = refused("POST", path)
    assert (error.status, error.code) == (404, "unknown_route")
    assert "/qwen/compatible-mode/v1/..." in error.message and "/qwen/api/v1/..." in error.message


@pytest.mark.parametrize(
    "path",
    [b"/", b"/v1", b"/v1/", b"/v1/chat", b"/v1/files", b"/v1/models/qwen", b"/healthz/x", b"/probe/x", b"/status/x",
     b"/status.json/x", b"/metrics/x", b"/_gw", b"/_gw/x"],
)
def test_unknown_routes(path):
    error = refused("GET", path)
    assert (error.status, error.type.value, error.code) == (404, "not_found_error", "unknown_route")


def test_reserved_names():
    assert {"healthz", "v1", "probe", "status", "status.json", "metrics", "_gw"} == set(RESERVED)


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("POST", b"/v1/models", "GET"),
        ("GET", b"/v1/chat/completions", "POST"),
        ("DELETE", b"/v1/embeddings", "POST"),
        ("POST", b"/healthz", "GET, HEAD"),
        ("TRACE", b"/llm/v1/models", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
        ("CONNECT", b"/qwen/api/v1/x", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
    ],
)
def test_method_not_allowed(method, path, allowed):
    error = refused(method, path)
    assert (error.status, error.type.value, error.code) == (405, "invalid_request_error", "method_not_allowed")
    assert error.headers == {"Allow": allowed}


def _app_routes(monkeypatch):
    """The app's route lookup, counting how often routing itself runs."""
    from shared.credentials.provider import TokenProvider
    from shared.gateway import app as app_module

    calls = []
    real = app_module.route_request

    def counted(*args):
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(app_module, "route_request", counted)
    app = app_module.create_app(CONFIG, tokens=TokenProvider(environ={}))

    def lookup(method: str, path: bytes, query: bytes = b"") -> Route:
        return app._route({"method": method, "raw_path": path, "path": path.decode(), "query_string": query,
                           "headers": []})

    return app, lookup, calls


def test_the_app_routes_a_request_target_once_and_every_refusal_each_time(monkeypatch):
    app, lookup, calls = _app_routes(monkeypatch)
    path = b"/qwen/compatible-mode/v1/chat/completions"
    assert lookup("POST", path) == lookup("POST", path) == route("POST", path)
    assert calls == [path]
    assert lookup("POST", path, b"a=1") == route("POST", path, b"a=1") and calls == [path, path]  # the query counts
    assert lookup("GET", b"/qwen/api/v1/x").kind is RouteKind.PASSTHROUGH and len(calls) == 3  # so does the method
    for _ in range(2):
        with pytest.raises(GatewayError):
            lookup("POST", b"/qwen/compatible-mode/v1/../../x")
    assert len(calls) == 5


def test_the_apps_route_cache_is_bounded_and_skips_long_targets(monkeypatch):
    from shared.gateway.app import ROUTE_CACHE_KEY_BYTES, ROUTE_CACHE_SIZE

    app, lookup, calls = _app_routes(monkeypatch)
    for i in range(ROUTE_CACHE_SIZE + 3):
        lookup("POST", b"/qwen/api/v1/n%d" % i)
    assert 0 < len(app._routes) <= ROUTE_CACHE_SIZE
    long_path = b"/qwen/api/v1/" + b"x" * ROUTE_CACHE_KEY_BYTES
    lookup("POST", long_path)
    lookup("POST", long_path)
    assert calls.count(long_path) == 2 and all(key[1] != long_path for key in app._routes)
