"""Streaming done right (issue 8): frames as they arrive, the right headers, and a client that goes away
cancels the upstream request (the simulator records the disconnect).

No timing is asserted: an upstream that sends two frames and then stalls proves there is no buffering
(a buffering gateway would never hand those two frames over), and the simulator's request outcome proves
the cancellation.
"""

from __future__ import annotations

import httpx
import pytest

from shared.local.simulator import EAS_MODEL, NATIVE_GENERATION, REPLY_TEXT, Fault
from tests.gateway.harness import KEY_ALL, sse_data

HI = [{"role": "user", "content": "say hi please"}]
AUTH = {"Authorization": f"Bearer {KEY_ALL}"}
AUTH_LINE = f"Authorization: Bearer {KEY_ALL}\r\n"
WORDS = REPLY_TEXT.split()
STALL_AFTER = 2


def read_frames(response: httpx.Response, count: int) -> list[str]:
    """Read SSE `data` payloads as they come until `count` have arrived (the read timeout bounds the wait)."""
    frames: list[str] = []
    buffer = ""
    for text in response.iter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            frames += sse_data(block + "\n\n")
        if len(frames) >= count:
            break
    return frames


def test_sse_response_headers(gw):
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/qwen-pl/compatible-mode/v1/chat/completions", headers=AUTH,
                        json={"model": "qwen-plus", "messages": HI, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers.get("x-accel-buffering") == "no"
    assert r.headers.get("cache-control") == "no-cache"
    assert "content-length" not in r.headers
    assert r.headers.get("transfer-encoding") == "chunked"
    assert sse_data(r.text)[-1] == "[DONE]"


def test_forbidden_and_hop_by_hop_response_headers_are_not_set(gw):
    with httpx.Client(timeout=15) as client:
        r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models", headers=AUTH)
    assert r.status_code == 200
    names = {k.lower() for k in r.headers}
    assert not {n for n in names if n.startswith("x-fc-")}
    assert "server" not in names and "date" not in names and "keep-alive" not in names


def test_request_ids_pass_both_ways(gw):
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/qwen-pl{NATIVE_GENERATION}", headers={**AUTH, "X-Request-Id": "req-from-client-1"},
                        json={"model": "qwen-plus", "input": {"prompt": "hi"}})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == r.json()["request_id"]  # the endpoint's id comes back
    [rec] = gw.arrived()
    assert rec["headers"].get("X-Request-Id") == "req-from-client-1"


def test_client_only_request_headers_are_dropped(gw):
    with httpx.Client(timeout=15) as client:
        r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models",
                       headers={**AUTH, "Cookie": "session=abc", "X-Fc-Request-Id": "fc-1", "Proxy-Authorization": "x",
                                "X-Custom-Trace": "t-1"})
    assert r.status_code == 200
    [rec] = gw.arrived()
    names = {k.lower() for k in rec["headers"]}
    assert not names & {"cookie", "x-fc-request-id", "proxy-authorization"}
    assert rec["headers"].get("X-Custom-Trace") == "t-1"


@pytest.mark.parametrize(
    ("path", "body", "route"),
    [
        ("qwen-pl/compatible-mode/v1/chat/completions", {"model": "qwen-plus", "stream": True}, "/compatible-mode/*"),
        ("llm-eas/v1/chat/completions", {"model": EAS_MODEL, "stream": True}, "/api/predict/*"),
        ("v1/chat/completions", {"model": "qwen-plus", "stream": True}, "/compatible-mode/*"),
        ("qwen-pl" + NATIVE_GENERATION, {"model": "qwen-plus", "input": {"prompt": "hi"},
                                         "parameters": {"incremental_output": True}}, "/api/v1/*"),
    ],
)
def test_frames_arrive_before_the_stream_ends_and_a_disconnect_cancels_upstream(gw, path, body, route):
    gw.sim.inject(Fault(route=route, stream_stall_after=STALL_AFTER))
    headers = {**AUTH, "X-DashScope-SSE": "enable"} if "/api/v1/" in path else AUTH
    with (httpx.Client(timeout=httpx.Timeout(15, read=10)) as client,
          client.stream("POST", f"{gw.url}/{path}", headers=headers, json={"messages": HI, **body}) as r):
        assert r.status_code == 200
        frames = read_frames(r, STALL_AFTER)
        assert len(frames) == STALL_AFTER  # delivered while the upstream is still open: no buffering
        assert WORDS[0] in frames[0]
    # leaving the block closed the connection mid-stream
    assert gw.sim.wait_inflight(0, timeout=10), "the upstream request was not cancelled"
    [rec] = gw.arrived()
    assert rec["outcome"] == "disconnected" and rec["frames"] == STALL_AFTER


def test_sdk_stream_closed_early_cancels_upstream(gw):
    gw.sim.inject(Fault(route="/compatible-mode/*", stream_stall_after=STALL_AFTER))
    stream = gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(
        model="qwen-plus", messages=HI, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.content == WORDS[0]
    stream.close()
    assert gw.sim.wait_inflight(0, timeout=10), "the upstream request was not cancelled"
    [rec] = gw.arrived()
    assert rec["outcome"] == "disconnected"


def test_after_a_disconnect_the_gateway_still_serves(gw):
    gw.sim.inject(Fault(route="/compatible-mode/*", stream_stall_after=1, times=1))
    with (httpx.Client(timeout=httpx.Timeout(15, read=10)) as client,
          client.stream("POST", f"{gw.url}/qwen-pl/compatible-mode/v1/chat/completions", headers=AUTH,
                        json={"model": "qwen-plus", "messages": HI, "stream": True}) as r):
        assert len(read_frames(r, 1)) == 1
    assert gw.sim.wait_inflight(0, timeout=10)
    reply = gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(model="qwen-plus", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT


def test_a_disconnect_before_the_first_byte_cancels_upstream(gw):
    """The upstream has not answered yet (stalled): the client hangs up, the upstream request must end too."""
    import socket

    gw.sim.inject(Fault(route="/compatible-mode/v1/models", stall=True))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(f"GET /qwen-pl/compatible-mode/v1/models HTTP/1.1\r\nHost: gw\r\n{AUTH_LINE}\r\n".encode())
        assert gw.sim.wait_inflight(1, timeout=10), "the request never reached the upstream"
    assert gw.sim.wait_inflight(0, timeout=10), "the upstream request was not cancelled"
    [rec] = gw.arrived()
    assert rec["outcome"] == "disconnected"
