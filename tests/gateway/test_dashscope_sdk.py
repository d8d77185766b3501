"""The official DashScope SDK through the gateway: `dashscope.base_http_api_url = GW/<target>/api/v1` (issue 8).

`stream=True` must stay a stream: the SDK asks for it with `X-DashScope-SSE: enable`, so that header has
to reach the endpoint, and every native SSE event has to reach the SDK as its own event.
"""

from __future__ import annotations

from http import HTTPStatus

from shared.local.simulator import NATIVE_GENERATION, REPLY_TEXT
from tests.gateway.harness import CUSTOM_HOST, KEY_ALL, KEY_CHAT, PL_HOST, UPSTREAM_DS_KEY, WRONG_KEY

HI = [{"role": "user", "content": "say hi please"}]
WORDS = REPLY_TEXT.split()


def test_generation_call(gw, dashscope_at):
    dashscope = dashscope_at("qwen-pl/api/v1")
    response = dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=KEY_ALL, result_format="message")
    assert response.status_code == HTTPStatus.OK, (response.code, response.message)
    assert response.output.choices[0].message.content == REPLY_TEXT
    assert response.usage.output_tokens == len(WORDS)
    [rec] = gw.arrived()
    assert (rec["method"], rec["path"], rec["host"]) == ("POST", NATIVE_GENERATION, PL_HOST)
    assert rec["headers"]["Authorization"] == f"Bearer {UPSTREAM_DS_KEY}"
    assert response.request_id  # the endpoint's request id came back


def test_generation_stream_incremental(gw, dashscope_at):
    dashscope = dashscope_at("qwen-pl/api/v1")
    events = list(dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=KEY_ALL, stream=True,
                                            incremental_output=True, result_format="message"))
    assert all(e.status_code == HTTPStatus.OK for e in events), [(e.code, e.message) for e in events]
    assert len(events) == len(WORDS)  # several events, not one
    assert "".join(e.output.choices[0].message.content for e in events) == REPLY_TEXT
    [rec] = gw.arrived()
    assert rec["headers"].get("X-Dashscope-Sse") == "enable"
    assert rec["frames"] == len(WORDS)


def test_generation_stream_cumulative_over_https(gw, dashscope_at):
    dashscope = dashscope_at("qwen-custom/api/v1")
    events = list(dashscope.Generation.call(model="qwen-turbo", prompt="hi there", api_key=KEY_ALL, stream=True,
                                            result_format="text"))
    assert len(events) == len(WORDS)
    assert [e.output.text for e in events][-1] == REPLY_TEXT
    assert events[0].output.text == WORDS[0]
    [rec] = gw.arrived()
    assert rec["host"] == CUSTOM_HOST and rec["scheme"] == "https"


def test_client_workspace_header_passes(gw, dashscope_at):
    dashscope = dashscope_at("qwen-pl/api/v1")
    response = dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=KEY_ALL, workspace="ws-client1")
    assert response.status_code == HTTPStatus.OK
    [rec] = gw.arrived()
    assert rec["headers"].get("X-Dashscope-Workspace") == "ws-client1"


def test_wrong_key(gw, dashscope_at):
    dashscope = dashscope_at("qwen-pl/api/v1")
    response = dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=WRONG_KEY)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert WRONG_KEY not in str(response)
    assert gw.received() == 0


def test_unknown_target(gw, dashscope_at):
    dashscope = dashscope_at("nowhere/api/v1")
    response = dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=KEY_ALL)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert gw.received() == 0


def test_key_without_access(gw, dashscope_at):
    dashscope = dashscope_at("qwen-custom/api/v1")
    response = dashscope.Generation.call(model="qwen-plus", messages=HI, api_key=KEY_CHAT)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert gw.received() == 0


def test_upstream_error_passes_through(gw, dashscope_at):
    dashscope = dashscope_at("qwen-pl/api/v1")
    response = dashscope.Generation.call(model="qwen-nope", messages=HI, api_key=KEY_ALL)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.code == "ModelNotFound"  # the endpoint's native error body, untouched
    assert len(gw.arrived()) == 1
