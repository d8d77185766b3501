"""Where alert state lives between rounds: a JSON document plus a lease; the backends are file.py and oss.py.

The document is `state.json`, mirrored to `state.backup.json` just before every save, so a
document damaged later (a hand edit, another writer, a disk) is rebuilt from its copy. Loading
only reads: setting a damaged document aside (`quarantine`) is the alert step's decision, under
the lease, never a reader's (the gateway reads without the lease).

The lease keeps two overlapping rounds (a slow round and the next timer) from both sending.
Leases are numbered objects created only-if-absent (`link()` on a file system, `PutObject` with
`x-oss-forbid-overwrite` on OSS). The holder of the highest number holds the lease until it
expires or is released; a stale lease is replaced by creating the next number, which exactly one
contender can do. Numbers only grow (a release marks its object, never deletes it), and a winner
checks that its number is still the highest, so a contender that stalled for minutes cannot
come back with an old number and hold the lease alongside the current holder.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from shared.errors import VpcprobeError

STATE_NAME = "state.json"
BACKUP_NAME = "state.backup.json"


class StoreError(VpcprobeError):
    """The state store failed; the message names the store and the operation, never a credential."""


class LeaseLost(StoreError):
    """The round no longer holds the lease: a newer round may be writing, so this one must not."""


class DamagedState(VpcprobeError):
    """The stored document is not one this vpcprobe can use; the message says what is wrong with it."""


class Store(ABC):
    """A JSON document and a lease. Subclasses provide the object primitives; the lease logic is here."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._held: dict[str, int] = {}
        self._clock = clock  # wall clock for lease expiry (tests move it instead of sleeping)

    def load(self) -> dict[str, Any] | None:
        """The saved document (a JSON object), or None if there is none yet. Only reads: a document that
        is not a JSON object raises DamagedState and stays where it is."""
        return parse_document(self.get_object(STATE_NAME), STATE_NAME)

    def load_backup(self) -> dict[str, Any] | None:
        """The copy written just before the last save, as load() reads the document."""
        return parse_document(self.get_object(BACKUP_NAME), BACKUP_NAME)

    def save(self, doc: dict[str, Any]) -> None:
        """Write the backup copy, then replace the document; each write is atomic (old or new, never a mix)."""
        data = compact_json(doc)
        self.put_object(BACKUP_NAME, data)
        self.put_object(STATE_NAME, data)

    def quarantine(self) -> str | None:
        """Keep a copy of the damaged document aside (`state.json.corrupt-<time>-<id>`); the caller then saves a
        rebuilt one over it. Returns the copy's name, None if there was no document."""
        raw = self.get_object(STATE_NAME)
        if raw is None:
            return None
        name = f"{STATE_NAME}.corrupt-{int(self._clock())}-{uuid.uuid4().hex[:6]}"
        self.put_object(name, raw)
        return name

    @abstractmethod
    def describe(self) -> str: ...

    # named objects beside the document (history, backups): names are relative, '/'-separated
    @abstractmethod
    def get_object(self, name: str) -> bytes | None:
        """An object's bytes, or None if it does not exist."""

    @abstractmethod
    def put_object(self, name: str, data: bytes) -> None:
        """Create or replace an object atomically."""

    @abstractmethod
    def append_object(self, name: str, data: bytes) -> None:
        """Append to an object (created if absent). Only under the lease: appends are not merged."""

    @abstractmethod
    def list_objects(self, prefix: str) -> list[str]:
        """Names that start with prefix, sorted."""

    @abstractmethod
    def delete_object(self, name: str) -> None:
        """Remove an object; absent is fine."""

    # primitives: numbered lease objects
    @abstractmethod
    def _lease_numbers(self) -> list[int]: ...

    @abstractmethod
    def _read_lease(self, number: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def _create_lease(self, number: int, record: dict[str, Any]) -> bool:
        """Create only if absent; False if it exists."""

    @abstractmethod
    def _write_lease(self, number: int, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def _delete_lease(self, number: int) -> None: ...

    def acquire_lease(self, owner: str, ttl_s: float, *, now: float | None = None) -> bool:
        """Take the lease for ttl_s seconds; False while someone else holds an unexpired one."""
        now = self._clock() if now is None else now
        for _ in range(3):
            numbers = self._lease_numbers()
            top = max(numbers, default=0)
            if top:
                current = self._read_lease(top)
                if current is not None and not current.get("released") and float(current.get("expires", 0)) > now:
                    return False
            mine = top + 1
            if not self._create_lease(mine, {"owner": owner, "expires": now + ttl_s, "acquired": now}):
                continue  # another contender created it first: look at the new holder
            if max(self._lease_numbers(), default=0) != mine:
                self._delete_lease(mine)  # a higher number exists: its creator holds the lease
                return False
            self._held[owner] = mine
            for old in numbers:
                if old < mine:
                    try:
                        self._delete_lease(old)
                    except StoreError:
                        pass  # tidying only
            return True
        return False

    def holds(self, owner: str, *, now: float | None = None) -> bool:
        """Whether `owner` still holds an unexpired lease (checked before saving)."""
        now = self._clock() if now is None else now
        mine = self._held.get(owner)
        if mine is None or max(self._lease_numbers(), default=0) != mine:
            return False
        record = self._read_lease(mine)
        return bool(record) and record.get("owner") == owner and float(record.get("expires", 0)) > now

    def release(self, owner: str) -> None:
        """Give the lease up (marks the object released; numbers never go back)."""
        mine = self._held.pop(owner, None)
        if mine is None:
            return
        record = self._read_lease(mine)
        if record is not None and record.get("owner") == owner:
            self._write_lease(mine, {**record, "released": True, "expires": 0})


def parse_document(raw: bytes | None, name: str) -> dict[str, Any] | None:
    """Stored bytes as a JSON object; DamagedState (naming the object) when they are not one."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DamagedState(f"{name} is not valid JSON ({exc.msg} at byte {exc.pos})") from None
    except UnicodeDecodeError:
        raise DamagedState(f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise DamagedState(f"{name} is nested too deep to be a state document") from None
    if not isinstance(doc, dict):
        raise DamagedState(f"{name} holds a JSON {type(doc).__name__}, not an object")
    return doc


def check_name(name: str) -> str:
    """An object name the store accepts: relative, no '..', no empty parts (nothing escapes the store)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise StoreError(f"bad object name {name[:80]!r}")
    return name


def compact_json(doc: Any) -> bytes:
    """The bytes a document or lease record is stored as."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
