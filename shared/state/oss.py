"""The OSS backend, for FC without NAS: the same document and leases as objects under a prefix.

`oss2` is imported only when an OssStore is made (FC's python3.10 runtime ships it); a lease is
created with `x-oss-forbid-overwrite`, OSS's create-if-absent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared import logs
from shared.state.store import Store, StoreError, check_name, compact_json


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
        self._append_at: dict[str, int] = {}  # next AppendObject position per key, learnt from OSS
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

    # named objects: keys under the prefix
    def get_object(self, name: str) -> bytes | None:
        return self._get(self.prefix + check_name(name))

    def put_object(self, name: str, data: bytes) -> None:
        self._put(self.prefix + check_name(name), data)

    def append_object(self, name: str, data: bytes) -> None:
        """AppendObject at the object's length; a stale position is corrected once from OSS's answer."""
        key = self.prefix + check_name(name)
        position = self._append_at.get(key, 0)
        for _ in range(3):
            try:
                result = self._bucket.append_object(key, position, data)
                self._append_at[key] = result.next_position
                return
            except self._oss.exceptions.PositionNotEqualToLength as exc:
                position = int(exc.next_position)
            except self._oss.exceptions.OssError as exc:
                raise self._fail("AppendObject", key, exc) from None
        raise StoreError(f"{self.describe()}: AppendObject {key} failed: the object keeps changing under the lease")

    def list_objects(self, prefix: str) -> list[str]:
        base = self.prefix + prefix
        names, marker = [], ""
        try:
            while True:
                page = self._bucket.list_objects(prefix=base, marker=marker, max_keys=1000)
                names.extend(obj.key[len(self.prefix) :] for obj in page.object_list)
                if not page.is_truncated:
                    return sorted(names)
                marker = page.next_marker
        except self._oss.exceptions.OssError as exc:
            raise self._fail("ListObjects", base, exc) from None

    def delete_object(self, name: str) -> None:
        key = self.prefix + check_name(name)
        try:
            self._bucket.delete_object(key)
        except self._oss.exceptions.OssError as exc:
            raise self._fail("DeleteObject", key, exc) from None

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
        return self._put(self._lease_key(number), compact_json(record), headers={"x-oss-forbid-overwrite": "true"})

    def _write_lease(self, number: int, record: dict[str, Any]) -> None:
        self._put(self._lease_key(number), compact_json(record))

    def _delete_lease(self, number: int) -> None:
        try:
            self._bucket.delete_object(self._lease_key(number))
        except self._oss.exceptions.OssError as exc:
            raise self._fail("DeleteObject", self._lease_key(number), exc) from None
