"""The file backend: atomic writes, and a corrupt document set aside rather than fatal."""

from __future__ import annotations

import os

import pytest

from shared.state import file as file_mod
from shared.state.file import FileStore
from shared.state.store import StoreError


def test_file_store_writes_atomically(tmp_path, monkeypatch):
    store = FileStore(tmp_path)
    store.save({"n": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_mod.os, "replace", broken_replace)
    with pytest.raises(StoreError, match="cannot write state.json: No space left on device"):
        store.save({"n": 2})
    monkeypatch.undo()
    assert store.load() == {"n": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temp file left behind


def test_corrupt_state_is_moved_aside_not_fatal(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    assert FileStore(tmp_path).load() is None
    assert [p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir()] == [True]
