"""The official OpenAI SDK through the gateway, unchanged but for base URL and key (issue 8).

Both base URLs: the passthrough one per target (`GW/<target>/compatible-mode/v1`, EAS `GW/<target>/v1`)
and the model-routing one (`GW/v1`). Errors must come back as the SDK's own exception classes.
"""

from __future__ import annotations

import openai
import pytest

from shared.local.simulator import DASHSCOPE_MODELS, EAS_MODEL, REPLY_TEXT
from tests.gateway.harness import (
    CUSTOM_HOST,
    EAS_HOST,
    EAS_LIMIT,
    KEY_ALL,
    KEY_CHAT,
    MODEL_ROUTES,
    PL_HOST,
    UPSTREAM_DS_KEY,
    UPSTREAM_EAS_TOKEN,
    WRONG_KEY,
)

HI = [{"role": "user", "content": "say hi please"}]
WORDS = REPLY_TEXT.split()


# ----------------------------------------------------------------- models


def test_models_passthrough_dashscope(gw):
    models = gw.openai("qwen-pl/compatible-mode/v1").models.list()
    assert [m.id for m in models.data] == list(DASHSCOPE_MODELS)
    [rec] = gw.arrived()
    assert (rec["method"], rec["path"], rec["host"]) == ("GET", "/compatible-mode/v1/models", PL_HOST)
    assert rec["headers"]["Authorization"] == f"Bearer {UPSTREAM_DS_KEY}"  # the target's key, not the client's


def test_models_passthrough_eas(gw):
    models = gw.openai("llm-eas/v1").models.list()
    assert [m.id for m in models.data] == [EAS_MODEL]
    [rec] = gw.arrived()
    assert rec["path"] == "/api/predict/llm/v1/models"
    assert rec["host"] == EAS_HOST
    assert rec["headers"]["Authorization"] == UPSTREAM_EAS_TOKEN  # EAS style: the raw token


def test_models_on_the_openai_base_lists_what_the_key_may_use(gw):
    assert sorted(m.id for m in gw.openai("v1").models.list().data) == sorted(MODEL_ROUTES)
    assert [m.id for m in gw.openai("v1", key=KEY_CHAT).models.list().data] == ["qwen-plus"]
    assert gw.received() == 0  # the gateway answers the models list from its config


# ----------------------------------------------------------------- chat


