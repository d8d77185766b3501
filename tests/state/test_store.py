"""The document and the lease, the same on both backends (a directory, and OSS through the real oss2)."""

from __future__ import annotations

import threading
import uuid

import pytest

from shared.state.file import FileStore


@pytest.fixture(params=["file", "oss"])
def factory(request, tmp_path, oss_store):
    """A function returning a fresh store object on the same place (as another process would)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    if request.param == "file":
        return lambda: FileStore(tmp_path / "state")
    return lambda: oss_store(prefix)


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
