"""Fixtures of the history tests: a store on each backend (a directory, or the real oss2 client against a
loopback fake OSS), and probe results at chosen times and latencies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from shared.state.file import FileStore
from shared.state.oss import OssStore
from shared.state.store import Store
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status
from tests.fake_oss import FakeOss

# 2026-12-02 10:00:00 UTC, an hour start
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc).timestamp()
OSS_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-history-canary-1", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "hist-canary-2"}


@pytest.fixture(scope="module")
def oss() -> Iterator[FakeOss]:
    fake = FakeOss().start()
    yield fake
    fake.stop()


@pytest.fixture(params=["file", "oss"])
def store(request, tmp_path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "state")
    fake = request.getfixturevalue("oss")
    return OssStore(fake.bucket, fake.endpoint, f"history-{uuid.uuid4().hex[:8]}/", environ=OSS_ENV)


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    return FileStore(tmp_path / "state")


def probe(
    name: str,
    status: str = "up",
    total: float | None = 5.0,
    *,
    ttfb: float | None = 3.0,
    code: Code | None = None,
    zones: str = "uu",
    tls_days_left: int | None = None,
    kind: str = "dashscope",
) -> ProbeResult:
    """A result as the prober makes one: `zones` one letter per address (u up, d down)."""
    addresses = [
        AddressResult(f"127.0.0.{i + 2}", 80, True, status=Status.UP if z == "u" else Status.DOWN)
        for i, z in enumerate(zones)
    ]
    if code is None and status in ("down", "degraded"):
        code = Code.CONNECT_REFUSED if status == "down" else Code.ZONES_DOWN
    return ProbeResult(
        name,
        kind,
        f"http://ep-{name}.dashscope.ap-southeast-1.privatelink.aliyuncs.com/compatible-mode/v1/models",
        Status(status),
        http_status=200 if status != "down" else None,
        phases_ms={"dns": 0.1, "connect": 1.0, "ttfb": ttfb, "total": total},
        addresses=addresses,
        diagnosis=None if code is None else diagnose(code, "observed"),
        tls_days_left=tls_days_left,
    )
