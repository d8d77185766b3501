"""Failover that knows the network (issue 8): across a target's zone addresses and down a model's route,
only before the first byte reaches the client; and the upstream key's 401 refresh.
"""

from __future__ import annotations

import json

import openai
import pytest

from shared.local.simulator import EAS_MODEL, REPLY_TEXT, Fault
from tests.gateway.harness import (
    KEY_ALL,
    KMS_KEY_NEW,
    KMS_KEY_OLD,
    KMS_SECRET,
    REGION,
    ROTATED_ENV_KEY,
    UPSTREAM_DS_KEY,
    ZONE_A,
    ZONE_B,
    sse_data,
)

HI = [{"role": "user", "content": "say hi please"}]
CALLS = 6


def test_a_dead_zone_fails_no_request(gw):
    client = gw.openai("qwen-pl/compatible-mode/v1")
    assert client.chat.completions.create(model="qwen-plus", messages=HI).choices[0].message.content == REPLY_TEXT
    gw.sim.set_host_down(ZONE_A)  # refuses new connections and aborts the gateway's pooled ones
    mark = gw.mark()
    replies = [client.chat.completions.create(model="qwen-plus", messages=HI) for _ in range(CALLS)]
    assert [r.choices[0].message.content for r in replies] == [REPLY_TEXT] * CALLS
    after = gw.arrived(since=mark)
    assert len(after) == CALLS and {r["listen"] for r in after} == {ZONE_B}
    gw.sim.set_host_down(ZONE_A, False)
    gw.sim.set_host_down(ZONE_B)
    mark = gw.mark()
    replies = [client.chat.completions.create(model="qwen-plus", messages=HI) for _ in range(CALLS)]
    assert [r.choices[0].message.content for r in replies] == [REPLY_TEXT] * CALLS
    after = gw.arrived(since=mark)
    assert len(after) == CALLS and {r["listen"] for r in after} == {ZONE_A}


@pytest.mark.parametrize(
    ("base", "model", "route", "status"),
    [
        ("qwen-pl/compatible-mode/v1", "qwen-plus", "/compatible-mode/*", 429),
        ("qwen-pl/compatible-mode/v1", "qwen-plus", "/compatible-mode/*", 500),
        ("qwen-pl/compatible-mode/v1", "qwen-plus", "/compatible-mode/*", 503),
        ("llm-eas/v1", EAS_MODEL, "/api/predict/*", 450),
        ("llm-eas/v1", EAS_MODEL, "/api/predict/*", 503),
    ],
)
def test_a_failing_zone_status_fails_over(gw, base, model, route, status):
    gw.sim.inject(Fault(route=route, host=ZONE_A, status=status))
    client = gw.openai(base)
    replies = [client.chat.completions.create(model=model, messages=HI) for _ in range(CALLS)]
    assert [r.choices[0].message.content for r in replies] == [REPLY_TEXT] * CALLS
    seen = gw.arrived()
    assert {r["status"] for r in seen if r["listen"] == ZONE_A} <= {status}
    assert [r["status"] for r in seen if r["listen"] == ZONE_B] == [200] * CALLS


