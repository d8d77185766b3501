"""Gateway keys: Bearer or raw, compared in constant time with every key, unresolvable keys skipped
and logged by name, rate limits per key over a sliding minute; no key value anywhere in what comes out."""

from __future__ import annotations

import asyncio
import hmac
import io
import json

import pytest

from shared import logs
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.gateway import keys as keys_module
from shared.gateway.errors import GatewayError
from shared.gateway.keys import KeyRing
from shared.gateway.settings import GatewayKey

CHAT = "gw-canary-chat-key-1a2b3c"
BATCH = "gw-canary-batch-key-4d5e6f"
CHAT_KEY = GatewayKey("chat-app", CredentialRef("env", "GW_TEST_CHAT"), targets=frozenset({"qwen"}))
CONSTANT_TIME_EQUAL = hmac.compare_digest  # the real one, for the counting stand-ins
BATCH_KEY = GatewayKey("batch", CredentialRef("env", "GW_TEST_BATCH"), models=frozenset({"qwen-plus"}), rpm=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("GW_TEST_CHAT", CHAT)
    monkeypatch.setenv("GW_TEST_BATCH", BATCH)
    return monkeypatch


@pytest.fixture
def log() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs.configure()


def ring(*keys: GatewayKey, clock: Clock | None = None) -> KeyRing:
    return KeyRing(keys or (CHAT_KEY, BATCH_KEY), TokenProvider(), clock=clock or Clock())


def authenticate(keyring: KeyRing, authorization: str | None) -> GatewayKey:
    return asyncio.run(keyring.authenticate(authorization))


def refused(keyring: KeyRing, authorization: str | None) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        authenticate(keyring, authorization)
    return info.value


@pytest.mark.parametrize(
    "authorization,name",
    [
        (f"Bearer {CHAT}", "chat-app"),
        (f"bearer {BATCH}", "batch"),
        (f"BEARER   {BATCH}  ", "batch"),
        (CHAT, "chat-app"),  # EAS style: the raw key
        (f"  {BATCH}\t", "batch"),
    ],
)
def test_bearer_or_raw_key(env, authorization, name):
    assert authenticate(ring(), authorization).name == name


@pytest.mark.parametrize("authorization", [None, "", "   ", "Bearer", "Bearer   ", "bearer "])
def test_missing_key(env, authorization):
    error = refused(ring(), authorization)
    assert (error.status, error.type.value, error.code) == (401, "authentication_error", "missing_api_key")
    assert json.loads(error.body())["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        f"Bearer {CHAT}x",
        f"Bearer {CHAT[:-1]}",
        f"Basic {CHAT}",  # another scheme is not a raw key
        f"Bearer {CHAT} {BATCH}",
        "Bearer 密钥",  # not ASCII: compared as bytes, no TypeError
        f"Bearer {CHAT.upper()}",
    ],
)
def test_wrong_key(env, authorization):
    error = refused(ring(), authorization)
    assert (error.status, error.type.value, error.code) == (401, "authentication_error", "invalid_api_key")
    assert authorization.split()[-1] not in error.body().decode()


