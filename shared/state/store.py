"""Where alert state lives between rounds: a JSON document plus a lease; the backends are file.py and oss.py.

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
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from shared.errors import VpcprobeError

STATE_NAME = "state.json"


class StoreError(VpcprobeError):
    """The state store failed; the message names the store and the operation, never a credential."""


class Store(ABC):
    """A JSON document and a lease. Subclasses provide the object primitives; the lease logic is here."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._held: dict[str, int] = {}
        self._clock = clock  # wall clock for lease expiry (tests move it instead of sleeping)

    @abstractmethod
    def load(self) -> dict[str, Any] | None:
        """The saved document, or None if there is none yet."""

    @abstractmethod
    def save(self, doc: dict[str, Any]) -> None:
        """Replace the document atomically: a reader sees the old or the new one, never a mix."""

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


def check_name(name: str) -> str:
    """An object name the store accepts: relative, no '..', no empty parts (nothing escapes the store)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise StoreError(f"bad object name {name[:80]!r}")
    return name


def compact_json(doc: Any) -> bytes:
    """The bytes a document or lease record is stored as."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
