"""The lease file on a file system without hard links (O_EXCL instead of link), and what a failed
write says: the OS's words for why, not errno's repr."""

from __future__ import annotations

import errno
import json
import os

import pytest

from shared.state.file import FileStore
from shared.state.store import StoreError


@pytest.fixture
def no_hard_links(monkeypatch):
    """os.link as a file system without hard links answers it (some FUSE and SMB mounts: EPERM)."""

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", refuse)


def test_without_hard_links_the_lease_is_created_exclusively_with_its_record(tmp_path, no_hard_links):
    store = FileStore(tmp_path / "state")
    assert store.acquire_lease("a", 60, now=1000)
    [number] = store._lease_numbers()
    assert json.loads(store._lease_path(number).read_bytes()) == {"owner": "a", "expires": 1060, "acquired": 1000}
    assert not FileStore(tmp_path / "state").acquire_lease("b", 60, now=1001)
    assert store.holds("a", now=1001)
    assert not [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(".tmp")]


def test_without_hard_links_an_existing_lease_number_is_not_taken(tmp_path, no_hard_links):
    store = FileStore(tmp_path / "state")
    assert store._create_lease(1, {"owner": "a", "expires": 1060})
    assert not store._create_lease(1, {"owner": "b", "expires": 1070})
    assert json.loads(store._lease_path(1).read_bytes()) == {"owner": "a", "expires": 1060}


def test_another_link_error_is_a_store_error(tmp_path, monkeypatch):
    def broken(src, dst, *args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "link", broken)
    store = FileStore(tmp_path / "state")
    with pytest.raises(StoreError) as caught:
        store.acquire_lease("a", 60, now=1000)
    assert str(caught.value).endswith(f"cannot create a lease: {os.strerror(errno.EIO)}")
    assert store._lease_numbers() == []


def test_a_write_that_cannot_start_names_the_file_and_the_reason(tmp_path):
    store = FileStore(tmp_path / "state")
    with pytest.raises(StoreError) as caught:
        store._atomic_write(tmp_path / "missing" / "x.json", b"{}")
    assert str(caught.value) == f"{store.describe()}: cannot write x.json: {os.strerror(errno.ENOENT)}"


@pytest.fixture
def listings_during_writes(monkeypatch, tmp_path):
    """What list_objects shows at the moment each write syncs its temporary file (before the rename)."""
    store = FileStore(tmp_path / "state")
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd):
        seen.append(store.list_objects(""))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return store, seen


def test_a_listing_during_a_write_shows_no_temporary_file(listings_during_writes):
    store, seen = listings_during_writes
    store.put_object("history/a.json", b"{}")
    store.save({"version": 1})
    assert store.acquire_lease("a", 60, now=1000)
    assert seen and all(
        name in ("history/a.json", "state.json", "state.backup.json") or name.startswith("lease.")
        for listing in seen
        for name in listing
    ), seen


def test_a_lease_created_without_hard_links_is_readable_by_all_and_writable_by_its_owner(tmp_path, no_hard_links):
    old = os.umask(0o022)
    try:
        store = FileStore(tmp_path / "state")
        assert store.acquire_lease("a", 60, now=1000)
    finally:
        os.umask(old)
    [number] = store._lease_numbers()
    assert store._lease_path(number).stat().st_mode & 0o777 == 0o644
