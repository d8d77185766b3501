"""Nothing else reachable (issue 8): traversal and smuggling refused before anything reaches an upstream,
body and header limits, keys and rate limits, and canary secrets nowhere in logs, bodies or headers.

Raw sockets send the requests byte for byte: a client library would normalise away what is tested.
Every refused request carries a valid gateway key, so the refusal is the path's, not the key's.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from shared.local.simulator import EAS_MODEL, REPLY_TEXT, Fault
from tests.gateway.harness import (
    CANARIES,
    EAS_LIMIT,
    KEY_ALL,
    KEY_CHAT,
    KEY_LIMITED,
    KMS_KEY_NEW,
    KMS_KEY_OLD,
    KMS_SECRET,
    LIMITED_RPM,
    PL_HOST,
    REGION,
    WRONG_KEY,
    ZONE_A,
    ZONE_B,
    error_of,
    raw_request,
)

HI = [{"role": "user", "content": "say hi please"}]
AUTH_LINE = f"Authorization: Bearer {KEY_ALL}\r\n"
CHAT_BODY = json.dumps({"model": "qwen-plus", "messages": HI})


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: gw\r\n{AUTH_LINE}Connection: close\r\n\r\n".encode("latin-1")


TRAVERSALS = [
    "/qwen-pl/compatible-mode/v1/../../_sim/requests",
    "/qwen-pl/../llm-eas/v1/models",
    "/qwen-pl/compatible-mode/../api/v1/services/aigc/text-generation/generation",
    "/qwen-pl/compatible-mode/v1/%2e%2e/%2e%2e/_sim/faults",
    "/qwen-pl/compatible-mode/v1/%2E%2E/models",
    "/qwen-pl/compatible-mode/v1/.%2e/models",
    "/qwen-pl//compatible-mode/v1/models",
    "//qwen-pl/compatible-mode/v1/models",
    "/qwen-pl/compatible-mode/v1//models",
    "/qwen-pl/compatible-mode%2fv1/models",
    "/qwen-pl/compatible-mode/v1%2F..%2F..%2F_sim/requests",
    "/qwen-pl/compatible-mode/v1/..%5c..%5c_sim/requests",
    "/qwen-pl/compatible-mode/v1/%5c../models",
    "/qwen-pl/compatible-mode/v1/%00/models",
    "/llm-eas/v1/../../other_service/v1/models",
    "/llm-eas/%2e%2e/other_service/v1/models",
    "http://evil.example/",
    "http://evil.example/qwen-pl/compatible-mode/v1/models",
    "https://127.0.0.2/qwen-pl/compatible-mode/v1/models",
    "qwen-pl/compatible-mode/v1/models",
    "*",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_and_odd_request_targets_are_refused(gw, target):
    response = raw_request(gw.port, get(target))
    assert response.status is not None and 400 <= response.status < 500, (response.status, response.body[:200])
    assert response.status not in (401, 403)  # refused for the path, with a good key
    gw.settle()
    assert gw.received() == 0


def test_a_good_path_on_a_raw_socket_works(gw):
    """The control for the refusals above: the same raw request with a clean path is served."""
    response = raw_request(gw.port, get("/qwen-pl/compatible-mode/v1/models"))
    assert response.status == 200, response.body[:300]
    assert json.loads(response.body)["object"] == "list"
    assert gw.received() == 1


def test_refusals_are_openai_style_json(gw):
    response = raw_request(gw.port, get("/qwen-pl/compatible-mode/v1/%2e%2e/models"))
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")
    error_of(response.json())


def test_connect_method_is_refused(gw):
    response = raw_request(gw.port, f"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n{AUTH_LINE}\r\n"
                           .encode())
    assert response.status is None or 400 <= response.status < 500
    assert gw.received() == 0


def post_head(extra: str) -> str:
    return (f"POST /qwen-pl/compatible-mode/v1/chat/completions HTTP/1.1\r\nHost: gw\r\n{AUTH_LINE}"
            f"Content-Type: application/json\r\n{extra}")


SMUGGLED = f"GET /qwen-pl/compatible-mode/v1/models HTTP/1.1\r\nHost: gw\r\n{AUTH_LINE}\r\n"
SMUGGLING = {
    "cl-and-te": post_head("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n") + "0\r\n\r\n" + SMUGGLED,
    "te-and-cl": post_head("Transfer-Encoding: chunked\r\nContent-Length: 300\r\n\r\n") + "0\r\n\r\n" + SMUGGLED,
    "two-lengths": post_head(f"Content-Length: {len(CHAT_BODY)}\r\nContent-Length: 4\r\n\r\n") + CHAT_BODY,
    "te-obfuscated": post_head("Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n") + "0\r\n\r\n" + SMUGGLED,
    "te-twice": post_head("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n")
    + "0\r\n\r\n" + SMUGGLED,
    "obs-fold": post_head(f"Content-Length: {len(CHAT_BODY)}\r\nX-Folded: a\r\n b\r\n\r\n") + CHAT_BODY,
    "space-before-colon": post_head(f"Content-Length : {len(CHAT_BODY)}\r\n\r\n") + CHAT_BODY,
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_is_refused(gw, name):
    response = raw_request(gw.port, SMUGGLING[name].encode())
    assert response.status is None or 400 <= response.status < 500, (response.status, response.body[:200])
    gw.settle()
    assert gw.received() == 0


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Padding", "a" * 20_000)],
        [(f"X-Pad-{i}", "b" * 100) for i in range(200)],
    ],
    ids=["one-big-header", "many-headers"],
)
def test_oversized_headers_are_refused(gw, headers):
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    response = raw_request(gw.port, get("/qwen-pl/compatible-mode/v1/models").replace(
        b"Connection: close\r\n", b"Connection: close\r\n" + extra.encode()))
    assert response.status is None or response.status in (400, 413, 431), response.status
    gw.settle()
    assert gw.received() == 0


def test_headers_under_the_limit_pass(gw):
    with httpx.Client(timeout=10) as client:
        r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models", headers={"Authorization": f"Bearer {KEY_ALL}",
                                                                             "X-Padding": "a" * 4000})
    assert r.status_code == 200


def test_a_request_never_picks_the_host(gw):
    raw = get("/qwen-pl/compatible-mode/v1/models").replace(b"Host: gw", b"Host: evil.example")
    raw = raw.replace(b"Connection: close\r\n", b"Connection: close\r\nX-Forwarded-Host: evil.example\r\n"
                      b"X-Original-URL: /_sim/requests\r\nForwarded: host=evil.example\r\n")
    response = raw_request(gw.port, raw)
    assert response.status == 200
    [rec] = gw.arrived()
    assert rec["host"] == PL_HOST and rec["path"] == "/compatible-mode/v1/models"


# ----------------------------------------------------------------- body limit


def eas_chat_of_size(size: int) -> bytes:
    """A valid EAS chat body padded with trailing spaces to exactly `size` bytes."""
    body = json.dumps({"model": EAS_MODEL, "messages": HI}).encode()
    return body + b" " * (size - len(body))


def test_eas_body_at_the_limit_is_sent(gw):
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/llm-eas/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_ALL}",
                        "Content-Type": "application/json"}, content=eas_chat_of_size(EAS_LIMIT))
    assert r.status_code == 200, r.text[:300]
    [rec] = gw.arrived()
    assert rec["body_size"] == EAS_LIMIT


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_eas_body_over_the_limit_is_413_before_sending(gw, chunked):
    body = eas_chat_of_size(EAS_LIMIT + 1)
    content = iter([body[: len(body) // 2], body[len(body) // 2:]]) if chunked else body
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/llm-eas/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_ALL}",
                        "Content-Type": "application/json"}, content=content)
    assert r.status_code == 413
    error = error_of(r.json())
    assert any(s in error["message"] for s in ("1 MiB", "1MiB", "1 MB", "1MB", "1048576")), error
    gw.settle()
    assert gw.received() == 0


def test_dashscope_body_over_a_mib_is_sent(gw):
    """The EAS limit is per kind: a DashScope target takes a 2 MiB body (its limit is FC's 32 MB)."""
    body = json.dumps({"model": "qwen-plus", "messages": HI}).encode()
    body += b" " * (2 * EAS_LIMIT - len(body))
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/qwen-pl/compatible-mode/v1/chat/completions",
                        headers={"Authorization": f"Bearer {KEY_ALL}", "Content-Type": "application/json"},
                        content=body)
    assert r.status_code == 200
    assert gw.arrived()[0]["body_size"] == 2 * EAS_LIMIT


