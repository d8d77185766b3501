"""The OSS backend: signed requests, create-if-absent leases, errors that name no credential."""

from __future__ import annotations

import json

import pytest

from shared.state.oss import OssStore
from shared.state.store import StoreError


def test_oss_requests_are_signed_and_errors_name_no_credential(oss, oss_store, oss_env):
    store = oss_store("errs/")
    store.save({"a": 1})
    assert oss.objects["errs/state.json"] == b'{"a":1}'
    assert all(r["auth"].startswith("OSS ") for r in oss.requests)
    oss.fail_next = 500
    with pytest.raises(StoreError) as info:
        store.load()
    message = str(info.value)
    assert "HTTP 500 InternalError" in message and "oss://vpcprobe-state/errs/" in message
    assert not any(secret in message for secret in oss_env.values())


def test_oss_lease_uses_forbid_overwrite(oss, oss_store):
    store = oss_store("lease-check/")
    assert store.acquire_lease("a", 60, now=0)
    assert json.loads(oss.objects["lease-check/lease/000000000001"])["owner"] == "a"
    assert not store._create_lease(1, {"owner": "b"})  # 409 FileAlreadyExists, not an overwrite
    assert json.loads(oss.objects["lease-check/lease/000000000001"])["owner"] == "a"


def test_oss_without_credentials_is_a_clear_error():
    with pytest.raises(StoreError, match="no credentials: FC sets ALIBABA_CLOUD_ACCESS_KEY_ID"):
        OssStore("b", "oss-cn-hangzhou-internal.aliyuncs.com", environ={})