def test_a_stream_fails_over_before_its_first_byte(gw):
    gw.sim.inject(Fault(route="/compatible-mode/*", host=ZONE_A, status=503))
    stream = gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(
        model="qwen-plus", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY_TEXT


def test_a_client_error_is_not_retried(gw):
    gw.sim.inject(Fault(route="/compatible-mode/*", status=400))
    with pytest.raises(openai.BadRequestError):
        gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(model="qwen-plus", messages=HI)
    assert len(gw.arrived()) == 1


def test_no_failover_after_the_first_byte(gw):
    """A stream that breaks mid-way is the client's to see: the gateway cannot take frames back."""
    import httpx

    gw.sim.inject(Fault(route="/compatible-mode/*", stream_error=True))
    with httpx.Client(timeout=15) as client:
        r = client.post(f"{gw.url}/qwen-pl/compatible-mode/v1/chat/completions",
                        headers={"Authorization": f"Bearer {KEY_ALL}"},
                        json={"model": "qwen-plus", "messages": HI, "stream": True})
    frames = sse_data(r.text)
    assert r.status_code == 200 and len(frames) == 2
    assert "error" in json.loads(frames[1])
    assert len(gw.arrived()) == 1


def test_every_zone_failing_answers_with_the_diagnosis(gw):
    gw.sim.set_host_down(ZONE_A)
    gw.sim.set_host_down(ZONE_B)
    with pytest.raises(openai.InternalServerError) as info:
        gw.openai("llm-eas/v1").chat.completions.create(model=EAS_MODEL, messages=HI)
    assert 500 <= info.value.status_code <= 504
    assert info.value.code == "connect_refused"
    assert info.value.body.get("remedy")


# ----------------------------------------------------------------- across a route


def test_route_fails_over_from_a_refused_target(gw):
    reply = gw.openai("v1").chat.completions.create(model="qwen-ha", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert reply.model == "qwen-max"  # served by the second route entry, with its model name
    [rec] = gw.arrived()
    assert rec["path"] == "/compatible-mode/v1/chat/completions"


def test_route_fails_over_from_a_503_target(gw):
    gw.sim.set_eas_service("llm", state="unready")  # the EAS gateway: 503 "no healthy upstream" on every zone
    reply = gw.openai("v1").chat.completions.create(model="chat-ha", messages=HI)
    assert reply.model == "qwen-turbo"
    seen = gw.arrived()
    assert [r["status"] for r in seen if r["path"].startswith("/api/predict/")] != []
    assert {r["status"] for r in seen if r["path"].startswith("/api/predict/")} == {503}
    assert [r["status"] for r in seen if r["path"].startswith("/compatible-mode/")] == [200]


def test_route_streams_from_the_second_target(gw):
    gw.sim.set_eas_service("llm", state="unready")
    stream = gw.openai("v1").chat.completions.create(model="chat-ha", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY_TEXT


def test_route_with_every_target_failing(gw):
    gw.sim.set_eas_service("llm", state="unready")
    with pytest.raises(openai.APIStatusError) as info:
        gw.openai("v1").chat.completions.create(model="deepseek", messages=HI)
    assert 500 <= info.value.status_code <= 504
    assert info.value.code == "no_ready_instance"
    assert info.value.body.get("remedy")


# ----------------------------------------------------------------- 401 refresh


def test_rotated_kms_key_is_refetched_once_and_retried(gw):
    """The upstream key rotates: the cached value gets a 401, the gateway refetches and the client sees 200."""
    client = gw.openai("qwen-kms/compatible-mode/v1")
    assert client.models.list().data  # warms the cache with the old key
    fetches, mark = gw.plane.fetches, gw.mark()
    gw.plane.secrets[KMS_SECRET] = KMS_KEY_NEW
    del gw.sim.api_keys[KMS_KEY_OLD]
    gw.sim.api_keys[KMS_KEY_NEW] = REGION
    reply = client.chat.completions.create(model="qwen-plus", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    seen = gw.arrived(since=mark)
    assert [(r["status"], r["headers"]["Authorization"]) for r in seen] == [
        (401, f"Bearer {KMS_KEY_OLD}"), (200, f"Bearer {KMS_KEY_NEW}")]
    assert gw.plane.fetches == fetches + 1


def test_a_401_is_retried_once_only(gw):
    """A key that stays wrong after the refetch: retried once, never looped."""
    client = gw.openai("qwen-kms/compatible-mode/v1")
    assert client.models.list().data
    mark = gw.mark()
    del gw.sim.api_keys[KMS_KEY_OLD]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="qwen-plus", messages=HI)
    assert 400 <= info.value.status_code < 600
    assert [r["status"] for r in gw.arrived(since=mark)] == [401, 401]
    assert KMS_KEY_OLD not in info.value.response.text


@pytest.mark.parametrize("base", ["qwen-pl/compatible-mode/v1", "v1"])
def test_a_wrong_upstream_key_is_not_the_clients_401(gw, base):
    """The upstream's 401 is about the credential the gateway injected, which the client neither sent nor can
    fix: it must not read as "your key is wrong" (the SDK's AuthenticationError) but as an upstream failure
    with the probe's diagnosis (issue 8: "an upstream failure carries the probe's diagnosis code and remedy")."""
    del gw.sim.api_keys[UPSTREAM_DS_KEY]
    with pytest.raises(openai.APIStatusError) as info:
        gw.openai(base).chat.completions.create(model="qwen-plus", messages=HI)
    assert not isinstance(info.value, openai.AuthenticationError), info.value.response.text
    assert 500 <= info.value.status_code <= 504
    assert info.value.code == "unauthorized"
    assert info.value.body.get("remedy")


def test_rotated_env_key_is_used(gw):
    """env: values are read at use: after the variable changes the next call carries the new key."""
    gw.environ["GW_UP_DS_KEY"] = ROTATED_ENV_KEY
    gw.sim.api_keys[ROTATED_ENV_KEY] = REGION
    del gw.sim.api_keys[UPSTREAM_DS_KEY]
    reply = gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(model="qwen-plus", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert gw.arrived()[-1]["headers"]["Authorization"] == f"Bearer {ROTATED_ENV_KEY}"
