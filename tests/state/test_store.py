"""State stores: atomic documents and the lease, on a directory and on OSS (real oss2 against a fake)."""

from __future__ import annotations

import json
import os
import threading
import uuid

import pytest

from shared.state import store as state_mod
from shared.state.store import FileStore, OssStore, StoreError, StoreSettings, default_path, open_store
from tests.fake_oss import FakeOss

OSS_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-canary-id-1", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "oss-canary-secret-2"}


@pytest.fixture(scope="module")
def oss():
    fake = FakeOss().start()
    yield fake
    fake.stop()


def make_oss(oss: FakeOss, prefix: str) -> OssStore:
    return OssStore(oss.bucket, oss.endpoint, prefix, environ=OSS_ENV)


@pytest.fixture(params=["file", "oss"])
def factory(request, tmp_path, oss):
    """A function returning a fresh store object on the same place (as another process would)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    if request.param == "file":
        return lambda: FileStore(tmp_path / "state")
    return lambda: make_oss(oss, prefix)


def test_document_round_trip(factory):
    store = factory()
    assert store.load() is None
    store.save({"version": 1, "targets": {"a": {"state": "firing"}}})
    assert factory().load() == {"version": 1, "targets": {"a": {"state": "firing"}}}


def test_lease_is_exclusive_until_released_or_expired(factory):
    a, b, c = factory(), factory(), factory()
    assert a.acquire_lease("a", 60, now=1000)
    assert not b.acquire_lease("b", 60, now=1001)
    assert a.holds("a", now=1001)
    a.release("a")
    assert b.acquire_lease("b", 60, now=1002)
    # b's round dies without releasing: the lease is taken over only once it expired
    assert not c.acquire_lease("c", 60, now=1061)
    assert c.acquire_lease("c", 60, now=1063)
    assert not b.holds("b", now=1063) and c.holds("c", now=1063)


def test_exactly_one_of_many_concurrent_contenders_wins(factory):
    stores = [factory() for _ in range(8)]
    gate = threading.Barrier(len(stores))
    won: list[int] = []

    def contend(i: int) -> None:
        gate.wait()
        if stores[i].acquire_lease(f"owner-{i}", 60, now=5000):
            won.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 1


def test_a_stalled_contender_with_an_old_number_cannot_hold(factory):
    holder = factory()
    assert holder.acquire_lease("x", 60, now=0)
    holder.release("x")
    assert holder.acquire_lease("y", 60, now=1)  # lease 2; lease 1 is tidied away
    stalled = factory()
    real = stalled._lease_numbers
    views: list[list[int]] = [[]]  # its first look predates both leases: it thinks number 1 is free
    stalled._lease_numbers = lambda: views.pop() if views else real()  # type: ignore[method-assign]
    assert not stalled.acquire_lease("z", 60, now=2)
    assert holder.holds("y", now=2)


def test_lease_numbers_only_grow(factory):
    store = factory()
    for i in range(4):
        assert store.acquire_lease(f"o{i}", 60, now=i)
        store.release(f"o{i}")
    assert store._lease_numbers() == [4]


def test_file_store_writes_atomically(tmp_path, monkeypatch):
    store = FileStore(tmp_path)
    store.save({"n": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "replace", broken_replace)
    with pytest.raises(StoreError, match="cannot write state.json: No space left on device"):
        store.save({"n": 2})
    monkeypatch.undo()
    assert store.load() == {"n": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temp file left behind


def test_corrupt_state_is_moved_aside_not_fatal(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    assert FileStore(tmp_path).load() is None
    assert [p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir()] == [True]


def test_oss_requests_are_signed_and_errors_name_no_credential(oss):
    store = make_oss(oss, "errs/")
    store.save({"a": 1})
    assert oss.objects["errs/state.json"] == b'{"a":1}'
    assert all(r["auth"].startswith("OSS ") for r in oss.requests)
    oss.fail_next = 500
    with pytest.raises(StoreError) as info:
        store.load()
    message = str(info.value)
    assert "HTTP 500 InternalError" in message and "oss://vpcprobe-state/errs/" in message
    assert not any(secret in message for secret in OSS_ENV.values())


def test_oss_lease_uses_forbid_overwrite(oss):
    store = make_oss(oss, "lease-check/")
    assert store.acquire_lease("a", 60, now=0)
    assert json.loads(oss.objects["lease-check/lease/000000000001"])["owner"] == "a"
    assert not store._create_lease(1, {"owner": "b"})  # 409 FileAlreadyExists, not an overwrite
    assert json.loads(oss.objects["lease-check/lease/000000000001"])["owner"] == "a"


def test_oss_without_credentials_is_a_clear_error():
    with pytest.raises(StoreError, match="no credentials: FC sets ALIBABA_CLOUD_ACCESS_KEY_ID"):
        OssStore("b", "oss-cn-hangzhou-internal.aliyuncs.com", environ={})


def test_default_paths_and_backends(tmp_path):
    assert default_path({"FC_FUNCTION_NAME": "vpcprobe-probe"}) == "/tmp/vpcprobe"
    assert default_path({}) == ".vpcprobe/state"
    assert isinstance(open_store(StoreSettings(path=str(tmp_path))), FileStore)
    settings = StoreSettings("oss", bucket="my-bucket", endpoint="oss-cn-hangzhou-internal.aliyuncs.com")
    oss_store = open_store(settings, OSS_ENV)
    assert isinstance(oss_store, OssStore) and oss_store.describe() == "oss store oss://my-bucket/vpcprobe/"
