"""The `state:` section: which store keeps alert state, validated; and opening that store.

`file` (default) is a directory on local disk or a NAS mount in FC; `oss` is a bucket prefix,
for FC without NAS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.config.reader import Reader
from shared.state.file import FileStore
from shared.state.oss import OssStore
from shared.state.store import Store

BACKENDS = ("file", "oss")
LEASE_TTL_S = 120.0  # the FC function's timeout (s.yaml: 120 s) bounds a round holding it
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")


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
    """The store the settings name (an OssStore imports oss2 only now)."""
    if settings.backend == "oss":
        return OssStore(settings.bucket or "", settings.endpoint or "", settings.prefix, environ=environ)
    return FileStore(settings.path or default_path(environ))
