"""OSS requests under the function role's STS credentials carry the security token (a store that
signs with the key pair alone is refused by OSS for temporary keys)."""

from __future__ import annotations

import pytest

from shared.state.oss import OssStore
from shared.state.store import StoreError

TOKEN = "CAIS-canary-sts-token-3"


def test_every_request_carries_the_sts_token(oss, oss_env):
    store = OssStore(oss.bucket, oss.endpoint, "sts/", environ={**oss_env, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN})
    before = len(oss.requests)
    store.save({"a": 1})
    assert store.load() == {"a": 1}
    assert store.acquire_lease("a", 60, now=0)
    sent = oss.requests[before:]
    assert len(sent) >= 3
    assert [r["headers"].get("x-oss-security-token") for r in sent] == [TOKEN] * len(sent)


def test_a_long_term_key_sends_no_token(oss, oss_store):
    store = oss_store("no-sts/")
    before = len(oss.requests)
    store.save({"b": 2})
    sent = oss.requests[before:]
    assert sent and all("x-oss-security-token" not in r["headers"] for r in sent)


def test_store_errors_under_sts_name_no_credential(oss, oss_env):
    env = {**oss_env, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN}
    store = OssStore(oss.bucket, oss.endpoint, "sts-err/", environ=env)
    oss.fail_next = 503
    with pytest.raises(StoreError) as info:
        store.load()
    assert "HTTP 503" in str(info.value)
    assert not any(secret in str(info.value) for secret in env.values())
