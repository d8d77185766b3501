"""The probe request for each mode and API: path, method, auth header style, body."""

from __future__ import annotations

import json

from shared.config.load import parse_config
from shared.probe.request import USER_AGENT, build_request
from tests.probe.loopback import EAS, PL, ds, eas


def spec_for(target: dict, token: str | None = "tok"):
    return build_request(parse_config({"targets": [target]}).targets[0], token)


def test_dashscope_models_is_a_get_with_a_bearer_token():
    spec = spec_for(ds())
    assert (spec.method, spec.url, spec.body) == ("GET", f"http://{PL}/compatible-mode/v1/models", None)
    assert spec.headers["Authorization"] == "Bearer tok" and spec.headers["User-Agent"] == USER_AGENT


def test_eas_sends_the_raw_token_under_its_service_path():
    spec = spec_for(eas())
    assert spec.url == f"http://{EAS}/api/predict/llm/v1/models" and spec.headers["Authorization"] == "tok"


def test_no_token_no_authorization_header():
    assert "Authorization" not in spec_for(ds(), token=None).headers


def test_compatible_chat_asks_for_one_token():
    spec = spec_for(ds(probe={"mode": "chat", "stream": True}))
    assert spec.method == "POST" and spec.url.endswith("/compatible-mode/v1/chat/completions")
    body = json.loads(spec.body)
    assert (body["max_tokens"], body["stream"], body["messages"][0]["content"]) == (1, True, "ping")
    assert spec.headers["Accept"] == "text/event-stream" and spec.headers["Content-Type"] == "application/json"


def test_native_chat_streams_with_the_sse_header():
    spec = spec_for(ds(api="native", probe={"mode": "chat", "stream": True}))
    assert spec.url.endswith("/api/v1/services/aigc/text-generation/generation")
    assert spec.headers["X-DashScope-SSE"] == "enable"
    assert json.loads(spec.body)["parameters"]["max_tokens"] == 1


def test_http_mode_sends_the_configured_request():
    probe = {"mode": "http", "method": "POST", "path": "/compatible-mode/v1/x", "body": "{}", "expect_status": 204}
    spec = spec_for(ds(probe=probe))
    assert (spec.method, spec.url, spec.body, spec.expect_status) == (
        "POST",
        f"http://{PL}/compatible-mode/v1/x",
        b"{}",
        (204,),
    )


def test_workspace_header():
    assert spec_for(ds(workspace="ws-1")).headers["X-DashScope-WorkSpace"] == "ws-1"
