"""Named objects beside the document (history, backups) on both backends: get, put, append, list, delete."""

from __future__ import annotations

import uuid

import pytest

from shared.state.store import StoreError


@pytest.fixture(params=["file", "oss"])
def store(request, tmp_path, oss_store):
    if request.param == "file":
        from shared.state.file import FileStore

        return FileStore(tmp_path / "state")
    return oss_store(f"objects-{uuid.uuid4().hex[:8]}/")


def test_put_get_replace_and_delete(store):
    assert store.get_object("history/a.json") is None
    store.put_object("history/a.json", b"one")
    store.put_object("history/a.json", b"two")
    assert store.get_object("history/a.json") == b"two"
    store.delete_object("history/a.json")
    store.delete_object("history/a.json")  # absent is fine
    assert store.get_object("history/a.json") is None


def test_append_creates_then_extends(store):
    store.append_object("history/raw/h1.jsonl", b"a\n")
    store.append_object("history/raw/h1.jsonl", b"bc\n")
    assert store.get_object("history/raw/h1.jsonl") == b"a\nbc\n"


def test_list_is_sorted_by_prefix_and_skips_other_objects(store):
    for name in ("history/raw/2.jsonl", "history/raw/1.jsonl", "history/hourly/1.json", "other.json"):
        store.put_object(name, b"x")
    store.save({"targets": {}})
    assert store.list_objects("history/raw/") == ["history/raw/1.jsonl", "history/raw/2.jsonl"]
    assert store.list_objects("history/") == ["history/hourly/1.json", "history/raw/1.jsonl", "history/raw/2.jsonl"]


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "./a"])
def test_names_cannot_escape_the_store(store, name):
    with pytest.raises(StoreError, match="bad object name"):
        store.put_object(name, b"x")


def test_oss_append_recovers_a_stale_position(oss, oss_store):
    oss_store = oss_store(f"objects-{uuid.uuid4().hex[:8]}/")
    oss_store.append_object("h.jsonl", b"a")
    oss.objects[oss_store.prefix + "h.jsonl"] += b"zz"  # someone appended behind our back
    oss_store.append_object("h.jsonl", b"b")
    assert oss_store.get_object("h.jsonl") == b"azzb"