# ----------------------------------------------------------------- keys and rate limit


def test_rate_limit_per_key(gw):
    limited = gw.openai("qwen-pl/compatible-mode/v1", key=KEY_LIMITED)
    for _ in range(LIMITED_RPM):
        assert limited.models.list().data
    with pytest.raises(openai.RateLimitError) as info:
        limited.models.list()
    assert info.value.code == "rate_limited"
    retry_after = int(info.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert len(gw.arrived()) == LIMITED_RPM
    assert gw.openai("qwen-pl/compatible-mode/v1").models.list().data  # other keys are not limited


def test_a_key_cannot_be_guessed_by_prefix(gw):
    for wrong in (KEY_ALL[:-1], KEY_ALL + "x", KEY_ALL.upper(), KEY_ALL[1:], "Bearer"):
        with httpx.Client(timeout=10) as client:
            r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401, (wrong, r.status_code)
    assert gw.received() == 0


# ----------------------------------------------------------------- canary secrets


def test_canary_secrets_never_appear(gw, gw_logs, capfd, caplog):
    """Every kind of request — served, streamed, refused, failed upstream, refreshed — and then no canary
    secret anywhere: log lines (structlog and stdlib), stdout/stderr, error bodies, response headers."""
    seen: list[str] = []

    def keep(r: httpx.Response) -> None:
        seen.append(r.text)
        seen.append(json.dumps(dict(r.headers)))

    prompt = "zebra canary prompt words"
    with httpx.Client(timeout=15, base_url=gw.url) as client:
        bearer = {"Authorization": f"Bearer {KEY_ALL}"}
        keep(client.get("/qwen-pl/compatible-mode/v1/models", headers=bearer))
        keep(client.post("/qwen-pl/compatible-mode/v1/chat/completions", headers=bearer,
                         json={"model": "qwen-plus", "messages": [{"role": "user", "content": prompt}]}))
        keep(client.post("/v1/chat/completions", headers=bearer,
                         json={"model": "deepseek", "messages": HI, "stream": True}))
        keep(client.get("/qwen-pl/compatible-mode/v1/models", headers={"Authorization": f"Bearer {WRONG_KEY}"}))
        keep(client.get("/qwen-pl/compatible-mode/v1/models", headers={"Authorization": WRONG_KEY}))
        keep(client.get("/llm-eas/v1/models", headers={"Authorization": f"Bearer {KEY_CHAT}"}))
        keep(client.get("/qwen-pl/compatible-mode/v1/%2e%2e/x", headers=bearer))
        keep(client.post("/llm-eas/v1/chat/completions", headers=bearer, content=eas_chat_of_size(EAS_LIMIT + 1)))
        for _ in range(LIMITED_RPM + 1):
            keep(client.get("/qwen-pl/compatible-mode/v1/models", headers={"Authorization": f"Bearer {KEY_LIMITED}"}))
        gw.sim.inject(Fault(route="/compatible-mode/*", host=ZONE_A, status=503))
        keep(client.get("/qwen-pl/compatible-mode/v1/models", headers=bearer))
        gw.sim.clear()
        gw.sim.set_host_down(ZONE_A)
        gw.sim.set_host_down(ZONE_B)
        keep(client.get("/llm-eas/v1/models", headers=bearer))  # every zone refused: diagnosis error
        gw.sim.set_host_down(ZONE_A, False)
        gw.sim.set_host_down(ZONE_B, False)
        keep(client.get("/qwen-kms/compatible-mode/v1/models", headers=bearer))
        gw.plane.secrets[KMS_SECRET] = KMS_KEY_NEW
        del gw.sim.api_keys[KMS_KEY_OLD]
        gw.sim.api_keys[KMS_KEY_NEW] = REGION
        keep(client.get("/qwen-kms/compatible-mode/v1/models", headers=bearer))  # 401 -> refetch -> 200
        del gw.sim.api_keys[KMS_KEY_NEW]
        keep(client.get("/qwen-kms/compatible-mode/v1/models", headers=bearer))  # 401 twice: an upstream error
    gw.settle()
    out, err = capfd.readouterr()
    log_text = gw_logs.getvalue()
    everything = "\n".join([log_text, out, err, caplog.text, *seen])
    leaked = [c for c in CANARIES if c in everything]
    assert not leaked, f"canary secrets leaked: {leaked}"
    lines = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "gateway_request"]
    assert len(requests) >= 10  # the logs were captured: the absence above means something
    assert any("all-access" in json.dumps(line) for line in requests)  # the key's name, never the key
    assert prompt not in log_text and REPLY_TEXT not in log_text  # never prompt or completion text



@pytest.mark.parametrize("path", ["/no-such-target/v1/models", "/probe-me/api/v1/x", "/v2/chat/completions"])
def test_a_caller_without_a_key_learns_nothing_of_the_configured_targets(gw, path):
    """Route errors list the configured targets: only a caller holding a key may read them."""
    answer = httpx.get(gw.url + path)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_api_key"
    assert "configured" not in answer.text
    wrong = httpx.get(gw.url + path, headers={"Authorization": "Bearer not-a-key-of-ours"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
