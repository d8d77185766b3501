"""Where alert state lives between rounds: a JSON document plus a lease, on a file system or OSS.

`file` (default) writes atomically (temp file + fsync + rename), on local disk or a NAS mount in
FC. `oss` keeps the same document in an OSS bucket, for FC without NAS (`oss2` is imported only
then; FC's python3.10 runtime ships it).

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
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import logs
from shared.config.load import Reader
from shared.errors import VpcprobeError

BACKENDS = ("file", "oss")
LEASE_TTL_S = 120.0  # the FC function's timeout (s.yaml: 120 s) bounds a round holding it
STATE_NAME = "state.json"
LEASE_PREFIX = "lease."
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class StoreError(VpcprobeError):
    """The state store failed; the message names the store and the operation, never a credential."""


@dataclass(frozen=True)
class StoreSettings:
    backend: str = "file"
    path: str | None = None  # file: a directory; None = default_path()
    bucket: str | None = None  # oss
    endpoint: str | None = None  # oss, e.g. oss-cn-hangzhou-internal.aliyuncs.com
    prefix: str = "vpcprobe/"  # oss
    lease_ttl_s: float = LEASE_TTL_S


def default_path(environ: Mapping[str, str] = os.environ) -> str:
    """Locally `.vpcprobe/state`; in FC `/tmp/vpcprobe` (lost when the instance goes: mount NAS or use oss)."""
    return "/tmp/vpcprobe" if environ.get("FC_FUNCTION_NAME") else ".vpcprobe/state"


def read_settings(r: Reader) -> StoreSettings:
    """Validate the `state:` section."""
    backend = r.choice("backend", BACKENDS, "file") or "file"
    ttl = r.seconds("lease_ttl", LEASE_TTL_S) or LEASE_TTL_S
    if ttl < 10:
        r.error("must be at least 10s (longer than the slowest alert delivery)", "lease_ttl")
    if backend == "file":
        for key in ("bucket", "endpoint", "prefix"):
            if key in r.data:
                r.error("belongs to backend: oss", key)
                r.seen.add(key)
        return StoreSettings("file", path=r.str("path"), lease_ttl_s=ttl)
    if "path" in r.data:
        r.error("belongs to backend: file (a directory, e.g. a NAS mount)", "path")
        r.seen.add("path")
    bucket = r.str("bucket", required=True)
    if bucket is not None and not _BUCKET.match(bucket):
        r.error(f"'{bucket}' is not an OSS bucket name (3-63 lowercase letters, digits and '-')", "bucket")
    endpoint = r.str("endpoint", required=True)
    if endpoint is not None and ("/" in endpoint.split("://", 1)[-1] or " " in endpoint):
        r.error(f"'{endpoint}' is not an OSS endpoint such as oss-cn-hangzhou-internal.aliyuncs.com", "endpoint")
    prefix = r.str("prefix", "vpcprobe/") or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return StoreSettings("oss", bucket=bucket, endpoint=endpoint, prefix=prefix, lease_ttl_s=ttl)


def open_store(settings: StoreSettings, environ: Mapping[str, str] = os.environ) -> Store:
    if settings.backend == "oss":
        return OssStore(settings.bucket or "", settings.endpoint or "", settings.prefix, environ=environ)
    return FileStore(settings.path or default_path(environ))


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


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class FileStore(Store):
    """A directory: state.json and lease.<number> files. Works on local disk and NFS (FC's NAS)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.dir = Path(path)
        self.file = self.dir / STATE_NAME

    def describe(self) -> str:
        return f"file store {self.dir}"

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create the directory: {exc.strerror or exc}") from None

    def load(self) -> dict[str, Any] | None:
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot read {STATE_NAME}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            return doc
        except ValueError:
            # Atomic writes make this unlikely; keep the evidence and start over rather than never alert again.
            aside = self.file.with_name(f"{STATE_NAME}.corrupt-{int(time.time())}")
            os.replace(self.file, aside)
            logs.get_logger("vpcprobe.state").error("state_corrupt", store=self.describe(), moved_to=str(aside))
            return None

    def save(self, doc: dict[str, Any]) -> None:
        self._ensure_dir()
        self._atomic_write(self.file, _dumps(doc))

    def _atomic_write(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
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
        self._sync_dir()

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self.dir, os.O_RDONLY)
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
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-lease-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_dumps(record))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self._lease_path(number))  # atomic create-if-absent, with content, also on NFS
                return True
            except FileExistsError:
                return False
            except OSError:
                return self._create_exclusive(number, record)  # a file system without hard links
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _create_exclusive(self, number: int, record: dict[str, Any]) -> bool:
        try:
            fd = os.open(self._lease_path(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(_dumps(record))
        return True

    def _write_lease(self, number: int, record: dict[str, Any]) -> None:
        self._atomic_write(self._lease_path(number), _dumps(record))

    def _delete_lease(self, number: int) -> None:
        try:
            os.unlink(self._lease_path(number))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot remove an old lease: {exc.strerror or exc}") from None


class OssStore(Store):
    """An OSS prefix: <prefix>state.json and <prefix>lease/<number>. Credentials: FC's role (env)."""

    def __init__(
        self,
        bucket: str,
        endpoint: str,
        prefix: str = "vpcprobe/",
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        import oss2  # only the oss backend pays for it

        self._oss = oss2
        key_id = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        key_secret = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        token = environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")
        if not key_id or not key_secret:
            raise StoreError(
                f"oss store {bucket}: no credentials: FC sets ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET from the "
                "function's role (grant it oss:GetObject, PutObject, DeleteObject, ListObjects on the prefix)"
            )
        for value in (key_id, key_secret, token):
            logs.register_secret(value)
        logs.guard_stdlib_logging()  # oss2 logs request headers (the STS token among them) at DEBUG
        auth = oss2.StsAuth(key_id, key_secret, token) if token else oss2.Auth(key_id, key_secret)
        if "://" not in endpoint:
            endpoint = "https://" + endpoint
        self.bucket_name, self.prefix = bucket, prefix
        try:
            self._bucket = oss2.Bucket(auth, endpoint, bucket, connect_timeout=5)
        except oss2.exceptions.OssError as exc:
            raise StoreError(f"{self.describe()}: {getattr(exc, 'details', None) or type(exc).__name__}") from None

    def describe(self) -> str:
        return f"oss store oss://{self.bucket_name}/{self.prefix}"

    def _fail(self, op: str, key: str, exc: Exception) -> StoreError:
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None) or type(exc).__name__
        return StoreError(f"{self.describe()}: {op} {key} failed: HTTP {status} {code}")

    def _get(self, key: str) -> bytes | None:
        try:
            return self._bucket.get_object(key).read()
        except self._oss.exceptions.NoSuchKey:
            return None
        except self._oss.exceptions.OssError as exc:
            raise self._fail("GetObject", key, exc) from None

    def _put(self, key: str, data: bytes, headers: dict[str, str] | None = None) -> bool:
        try:
            self._bucket.put_object(key, data, headers=headers)
            return True
        except self._oss.exceptions.OssError as exc:
            if headers and getattr(exc, "status", None) == 409:  # FileAlreadyExists (forbid-overwrite)
                return False
            raise self._fail("PutObject", key, exc) from None

    def load(self) -> dict[str, Any] | None:
        raw = self._get(self.prefix + STATE_NAME)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            logs.get_logger("vpcprobe.state").error("state_corrupt", store=self.describe())
            return None
        return doc if isinstance(doc, dict) else None

    def save(self, doc: dict[str, Any]) -> None:
        self._put(self.prefix + STATE_NAME, _dumps(doc))

    def _lease_key(self, number: int) -> str:
        return f"{self.prefix}lease/{number:012d}"

    def _lease_numbers(self) -> list[int]:
        base = self.prefix + "lease/"
        numbers, marker = [], ""
        try:
            while True:
                page = self._bucket.list_objects(prefix=base, marker=marker, max_keys=100)
                for obj in page.object_list:
                    tail = obj.key[len(base) :]
                    if tail.isdigit():
                        numbers.append(int(tail))
                if not page.is_truncated:
                    return numbers
                marker = page.next_marker
        except self._oss.exceptions.OssError as exc:
            raise self._fail("ListObjects", base, exc) from None

    def _read_lease(self, number: int) -> dict[str, Any] | None:
        raw = self._get(self._lease_key(number))
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _create_lease(self, number: int, record: dict[str, Any]) -> bool:
        return self._put(self._lease_key(number), _dumps(record), headers={"x-oss-forbid-overwrite": "true"})

    def _write_lease(self, number: int, record: dict[str, Any]) -> None:
        self._put(self._lease_key(number), _dumps(record))

    def _delete_lease(self, number: int) -> None:
        try:
            self._bucket.delete_object(self._lease_key(number))
        except self._oss.exceptions.OssError as exc:
            raise self._fail("DeleteObject", self._lease_key(number), exc) from None
