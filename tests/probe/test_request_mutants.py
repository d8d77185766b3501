"""The request bodies a chat probe sends, byte for byte: a one-token completion, never more (a probe
that asked for 256 tokens would cost 256x), streamed only when asked."""

from __future__ import annotations

import json

from shared.config.load import parse_config
from shared.probe.request import USER_AGENT, build_request
from tests.probe.loopback import EAS, PL, ds, eas


def spec_for(target: dict, token: str | None = "tok"):
    config = parse_config({"resolve": {PL: "127.0.0.2", EAS: "127.0.0.2"}, "targets": [target]})
    return build_request(config.targets[0], token)


def test_compatible_chat_asks_for_one_token():
    spec = spec_for(ds(probe={"mode": "chat", "model": "qwen-plus"}))
    assert (spec.method, spec.url) == ("POST", f"http://{PL}/compatible-mode/v1/chat/completions")
    assert json.loads(spec.body) == {
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }
    assert spec.headers == {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Authorization": "Bearer tok",
        "Content-Type": "application/json",
    }
    assert spec.stream is False and spec.expect_status == (200,)


def test_streamed_compatible_chat():
    spec = spec_for(ds(probe={"mode": "chat", "model": "qwen-plus", "stream": True}))
    assert json.loads(spec.body) == {
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": True,
    }
    assert spec.headers["Accept"] == "text/event-stream" and spec.stream is True


def test_native_chat_asks_for_one_token():
    spec = spec_for(ds(endpoint=f"http://{PL}/api/v1", probe={"mode": "chat", "model": "qwen-plus", "stream": True}))
    assert spec.url == f"http://{PL}/api/v1/services/aigc/text-generation/generation"
    assert json.loads(spec.body) == {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": "ping"}]},
        "parameters": {"max_tokens": 1, "result_format": "message", "incremental_output": True},
    }
    assert spec.headers["X-DashScope-SSE"] == "enable" and spec.headers["Accept"] == "text/event-stream"


def test_unstreamed_native_chat_has_no_sse_header():
    spec = spec_for(ds(endpoint=f"http://{PL}/api/v1", probe={"mode": "chat", "model": "qwen-plus"}))
    assert "X-DashScope-SSE" not in spec.headers and spec.headers["Accept"] == "application/json"


def test_eas_chat_uses_the_raw_token_and_one_token():
    spec = spec_for(eas(probe={"mode": "chat", "model": "llm"}), token="eas-tok")
    assert spec.url == f"http://{EAS}/api/predict/llm/v1/chat/completions"
    assert spec.headers["Authorization"] == "eas-tok"
    assert json.loads(spec.body) == {"model": "llm", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


def test_models_mode_sends_no_body_and_no_token_header_without_token():
    spec = spec_for(ds(), token=None)
    assert (spec.method, spec.body) == ("GET", None)
    assert spec.url == f"http://{PL}/compatible-mode/v1/models"
    assert spec.headers == {"User-Agent": USER_AGENT, "Accept": "application/json"}
