"""Smoke tests of the served gateway (app + upstream + server) against the simulator; the SDK suites go deeper."""

from __future__ import annotations

import io
import json
import logging
import socket

import httpx
import pytest

from shared import logs
from shared.config.load import parse_config
from shared.credentials.provider import TokenProvider
from shared.gateway.app import GatewayApp, create_app
from shared.gateway.server import start_in_thread
from shared.gateway.upstream import UpstreamResponse
from shared.local.simulator import Fault, Simulator

ZONE_A, ZONE_B = "127.0.0.2", "127.0.0.3"
PL_HOST = "ep-smoke01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
GATEWAY_KEY = "gw-smoke-key-0123456789"
UPSTREAM_KEY = "sk-smoke-upstream-0123456789"


@pytest.fixture(scope="module")
def sim():
    with Simulator(hosts=(ZONE_A, ZONE_B), api_keys={UPSTREAM_KEY: "ap-southeast-1"}) as s:
        yield s


@pytest.fixture
def gateway(sim):
    yield from _serve(sim)


@pytest.fixture
def hookless_gateway(sim):
    """The gateway under uvicorn's own httptools protocol: no DISCONNECT_HOOK, so a task watches receive()."""
    yield from _serve(sim, http="httptools")


def _serve(sim, **overrides):
    sim.clear()
    environ = {"SMOKE_GATEWAY_KEY": GATEWAY_KEY, "SMOKE_UPSTREAM_KEY": UPSTREAM_KEY}
    config = parse_config(
        {
            "region": "ap-southeast-1",
            "resolve": {PL_HOST: [f"{ZONE_A}:{sim.port}", f"{ZONE_B}:{sim.port}"]},
            "targets": [
                {
                    "name": "qwen",
                    "kind": "dashscope",
                    "endpoint": f"http://{PL_HOST}",
                    "credential": "env:SMOKE_UPSTREAM_KEY",
                }
            ],
            "gateway": {
                "keys": [{"name": "smoke-app", "key": "env:SMOKE_GATEWAY_KEY"}],
                "models": {"plus": [{"target": "qwen", "model": "qwen-plus"}]},
                "timeouts": {"idle": "0.5s"},  # the stalled-stream case waits this long, no longer
            },
        }
    )
    stream = io.StringIO()
    logs.configure(stream=stream)
    server = start_in_thread(create_app(config, tokens=TokenProvider(environ=environ)), **overrides)
    try:
        yield server, stream
    finally:
        server.stop()
        logs.configure()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {GATEWAY_KEY}"}


def _request_lines(stream: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == "gateway_request"]