def test_every_key_is_compared_in_constant_time_without_early_exit(env, monkeypatch):
    calls: list[tuple[bytes, bytes]] = []

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return CONSTANT_TIME_EQUAL(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    third = GatewayKey("third", CredentialRef("env", "GW_TEST_THIRD"))
    env.setenv("GW_TEST_THIRD", "gw-canary-third-key-7g8h9i")
    keyring = ring(CHAT_KEY, BATCH_KEY, third)
    for authorization, expected in ((f"Bearer {CHAT}", "chat-app"), ("Bearer nope", None), (BATCH, "batch")):
        calls.clear()
        if expected:
            assert authenticate(keyring, authorization).name == expected
        else:
            refused(keyring, authorization)
        assert len(calls) == 3  # the first key matching does not end the loop
        assert {len(a) for a, _ in calls} == {32} and {len(b) for _, b in calls} == {32}  # digests, not keys


def test_an_unresolvable_key_is_skipped_and_logged_by_name_once(env, log):
    env.delenv("GW_TEST_BATCH")
    keyring = ring()
    assert authenticate(keyring, f"Bearer {CHAT}").name == "chat-app"
    assert refused(keyring, f"Bearer {BATCH}").code == "invalid_api_key"
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    unavailable = [line for line in lines if line["event"] == "gateway_key_unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0]["key_name"] == "batch"
    assert unavailable[0]["reference"] == "env:GW_TEST_BATCH"
    env.setenv("GW_TEST_BATCH", BATCH)
    assert authenticate(keyring, f"Bearer {BATCH}").name == "batch"
    assert '"event": "gateway_key_available"' in log.getvalue()
    assert CHAT not in log.getvalue() and BATCH not in log.getvalue()


def test_an_empty_key_value_never_matches(env, log, monkeypatch):
    env.setenv("GW_TEST_BATCH", "  \t ")
    compared: list[bytes] = []

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return CONSTANT_TIME_EQUAL(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    keyring = ring()
    assert refused(keyring, "Bearer x").code == "invalid_api_key"
    assert len(compared) == 1  # only the chat key had a value to compare with
    assert "gateway_key_unavailable" in log.getvalue() and '"key_name": "batch"' in log.getvalue()


def test_a_key_value_is_stripped(env):
    env.setenv("GW_TEST_CHAT", f"  {CHAT}\n")
    assert authenticate(ring(), f"Bearer {CHAT}").name == "chat-app"


def test_a_rotated_key_takes_effect(env):
    keyring = ring()
    assert authenticate(keyring, CHAT).name == "chat-app"
    env.setenv("GW_TEST_CHAT", "gw-canary-chat-key-rotated")
    assert refused(keyring, CHAT).code == "invalid_api_key"
    assert authenticate(keyring, "gw-canary-chat-key-rotated").name == "chat-app"


def test_no_resolvable_key_at_all_is_the_gateways_fault(monkeypatch):
    monkeypatch.delenv("GW_TEST_CHAT", raising=False)
    monkeypatch.delenv("GW_TEST_BATCH", raising=False)
    error = refused(ring(), "Bearer anything")
    assert (error.status, error.type.value, error.code) == (503, "server_error", "gateway_keys_unavailable")
    assert "GW_TEST" not in error.body().decode()  # references stay in the log


def test_rate_limit_over_a_sliding_minute():
    clock = Clock()
    keyring = ring(clock=clock)
    for _ in range(3):
        keyring.check_rate(BATCH_KEY)
        clock.now += 10  # requests at 1000, 1010, 1020
    with pytest.raises(GatewayError) as info:
        keyring.check_rate(BATCH_KEY)  # at 1030: the one at 1000 leaves the window at 1060
    error = info.value
    assert (error.status, error.type.value, error.code) == (429, "rate_limit_error", "rate_limited")
    assert error.headers == {"Retry-After": "30"}
    assert "3 requests per minute (per gateway instance)" in error.message
    clock.now = 1059.5
    with pytest.raises(GatewayError) as info:
        keyring.check_rate(BATCH_KEY)
    assert info.value.headers == {"Retry-After": "1"}
    clock.now = 1060.0
    keyring.check_rate(BATCH_KEY)  # the first request left the window
    with pytest.raises(GatewayError):
        keyring.check_rate(BATCH_KEY)  # the window holds 1010, 1020, 1060 again


def test_rate_limits_are_per_key_and_absent_without_rpm():
    keyring = ring()
    for _ in range(1000):
        keyring.check_rate(CHAT_KEY)
    other = GatewayKey("other", CredentialRef("env", "X"), rpm=3)
    for _ in range(3):
        keyring.check_rate(BATCH_KEY)
        keyring.check_rate(other)
    with pytest.raises(GatewayError):
        keyring.check_rate(BATCH_KEY)
    with pytest.raises(GatewayError):
        keyring.check_rate(other)


def test_access_checks():
    assert KeyRing.allows_target(CHAT_KEY, "qwen") and not KeyRing.allows_target(CHAT_KEY, "llm")
    assert KeyRing.allows_model(CHAT_KEY, "anything")
    assert KeyRing.allows_model(BATCH_KEY, "qwen-plus") and not KeyRing.allows_model(BATCH_KEY, "deepseek")
    assert KeyRing.allows_target(BATCH_KEY, "llm")


def test_key_values_are_masked_in_logs_once_seen(env, log):
    keyring = ring()
    authenticate(keyring, CHAT)
    logs.get_logger("test").info("oops", detail=f"echoed {CHAT} and {BATCH}")
    assert CHAT not in log.getvalue() and BATCH not in log.getvalue()
