"""The file backend: state.json and numbered lease files in one directory, local disk or FC's NAS.

Writes are atomic (temp file + fsync + rename) and a lease is created with `link()`, which is
create-if-absent with content also on NFS. Every OSError (a read-only directory, a full disk) is a
StoreError naming the store and the operation: the alert step reports it and sends nothing, so the
alerts wait in the old document rather than go out unrecorded.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.state.store import Store, StoreError, check_name, compact_json

LEASE_PREFIX = "lease."
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


class FileStore(Store):
    """A directory: state.json and lease.<number> files. Works on local disk and NFS (FC's NAS)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.dir = Path(path)

    def describe(self) -> str:
        return f"file store {self.dir}"

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create the directory: {exc.strerror or exc}") from None

    # named objects: files under the directory
    def _object_path(self, name: str) -> Path:
        return self.dir.joinpath(*check_name(name).split("/"))

    def get_object(self, name: str) -> bytes | None:
        try:
            return self._object_path(name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot read {name}: {exc.strerror or exc}") from None

    def put_object(self, name: str, data: bytes) -> None:
        path = self._object_path(name)
        self._make_parent(path, name)
        self._atomic_write(path, data)

    def append_object(self, name: str, data: bytes) -> None:
        path = self._object_path(name)
        self._make_parent(path, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot append to {name}: {exc.strerror or exc}") from None

    def list_objects(self, prefix: str) -> list[str]:
        names: list[str] = []
        base = str(self.dir)
        for root, dirs, files in os.walk(self.dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = os.path.relpath(root, base)
            for f in files:
                if f.startswith("."):
                    continue  # temp files of atomic writes
                name = f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}"
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    def delete_object(self, name: str) -> None:
        try:
            os.unlink(self._object_path(name))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot remove {name}: {exc.strerror or exc}") from None

    def _make_parent(self, path: Path, name: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create the folder of {name}: {exc.strerror or exc}") from None

    def _atomic_write(self, target: Path, data: bytes) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot write {target.name}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StoreError(f"{self.describe()}: cannot write {target.name}: {exc.strerror or exc}") from None
        self._sync_dir(target.parent)

    def _sync_dir(self, folder: Path) -> None:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _lease_path(self, number: int) -> Path:
        return self.dir / f"{LEASE_PREFIX}{number:012d}"

    def _lease_numbers(self) -> list[int]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot list the leases: {exc.strerror or exc}") from None
        tails = (n[len(LEASE_PREFIX) :] for n in names if n.startswith(LEASE_PREFIX))
        return [int(t) for t in tails if t.isdigit()]

    def _read_lease(self, number: int) -> dict[str, Any] | None:
        try:
            data = json.loads(self._lease_path(number).read_bytes())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _create_lease(self, number: int, record: dict[str, Any]) -> bool:
        self._ensure_dir()
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-lease-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(compact_json(record))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self._lease_path(number))  # atomic create-if-absent, with content, also on NFS
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                return self._create_exclusive(number, record)  # a file system without hard links
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create a lease: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def _create_exclusive(self, number: int, record: dict[str, Any]) -> bool:
        path = self._lease_path(number)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(compact_json(record))
        except OSError:
            os.unlink(path)  # an empty lease file would block every round until someone removed it
            raise
        return True

    def _write_lease(self, number: int, record: dict[str, Any]) -> None:
        self._atomic_write(self._lease_path(number), compact_json(record))

    def _delete_lease(self, number: int) -> None:
        try:
            os.unlink(self._lease_path(number))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot remove an old lease: {exc.strerror or exc}") from None
