"""Tests for the simulator (shared/simulator.py), driven over real loopback sockets with httpx."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import time
import uuid

import httpx
import pytest

from shared.local.simulator import DASHSCOPE_MODELS, EAS_MODEL, REPLY_TEXT, Fault, Simulator

TLS_NAME = "dashscope-vpc.ap-southeast-1.aliyuncs.com"
GOOD = {"Authorization": "Bearer sk-good"}
EAS = {"Authorization": "eas-token-1"}
MODELS = "/compatible-mode/v1/models"
CHAT = "/compatible-mode/v1/chat/completions"
NATIVE = "/api/v1/services/aigc/text-generation/generation"
EAS_CHAT = "/api/predict/test/v1/chat/completions"
WORDS = REPLY_TEXT.split()
MB = 1024 * 1024
PLAIN_TLS = ssl.create_default_context()  # shared: building one per httpx.Client costs ~50 ms


def http_client(**kwargs) -> httpx.Client:
    return httpx.Client(**{"timeout": 5, "verify": PLAIN_TLS, **kwargs})


@pytest.fixture(scope="module")
def sim():
    s = Simulator(tls_hostnames=(TLS_NAME,), eas_services={"test": "eas-token-1", "grp.svc": "tok-2"}).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def zones():
    s = Simulator(hosts=("127.0.0.2", "127.0.0.3")).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _no_faults(sim):
    sim.clear()
    yield
    sim.clear()


@pytest.fixture
def client(sim):
    with http_client(base_url=sim.url()) as c:
        yield c


def chat_body(**extra):
    return {"model": "qwen-flash", "messages": [{"role": "user", "content": "say hi please"}], **extra}


def native_body(**params):
    return {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hi there"}]},
            "parameters": {"result_format": "message", **params}}


def openai_frames(text: str) -> list[str]:
    """The data payloads of an OpenAI-style SSE body; every block must be exactly one ``data: `` line."""
    blocks = text.split("\n\n")
    assert blocks[-1] == ""
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks[:-1]), blocks
    return [b[len("data: "):] for b in blocks[:-1]]


def native_frames(text: str) -> list[tuple[int, str, int, dict]]:
    """(id, event, status, data) of DashScope native SSE frames, checked against the exact no-space format."""
    blocks = text.split("\n\n")
    assert blocks[-1] == ""
    out = []
    for block in blocks[:-1]:
        m = re.fullmatch(r"id:(\d+)\nevent:(result|error)\n:HTTP_STATUS/(\d+)\ndata:(\{.*\})", block)
        assert m, block
        out.append((int(m[1]), m[2], int(m[3]), json.loads(m[4])))
    return out


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


# ---------------------------------------------------------------- DashScope auth and models


def test_models_with_good_key(client):
    r = client.get(MODELS, headers=GOOD)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(DASHSCOPE_MODELS)
    assert body["data"][0] == {"id": "qwen-flash", "object": "model", "owned_by": "system"}


@pytest.mark.parametrize("auth", [None, "Bearer sk-unknown", "Bearer sk-beijing", "sk-good"],
                         ids=["missing", "unknown", "other-region", "no-bearer"])
def test_bad_keys_get_401_in_both_modes(client, auth):
    headers = {"Authorization": auth} if auth else {}
    r = client.get(MODELS, headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert set(body) == {"error", "request_id"} and is_uuid(body["request_id"])
    assert body["error"] == {"message": "Incorrect API key provided. ", "type": "invalid_request_error",
                             "param": None, "code": "invalid_api_key"}
    r = client.post(NATIVE, headers=headers, json=native_body())
    assert r.status_code == 401
    body = r.json()
    assert set(body) == {"code", "message", "request_id"} and is_uuid(body["request_id"])
    assert (body["code"], body["message"]) == ("InvalidApiKey", "Invalid API-key provided.")


def test_region_bound_keys():
    with Simulator(region="cn-beijing") as s, http_client(base_url=s.url()) as c:
        assert c.get(MODELS, headers={"Authorization": "Bearer sk-beijing"}).status_code == 200
        assert c.get(MODELS, headers=GOOD).status_code == 401


# ---------------------------------------------------------------- compatible-mode chat


def test_compat_chat_non_stream(client):
    r = client.post(CHAT, headers=GOOD, json=chat_body())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "qwen-flash"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": REPLY_TEXT}
    assert body["choices"][0]["finish_reason"] == "stop"
    n = len(WORDS)
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}


def test_compat_chat_honours_max_tokens(client):
    body = client.post(CHAT, headers=GOOD, json=chat_body(max_tokens=3)).json()
    assert body["choices"][0]["message"]["content"] == " ".join(WORDS[:3])
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("payload, status, code", [
    ({"model": "qwen-flash", "messages": []}, 400, "invalid_parameter_error"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "invalid_parameter_error"),
    ("not json", 400, "invalid_parameter_error"),
    (chat_body(max_tokens=0), 400, "invalid_parameter_error"),
    (chat_body(model="gpt-4o"), 404, "model_not_found"),
])
def test_compat_chat_rejects_bad_requests(client, payload, status, code):
    content = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    r = client.post(CHAT, headers=GOOD, content=content)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code


def test_compat_chat_stream(client):
    with client.stream("POST", CHAT, headers=GOOD, json=chat_body(stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = openai_frames(r.read().decode())
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert len(chunks) == len(WORDS)  # one frame per token, no usage chunk unless asked
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == REPLY_TEXT
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(WORDS) - 1) + ["stop"]


def test_compat_chat_stream_include_usage(client):
    payload = chat_body(stream=True, max_tokens=2, stream_options={"include_usage": True})
    frames = openai_frames(client.post(CHAT, headers=GOOD, json=payload).text)
    assert frames[-1] == "[DONE]"
    usage = json.loads(frames[-2])
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 2,
                                                         "total_tokens": 5}
    assert json.loads(frames[-3])["choices"][0]["finish_reason"] == "length"
    assert len(frames) == 2 + 2


def test_stream_frames_are_flushed_one_by_one(client, sim):
    sim.inject(Fault(route=CHAT, stream_delay_ms=60))
    arrivals = []
    with client.stream("POST", CHAT, headers=GOOD, json=chat_body(stream=True, max_tokens=4)) as r:
        for line in r.iter_lines():
            if line:
                arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals][-1] == "data: [DONE]"
    assert len(arrivals) == 5
    # Four 60 ms gaps between the five frames: had the server buffered, they would arrive together.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2


# ---------------------------------------------------------------- native generation


def test_native_chat_non_stream(client):
    r = client.post(NATIVE, headers=GOOD, json=native_body(max_tokens=4))
    assert r.status_code == 200
    body = r.json()
    assert body["output"] == {"choices": [{"finish_reason": "length", "message": {
        "role": "assistant", "content": " ".join(WORDS[:4])}}]}
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 4, "total_tokens": 6}
    assert is_uuid(body["request_id"])


def test_native_rejects_bad_requests(client):
    r = client.post(NATIVE, headers=GOOD, json={"model": "qwen-plus", "input": {}})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"
    r = client.post(NATIVE, headers=GOOD, json={**native_body(), "model": "nope"})
    assert r.status_code == 404 and r.json()["code"] == "ModelNotFound"
    r = client.post("/api/v1/services/unknown", headers=GOOD, json=native_body())
    assert r.status_code == 404 and set(r.json()) == {"code", "message", "request_id"}
    r = client.get("/compatible-mode/v1/nothing-here", headers=GOOD)
    assert r.status_code == 404 and "error" in r.json()


def test_native_sse_cumulative(client):
    r = client.post(NATIVE, headers={**GOOD, "X-DashScope-SSE": "enable"}, json=native_body())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in r.text and "data: " not in r.text
    frames = native_frames(r.text)
    assert [f[0] for f in frames] == list(range(1, len(WORDS) + 1))
    assert {(f[1], f[2]) for f in frames} == {("result", 200)}
    contents = [f[3]["output"]["choices"][0]["message"]["content"] for f in frames]
    assert contents == [" ".join(WORDS[:i]) for i in range(1, len(WORDS) + 1)]
    reasons = [f[3]["output"]["choices"][0]["finish_reason"] for f in frames]
    assert reasons == ["null"] * (len(WORDS) - 1) + ["stop"]
    assert frames[-1][3]["usage"]["output_tokens"] == len(WORDS)
    assert len({f[3]["request_id"] for f in frames}) == 1


def test_native_sse_incremental_via_accept_header(client):
    headers = {**GOOD, "Accept": "text/event-stream"}
    r = client.post(NATIVE, headers=headers, json=native_body(incremental_output=True, max_tokens=3))
    frames = native_frames(r.text)
    contents = [f[3]["output"]["choices"][0]["message"]["content"] for f in frames]
    assert contents == ["Hello", " from", " the"]
    assert frames[-1][3]["output"]["choices"][0]["finish_reason"] == "length"


# ---------------------------------------------------------------- EAS gateway


@pytest.mark.parametrize("path, auth", [
    ("/api/predict/test/v1/models", "eas-token-1"),
    ("/api/predict/test/v1/models", "Bearer eas-token-1"),
    ("/api/predict/grp.svc/v1/models", "tok-2"),
])
def test_eas_models_with_raw_and_bearer_token(client, path, auth):
    r = client.get(path, headers={"Authorization": auth})
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == [EAS_MODEL]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}, {"Authorization": "Bearer tok-2"}])
def test_eas_wrong_token_is_plain_401(client, headers):
    r = client.get("/api/predict/test/v1/models", headers=headers)
    assert (r.status_code, r.text) == (401, "Unauthorized")


def test_eas_unknown_service_is_empty_404(client, sim):
    r = client.get("/api/predict/nope/v1/models", headers=EAS)
    assert (r.status_code, r.content) == (404, b"")
    # Inside a running service an unknown path is the *service's* 404, which has a body.
    r = client.get("/api/predict/test/v1/nothing", headers=EAS)
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    sim.set_eas_service("gone", token="t")
    assert client.get("/api/predict/gone/v1/models", headers={"Authorization": "t"}).status_code == 200
    sim.set_eas_service("gone", state="absent")
    r = client.get("/api/predict/gone/v1/models", headers={"Authorization": "t"})
    assert (r.status_code, r.content) == (404, b"")
    sim.set_eas_service("gone")  # back, with the token it had
    assert client.get("/api/predict/gone/v1/models", headers={"Authorization": "t"}).status_code == 200
    with pytest.raises(ValueError):
        sim.set_eas_service("brand-new")  # a new service needs a token


def test_eas_body_over_1mb_is_413(client):
    r = client.post(EAS_CHAT, headers=EAS, content=b"x" * (MB + 1))
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/plain")
    # Exactly 1 MB passes the gateway (and the service rejects it as bad JSON).
    assert client.post(EAS_CHAT, headers=EAS, content=b"x" * MB).status_code == 400

    def chunked():  # no Content-Length: the gateway must count what it reads
        for _ in range(5):
            yield b"y" * (MB // 4)

    r = client.post(EAS_CHAT, headers=EAS, content=chunked())
    assert r.status_code == 413
    assert client.get("/api/predict/test/v1/models", headers=EAS).status_code == 200


def test_eas_unready_is_503(client, sim):
    sim.set_eas_service("test", state="unready")
    try:
        r = client.get("/api/predict/test/v1/models", headers=EAS)
        assert (r.status_code, r.text) == (503, "no healthy upstream")
    finally:
        sim.set_eas_service("test", state="running")
    assert client.get("/api/predict/test/v1/models", headers=EAS).status_code == 200


def test_eas_chat_like_vllm(client):
    payload = {"model": EAS_MODEL, "messages": [{"role": "user", "content": "a b"}], "max_tokens": 2}
    body = client.post(EAS_CHAT, headers=EAS, json=payload).json()
    assert body["choices"][0]["message"]["content"] == "Hello from"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    stream = {**payload, "stream": True, "stream_options": {"include_usage": True}}
    frames = openai_frames(client.post(EAS_CHAT, headers=EAS, json=stream).text)
    assert frames[-1] == "[DONE]" and json.loads(frames[-2])["usage"]["completion_tokens"] == 2
    r = client.post(EAS_CHAT, headers=EAS, json={**payload, "model": "qwen-flash"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"


# ---------------------------------------------------------------- injected faults


@pytest.mark.parametrize("path, status, expected", [
    ("/api/predict/test/v1/models", 450, "queue full"),
    ("/api/predict/test/v1/models", 408, "request timeout"),
    ("/api/predict/test/v1/models", 429, "Too Many Requests"),
    ("/api/predict/test/v1/models", 500, "Internal Server Error"),
    (MODELS, 429, ("throttling", "throttling")),
    (MODELS, 500, ("internal_error", "internal_error")),
    (MODELS, 408, ("invalid_request_error", "request_timeout")),
    (NATIVE, 429, "Throttling"),
    (NATIVE, 500, "InternalError"),
    (NATIVE, 503, "ModelUnavailable"),
])
def test_injected_status_bodies(client, sim, path, status, expected):
    sim.inject(Fault(route=path, status=status))
    headers = {**GOOD, **EAS} if "predict" in path else GOOD
    if "models" in path:
        r = client.get(path, headers=headers)
    else:
        r = client.post(path, headers=headers, json=native_body())
    assert r.status_code == status
    if path.startswith("/api/predict/"):
        assert r.text == expected and r.headers["content-type"].startswith("text/plain")
    elif path == MODELS:
        body = r.json()
        assert (body["error"]["type"], body["error"]["code"]) == expected and is_uuid(body["request_id"])
    else:
        assert r.json()["code"] == expected and set(r.json()) == {"code", "message", "request_id"}


def test_latency_fault(client, sim):
    sim.inject(Fault(route=MODELS, latency_ms=250))
    start = time.monotonic()
    r = client.get(MODELS, headers=GOOD)
    assert r.status_code == 200
    assert time.monotonic() - start >= 0.25


def test_reset_fault(client, sim):
    sim.inject(Fault(route="/api/predict/*", reset=True, times=1))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get("/api/predict/test/v1/models", headers=EAS)
    sim.inject(Fault(route="/api/predict/*", reset=True, times=1))
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as s:
        s.sendall(b"GET /api/predict/test/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):  # an RST, not an orderly close
            s.recv(1024)
    assert [r["outcome"] for r in sim.requests[-2:]] == ["reset", "reset"]


def test_stall_fault(client, sim):
    sim.inject(Fault(route=MODELS, stall=True))
    with pytest.raises(httpx.ReadTimeout):
        client.get(MODELS, headers=GOOD, timeout=0.3)


def test_stream_error_frame_compat(client, sim):
    sim.inject(Fault(route=CHAT, stream_error=True))
    r = client.post(CHAT, headers=GOOD, json=chat_body(stream=True))
    assert r.status_code == 200
    frames = openai_frames(r.text)
    assert len(frames) == 2
    assert json.loads(frames[0])["choices"][0]["delta"]["content"] == "Hello"
    error = json.loads(frames[1])["error"]
    assert (error["type"], error["code"]) == ("internal_error", "internal_error") and error["message"]


def test_stream_error_frame_native(client, sim):
    sim.inject(Fault(route=NATIVE, stream_error=True))
    r = client.post(NATIVE, headers={**GOOD, "X-DashScope-SSE": "enable"}, json=native_body())
    frames = native_frames(r.text)
    assert [(f[0], f[1], f[2]) for f in frames] == [(1, "result", 200), (2, "error", 500)]
    assert frames[1][3]["code"] == "InternalError"
    assert frames[1][3]["request_id"] == frames[0][3]["request_id"]


def test_stream_stall_after(client, sim):
    sim.inject(Fault(route=CHAT, stream_stall_after=2))
    got = []
    payload = chat_body(stream=True)
    with pytest.raises(httpx.ReadTimeout), client.stream(
        "POST", CHAT, headers=GOOD, json=payload, timeout=0.3
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line:
                got.append(line)
    assert len(got) == 2 and all(line.startswith("data: {") for line in got)


def test_fault_times_expires(client, sim):
    fid = sim.inject(Fault(route=MODELS, method="get", status=429, times=2))
    assert [client.get(MODELS, headers=GOOD).status_code for _ in range(3)] == [429, 429, 200]
    assert sim.faults == [] and sim.clear(fid) == 0


def test_fault_matching_by_method_and_route(client, sim):
    sim.inject(Fault(route="/compatible-mode/v1/*", method="POST", status=503))
    assert client.get(MODELS, headers=GOOD).status_code == 200
    assert client.post(CHAT, headers=GOOD, json=chat_body()).status_code == 503
    assert client.get("/api/predict/test/v1/models", headers=EAS).status_code == 200


def test_fault_validation():
    for bad in ({"times": 0}, {"status": 42}, {"latency_ms": -1}, {"reset": "yes"}):
        with pytest.raises(ValueError):
            Fault(**bad)


def test_host_scoped_fault(zones):
    zones.inject(Fault(host="127.0.0.2", status=503))
    try:
        with http_client() as c:
            assert c.get(zones.url("127.0.0.2") + MODELS, headers=GOOD).status_code == 503
            assert c.get(zones.url("127.0.0.3") + MODELS, headers=GOOD).status_code == 200
    finally:
        zones.clear()
    listens = [r["listen"] for r in zones.requests[-2:]]
    assert listens == ["127.0.0.2", "127.0.0.3"]


def test_set_host_down(zones):
    with http_client() as c:
        assert c.get(zones.url("127.0.0.2") + MODELS, headers=GOOD).status_code == 200  # pooled connection
        zones.set_host_down("127.0.0.2")
        try:
            with pytest.raises(httpx.ConnectError):
                c.get(zones.url("127.0.0.2") + MODELS, headers=GOOD)
            assert c.get(zones.url("127.0.0.3") + MODELS, headers=GOOD).status_code == 200
        finally:
            zones.set_host_down("127.0.0.2", False)
        assert c.get(zones.url("127.0.0.2") + MODELS, headers=GOOD).status_code == 200


# ---------------------------------------------------------------- TLS, admin API, robustness


def test_https_with_trustme_ca(sim):
    assert sim.https_port and sim.https_port != sim.port
    with open(sim.ca_path, "rb") as fh:
        assert fh.read() == sim.ca_pem
    ctx = ssl.create_default_context(cadata=sim.ca_pem.decode())
    url = sim.url(https=True) + MODELS
    with http_client(verify=ctx) as c:
        r = c.get(url, headers={**GOOD, "Host": TLS_NAME}, extensions={"sni_hostname": TLS_NAME})
        assert r.status_code == 200 and r.json()["object"] == "list"
        rec = sim.requests[-1]
        assert (rec["scheme"], rec["host"], rec["port"]) == ("https", TLS_NAME, sim.https_port)
    with http_client(verify=ctx) as c, pytest.raises(httpx.ConnectError):
        c.get(url, headers=GOOD)  # no SNI: the cert is for the name, not the IP
    with http_client() as c, pytest.raises(httpx.ConnectError):  # a CA the client does not trust
        c.get(url, headers={"Host": TLS_NAME}, extensions={"sni_hostname": TLS_NAME})


def test_admin_fault_api(client, sim):
    sim.inject(Fault(route="*", status=500))  # admin routes are never faulted
    assert client.delete("/_sim/faults").json() == {"cleared": 1}
    r = client.post("/_sim/faults", json={"route": MODELS, "status": 429, "times": 5})
    assert r.status_code == 200
    fid = r.json()["id"]
    listed = client.get("/_sim/faults").json()
    assert [(f["id"], f["status"], f["remaining"]) for f in listed] == [(fid, 429, 5)]
    r = client.get(MODELS, headers=GOOD)
    assert r.status_code == 429 and r.json()["error"]["code"] == "throttling"
    assert client.delete(f"/_sim/faults/{fid}").json() == {"cleared": 1}
    assert client.delete(f"/_sim/faults/{fid}").status_code == 404
    assert client.get(MODELS, headers=GOOD).status_code == 200
    assert client.post("/_sim/faults", json={"bogus": 1}).status_code == 400
    assert client.post("/_sim/faults", json={"times": 0}).status_code == 400
    assert sim.faults == []


def test_admin_requests_log(client, sim):
    marker = str(uuid.uuid4())
    body = json.dumps(chat_body()).encode()
    client.post(CHAT, headers={**GOOD, "x-marker": marker, "content-type": "application/json"}, content=body)
    over_http = client.get("/_sim/requests").json()
    rec = next(r for r in over_http if r["headers"].get("X-Marker") == marker)
    assert rec["method"] == "POST" and rec["path"] == CHAT and rec["listen"] == "127.0.0.1"
    assert rec["headers"]["Authorization"] == "Bearer sk-good"
    assert rec["body_size"] == len(body) and rec["status"] == 200
    assert not any(r["path"].startswith("/_sim") for r in sim.requests)


def test_many_concurrent_requests(sim):
    assert sim.wait_inflight(0, timeout=3)
    sim.inject(Fault(route=MODELS, latency_ms=700))

    async def main():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=sim.url(), headers=GOOD, timeout=10, limits=limits, verify=PLAIN_TLS
        ) as c:
            tasks = [asyncio.ensure_future(c.get(MODELS)) for _ in range(120)]
            loop = asyncio.get_running_loop()
            all_in = await loop.run_in_executor(None, sim.wait_inflight, 120, 5.0)
            return all_in, await asyncio.gather(*tasks)

    all_in, responses = asyncio.run(main())
    assert all_in, "the 120 requests were not all in flight at once"
    assert [r.status_code for r in responses] == [200] * 120


def test_client_disconnect_mid_stream_is_quiet(sim, caplog):
    caplog.set_level(logging.DEBUG)
    sim.inject(Fault(route=CHAT, stream_delay_ms=100))
    with http_client(base_url=sim.url()) as c, c.stream(
        "POST", CHAT, headers=GOOD, json=chat_body(stream=True)
    ) as r:
        assert next(r.iter_lines()).startswith("data: {")
    assert sim.wait_inflight(0, timeout=3)
    rec = [r for r in sim.requests if r["path"] == CHAT][-1]
    assert rec["outcome"] == "disconnected"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_stop_is_prompt_with_stalled_requests():
    s = Simulator().start()
    s.inject(Fault(route=MODELS, stall=True))
    s.inject(Fault(route=CHAT, stream_stall_after=1))
    body = json.dumps(chat_body(stream=True)).encode()
    raw = [
        b"GET " + MODELS.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-good\r\n\r\n",
        b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-good\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    ]
    socks = [socket.create_connection(("127.0.0.1", s.port), timeout=3) for _ in raw]
    try:
        for sock, request in zip(socks, raw):
            sock.sendall(request)
        assert s.wait_inflight(2, timeout=3)
        start = time.monotonic()
        s.stop()
        assert time.monotonic() - start < 3
        s.stop()  # idempotent
        for sock in socks:  # every connection is closed: reading reaches EOF instead of timing out
            while sock.recv(65536):
                pass
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
    finally:
        for sock in socks:
            sock.close()
        s.stop()