def test_healthz_answers_without_key_or_upstream(gateway, sim):
    server, _ = gateway
    before = len(sim.requests)
    resp = httpx.get(server.url + "/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert "date" not in resp.headers and "server" not in resp.headers
    assert len(sim.requests) == before


def test_passthrough_reaches_the_target_with_its_own_credential(gateway, sim):
    server, stream = gateway
    resp = httpx.get(server.url + "/qwen/compatible-mode/v1/models", headers=_auth())
    assert resp.status_code == 200
    assert "qwen-plus" in {m["id"] for m in resp.json()["data"]}
    seen = sim.requests[-1]
    assert seen["host"] == PL_HOST  # the real name, not the pinned address
    assert seen["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert GATEWAY_KEY not in json.dumps(seen)
    (line,) = _request_lines(stream)
    assert line["status"] == 200 and line["key_name"] == "smoke-app" and line["targets"] == ["qwen"]
    assert GATEWAY_KEY not in stream.getvalue() and UPSTREAM_KEY not in stream.getvalue()


def test_wrong_key_is_refused_before_any_upstream_request(gateway, sim):
    server, _ = gateway
    before = len(sim.requests)
    resp = httpx.get(server.url + "/qwen/compatible-mode/v1/models", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    assert len(sim.requests) == before


def test_stream_frames_arrive_chunked_with_usage_logged(gateway, sim):
    server, stream = gateway
    body = {"model": "plus", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi there"}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers=_auth(), json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-accel-buffering"] == "no"
        assert resp.headers["cache-control"] == "no-cache"
        assert "content-length" not in resp.headers
        frames = [line for line in resp.iter_lines() if line.startswith("data:")]
    assert frames[-1] == "data: [DONE]"
    assert 3 <= len(frames) <= 64
    assert json.loads(frames[0][5:])["model"] == "qwen-plus"  # the route's model name upstream
    (line,) = _request_lines(stream)
    assert line["route"] == "openai" and line["model"] == "plus"
    assert 1 <= line["usage"]["completion_tokens"] <= 64


def test_a_dead_zone_fails_over_to_the_other_address(gateway, sim):
    server, stream = gateway
    sim.set_host_down(ZONE_A)
    try:
        resp = httpx.get(server.url + "/qwen/compatible-mode/v1/models", headers=_auth())
    finally:
        sim.set_host_down(ZONE_A, False)
    assert resp.status_code == 200
    (line,) = _request_lines(stream)
    assert line["address"] == f"{ZONE_B}:{sim.port}"
    assert line["failovers"] == 1


def test_unreachable_target_answers_with_the_probe_diagnosis(gateway, sim):
    server, _ = gateway
    sim.set_host_down(ZONE_A)
    sim.set_host_down(ZONE_B)
    try:
        resp = httpx.get(server.url + "/qwen/compatible-mode/v1/models", headers=_auth())
    finally:
        sim.set_host_down(ZONE_A, False)
        sim.set_host_down(ZONE_B, False)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "connect_refused"
    assert error["remedy"]


@pytest.mark.parametrize("served", ["gateway", "hookless_gateway"])
def test_client_disconnect_cancels_the_upstream(served, sim, request):
    server, stream = request.getfixturevalue(served)
    sim.inject(Fault(route="/compatible-mode/v1/chat/completions", stall=True, times=1))
    body = json.dumps({"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(
            b"POST /qwen/compatible-mode/v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
            + f"Authorization: Bearer {GATEWAY_KEY}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert sim.wait_inflight(1)
    assert sim.wait_inflight(0)
    assert sim.requests[-1]["outcome"] == "disconnected"
    server.stop()
    (line,) = _request_lines(stream)
    assert line["status"] == 499 and line["code"] == "client_disconnected"


def test_absolute_form_request_target_is_refused(gateway, sim):
    server, _ = gateway
    before = len(sim.requests)
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(
            b"GET http://evil.example/qwen/compatible-mode/v1/models HTTP/1.1\r\nHost: evil.example\r\n"
            + f"Authorization: Bearer {GATEWAY_KEY}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"invalid_path" in answer
    assert len(sim.requests) == before


def test_a_stream_that_stalls_mid_body_aborts_the_client_connection(gateway, sim, caplog):
    server, stream = gateway
    sim.inject(Fault(route="/compatible-mode/v1/chat/completions", stream_stall_after=2, times=1))
    body = {"model": "plus", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    frames = []
    with (
        caplog.at_level(logging.ERROR, logger="uvicorn.error"),
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", server.url + "/v1/chat/completions", headers=_auth(), json=body) as resp,
    ):
        assert resp.status_code == 200
        frames.extend(line for line in resp.iter_lines() if line.startswith("data:"))
    assert len(frames) == 2  # what arrived before the stall reached the client at once
    assert sim.wait_inflight(0)
    assert sim.requests[-1]["outcome"] == "disconnected"  # the gateway closed the stalled upstream connection
    server.stop()
    (line,) = _request_lines(stream)
    assert line["status"] == 200 and line["code"] == "stream_stalled"
    assert not [r for r in caplog.records if r.name == "uvicorn.error"]  # no traceback for a broken upstream


def test_an_unexpected_exception_is_an_openai_style_500_and_one_log_line(gateway, sim, caplog, monkeypatch):
    """A bug in a route (here: /v1/models raising) must not reach uvicorn, which would answer a plain-text 500
    and log a traceback: the client gets the JSON error, and the request's line says what failed, redacted."""
    server, stream = gateway

    async def broken(self, ex, key, send):
        raise RuntimeError(f"boom while serving {key.name} with {GATEWAY_KEY}")

    monkeypatch.setattr(GatewayApp, "_models", broken)
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        resp = httpx.get(server.url + "/v1/models", headers=_auth())
        again = httpx.get(server.url + "/healthz")  # the gateway still serves
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": {"message": "the gateway failed on this request; its log line for the request "
                                                "says why", "type": "server_error", "code": "internal_error"}}
    assert again.status_code == 200
    assert not [r for r in caplog.records if r.name == "uvicorn.error"]
    server.stop()
    (line,) = _request_lines(stream)
    assert line["status"] == 500 and line["code"] == "internal_error" and line["key_name"] == "smoke-app"
    assert line["error"] == "RuntimeError: boom while serving smoke-app with ***"
    assert GATEWAY_KEY not in stream.getvalue()


def test_an_unexpected_exception_mid_response_aborts_the_connection(gateway, sim, caplog, monkeypatch):
    server, stream = gateway

    def broken(self):
        raise KeyError("bug after the response started")

    monkeypatch.setattr(UpstreamResponse, "drained", property(broken))
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"), pytest.raises(httpx.RemoteProtocolError):
        httpx.post(server.url + "/qwen/compatible-mode/v1/chat/completions", headers=_auth(), json=body)
    assert not [r for r in caplog.records if r.name == "uvicorn.error"]
    server.stop()
    (line,) = _request_lines(stream)
    assert line["status"] == 200 and line["code"] == "internal_error"
    assert line["error"] == "KeyError: 'bug after the response started'"