@pytest.mark.parametrize(
    ("base", "model", "host"),
    [
        ("qwen-pl/compatible-mode/v1", "qwen-plus", PL_HOST),
        ("qwen-custom/compatible-mode/v1", "qwen-max", CUSTOM_HOST),  # https upstream with its own CA
        ("llm-eas/v1", EAS_MODEL, EAS_HOST),
    ],
)
def test_chat_passthrough(gw, base, model, host):
    reply = gw.openai(base).chat.completions.create(model=model, messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert reply.model == model
    assert reply.usage.completion_tokens == len(WORDS)
    [rec] = gw.arrived()
    assert rec["host"] == host and rec["status"] == 200
    assert KEY_ALL not in str(rec["headers"])  # the client's credential never reaches an upstream


def test_chat_on_the_openai_base_routes_by_model_and_rewrites_it(gw):
    reply = gw.openai("v1").chat.completions.create(model="deepseek", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert reply.model == EAS_MODEL  # the simulator only knows its own name: the body's model was rewritten
    [rec] = gw.arrived()
    assert rec["path"] == "/api/predict/llm/v1/chat/completions"
    assert rec["headers"]["Authorization"] == UPSTREAM_EAS_TOKEN


def test_chat_raw_key_eas_style_is_accepted(gw):
    """EAS clients send the raw key in Authorization, without "Bearer"."""
    import httpx

    with httpx.Client(timeout=10) as client:
        r = client.post(f"{gw.url}/llm-eas/v1/chat/completions", headers={"Authorization": KEY_ALL},
                        json={"model": EAS_MODEL, "messages": HI})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == REPLY_TEXT


def test_workspace_of_the_target_is_injected(gw):
    gw.openai("qwen-custom/compatible-mode/v1").chat.completions.create(model="qwen-plus", messages=HI)
    [rec] = gw.arrived()
    assert rec["headers"].get("X-Dashscope-Workspace") == "ws-gwtest"


# ----------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    ("base", "model"),
    [("qwen-pl/compatible-mode/v1", "qwen-flash"), ("llm-eas/v1", EAS_MODEL), ("v1", "qwen-plus")],
)
def test_streaming_chat(gw, base, model):
    stream = gw.openai(base).chat.completions.create(
        model=model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY_TEXT
    assert len([c for c in chunks if c.choices]) == len(WORDS)  # one event per token: nothing merged or lost
    assert chunks[-1].usage.completion_tokens == len(WORDS)
    [rec] = gw.arrived()
    assert rec["frames"] == len(WORDS) + 2  # tokens, usage, [DONE]


# ----------------------------------------------------------------- embeddings


def test_embeddings_passthrough(gw):
    result = gw.openai("qwen-pl/compatible-mode/v1").embeddings.create(
        model="text-embedding-v3", input=["first text", "second text"]
    )
    assert [d.index for d in result.data] == [0, 1]
    assert [len(d.embedding) for d in result.data] == [1024, 1024]
    assert result.data[0].embedding != result.data[1].embedding
    assert 0.99 < sum(v * v for v in result.data[0].embedding) < 1.01


def test_embeddings_on_the_openai_base(gw):
    result = gw.openai("v1").embeddings.create(model="embed", input="hello", dimensions=64)
    assert len(result.data) == 1 and len(result.data[0].embedding) == 64
    assert result.model == "text-embedding-v4"
    [rec] = gw.arrived()
    assert rec["path"] == "/compatible-mode/v1/embeddings"


# ----------------------------------------------------------------- errors


def test_wrong_key_is_an_authentication_error(gw):
    with pytest.raises(openai.AuthenticationError) as info:
        gw.openai("qwen-pl/compatible-mode/v1", key=WRONG_KEY).models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.type == "authentication_error"
    assert gw.received() == 0


def test_missing_key_is_refused(gw):
    import httpx

    with httpx.Client(timeout=10) as client:
        r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    assert gw.received() == 0


def test_unknown_target_is_not_found(gw):
    with pytest.raises(openai.NotFoundError) as info:
        gw.openai("no-such-target/compatible-mode/v1").models.list()
    assert info.value.code == "unknown_target"
    assert gw.received() == 0


def test_unknown_model_on_the_openai_base(gw):
    with pytest.raises(openai.NotFoundError) as info:
        gw.openai("v1").chat.completions.create(model="gpt-nope", messages=HI)
    assert info.value.code == "model_not_found"
    assert gw.received() == 0


def test_key_without_access_to_the_target(gw):
    with pytest.raises(openai.PermissionDeniedError) as info:
        gw.openai("llm-eas/v1", key=KEY_CHAT).chat.completions.create(model=EAS_MODEL, messages=HI)
    assert info.value.status_code == 403
    assert info.value.type == "permission_error"
    assert gw.received() == 0


def test_key_without_access_to_the_model(gw):
    """Refused like a model that does not exist (403 would do too): the key learns only its own models."""
    with pytest.raises((openai.PermissionDeniedError, openai.NotFoundError)) as info:
        gw.openai("v1", key=KEY_CHAT).chat.completions.create(model="deepseek", messages=HI)
    assert info.value.code in ("model_not_found", "model_not_allowed", "forbidden")
    assert "chat-ha" not in info.value.message
    assert gw.received() == 0
    ok = gw.openai("v1", key=KEY_CHAT).chat.completions.create(model="qwen-plus", messages=HI)
    assert ok.choices[0].message.content == REPLY_TEXT


def test_upstream_error_body_reaches_the_sdk(gw):
    """A 4xx from the endpoint is the endpoint's answer: passed through, not retried."""
    with pytest.raises(openai.NotFoundError) as info:
        gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(model="qwen-nope", messages=HI)
    assert "qwen-nope" in info.value.message
    assert len(gw.arrived()) == 1


def test_invalid_json_on_the_openai_base(gw):
    import httpx

    with httpx.Client(timeout=10) as client:
        r = client.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_ALL}"},
                        content=b"{not json")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert gw.received() == 0


def test_body_over_the_eas_limit_is_413_before_sending(gw):
    big = "x" * EAS_LIMIT
    with pytest.raises(openai.APIStatusError) as info:
        gw.openai("llm-eas/v1").chat.completions.create(model=EAS_MODEL, messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    assert any(s in info.value.message for s in ("1 MiB", "1MiB", "1 MB", "1MB", "1048576")), info.value.message
    assert gw.received() == 0
