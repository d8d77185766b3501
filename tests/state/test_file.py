"""The file backend: atomic writes, a damaged document left in place by readers, and every OSError a StoreError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.state import file as file_mod
from shared.state.file import FileStore
from shared.state.store import DamagedState, StoreError

ROOT = Path(__file__).resolve().parents[2]


def test_file_store_writes_atomically(tmp_path, monkeypatch):
    store = FileStore(tmp_path)
    store.save({"n": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_mod.os, "replace", broken_replace)
    with pytest.raises(StoreError, match="cannot write state.backup.json: No space left on device"):
        store.save({"n": 2})
    monkeypatch.undo()
    assert store.load() == {"n": 1} and store.load_backup() == {"n": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.backup.json", "state.json"]  # no temp file left behind


def test_save_writes_the_backup_copy_first(tmp_path):
    store = FileStore(tmp_path)
    store.save({"n": 1})
    assert json.loads((tmp_path / "state.backup.json").read_text()) == {"n": 1}
    (tmp_path / "state.json").write_text("{damaged")
    assert store.load_backup() == {"n": 1}


@pytest.mark.parametrize(
    "content, says",
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "holds a JSON list"), (b'{"a": "\xff"}', "not UTF-8"),
     (b"[" * 100_000 + b"]" * 100_000, "nested too deep")],
)
def test_loading_a_damaged_document_says_why_and_moves_nothing(tmp_path, content, says):
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(DamagedState, match=says):
        FileStore(tmp_path).load()
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # a reader never sets anything aside


def test_quarantine_keeps_the_damaged_bytes_aside(tmp_path):
    (tmp_path / "state.json").write_bytes(b"{not json")
    store = FileStore(tmp_path, clock=lambda: 1_800_000_000.0)
    name = store.quarantine()
    assert name is not None and name.startswith("state.json.corrupt-1800000000-")
    assert (tmp_path / name).read_bytes() == b"{not json"
    assert store.quarantine() != name  # a second quarantine in the same second keeps the first copy
    assert FileStore(tmp_path / "none").quarantine() is None


@pytest.fixture
def frozen_dir(tmp_path):
    """A directory nothing can be created in, also for root (chattr +i), else by permissions."""
    folder = tmp_path / "state"
    folder.mkdir()
    FileStore(folder).save({"version": 1})
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_read_only_directory_is_a_store_error_for_the_lease_and_the_document(frozen_dir):
    store = FileStore(frozen_dir)
    with pytest.raises(StoreError, match=r"file store .*: cannot create a lease: Operation not permitted|denied"):
        store.acquire_lease("a", 60)
    with pytest.raises(StoreError, match="cannot write state.backup.json"):
        store.save({"version": 1, "n": 2})
    assert store.load() == {"version": 1}  # reading still works


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {root!r})
from shared.state.file import FileStore
from shared.state.store import StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write to a file fails (EFBIG), as on a full disk
store = FileStore({path!r})
for what, call in (("lease", lambda: store.acquire_lease("a", 60)), ("save", lambda: store.save({{"n": 2}}))):
    try:
        call()
        print(what, "no error")
    except StoreError as exc:
        print(what, "StoreError:", exc)
"""


def test_a_full_disk_is_a_store_error_and_leaves_no_temp_file(tmp_path):
    FileStore(tmp_path).save({"n": 1})
    out = subprocess.run([sys.executable, "-c", FULL_DISK.format(root=str(ROOT), path=str(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith("lease StoreError:") and "cannot create a lease: File too large" in lines[0]
    assert lines[1].startswith("save StoreError:") and "cannot write state.backup.json: File too large" in lines[1]
    assert sorted(os.listdir(tmp_path)) == ["state.backup.json", "state.json"]
    assert FileStore(tmp_path).load() == {"n": 1}

