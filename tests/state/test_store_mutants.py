"""The lease's edges: held up to but not at its expiry, lost to a higher number even while unexpired, lost
with its objects, and a record without an expiry is no lease; releasing what one does not hold is nothing."""

from __future__ import annotations

import pytest

from shared.state.file import FileStore


@pytest.fixture
def store(tmp_path):
    return FileStore(tmp_path / "state")


def test_a_lease_is_held_until_just_before_it_expires(store):
    assert store.acquire_lease("a", 60, now=1000)
    assert store.holds("a", now=1059.5)
    assert not store.holds("a", now=1060)


def test_a_higher_lease_number_ends_an_unexpired_lease(store, tmp_path):
    assert store.acquire_lease("a", 60, now=1000)
    other = FileStore(tmp_path / "state")
    assert other._create_lease(2, {"owner": "b", "expires": 1100, "acquired": 1001})
    assert not store.holds("a", now=1001)


def test_a_lease_whose_objects_are_gone_is_not_held(store):
    assert store.acquire_lease("a", 60, now=1000)
    for number in store._lease_numbers():
        store._delete_lease(number)
    assert not store.holds("a", now=1001)


def test_a_lease_record_without_an_expiry_is_not_held(store):
    assert store.acquire_lease("a", 60, now=1000)
    [number] = store._lease_numbers()
    store._write_lease(number, {"owner": "a"})
    assert not store.holds("a", now=1001)


def test_releasing_a_lease_never_taken_is_nothing(store):
    store.release("nobody")
    assert store._lease_numbers() == []
    assert store.acquire_lease("a", 60, now=1000)
    store.release("nobody")
    assert store.holds("a", now=1001)


def test_an_expired_lease_is_free_at_its_expiry(store, tmp_path):
    assert store.acquire_lease("a", 60, now=1000)
    assert FileStore(tmp_path / "state").acquire_lease("b", 60, now=1060)


def test_a_lease_record_without_an_expiry_does_not_block(store, tmp_path):
    assert store.acquire_lease("a", 60, now=1000)
    [number] = store._lease_numbers()
    store._write_lease(number, {"owner": "a"})
    assert FileStore(tmp_path / "state").acquire_lease("b", 60, now=1001)


class OutracedStore(FileStore):
    """A store that loses every create to a contender whose lease is already over when it is read."""

    def _create_lease(self, number, record):
        super()._create_lease(number, {"owner": "racer", "expires": 0, "acquired": 0})
        return super()._create_lease(number, record)


def test_three_lost_races_in_a_row_give_no_lease(tmp_path):
    store = OutracedStore(tmp_path / "state")
    assert not store.acquire_lease("a", 60, now=1000)
    assert not store.holds("a", now=1001)
    assert store._lease_numbers() and max(store._lease_numbers()) == 3
