"""Fixtures of the state tests: a fake OSS for the real oss2 client, and the function-role keys it takes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from shared.state.oss import OssStore
from tests.fake_oss import FakeOss


@pytest.fixture
def oss_env() -> dict[str, str]:
    """What FC sets from the function's role (canary values: no message may carry them)."""
    return {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-canary-id-1", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "oss-canary-secret-2"}


@pytest.fixture(scope="module")
def oss() -> Iterator[FakeOss]:
    fake = FakeOss().start()
    yield fake
    fake.stop()


@pytest.fixture
def oss_store(oss: FakeOss, oss_env: dict[str, str]) -> Callable[[str], OssStore]:
    """An OssStore on the fake under a prefix; each call is a new client, as another process would be."""
    return lambda prefix: OssStore(oss.bucket, oss.endpoint, prefix, environ=oss_env)
