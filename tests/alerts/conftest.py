"""Loopback receivers of the alert delivery tests: a DingTalk robot (its clock follows the rounds) and an SMTP sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.smtp_sink import SmtpSink
from shared.state.oss import OssStore
from tests.alert_fixtures import at
from tests.fake_oss import FakeOss

TOKEN, SECRET = "robot-canary-token-31", "SECcanary-robot-secret-32"
USER, PASSWORD = "alerts@example.com", "smtp-canary-password-33"
ENV = {"DT_TOKEN": TOKEN, "DT_SECRET": SECRET, "SMTP_PASSWORD": PASSWORD}


@pytest.fixture
def robot() -> Iterator[DingTalkReceiver]:
    r = DingTalkReceiver({TOKEN: SECRET}, clock=lambda: at(0).timestamp()).start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink("ssl", users={USER: PASSWORD}).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def oss() -> Iterator[FakeOss]:
    fake = FakeOss().start()
    yield fake
    fake.stop()


@pytest.fixture
def oss_store(oss: FakeOss) -> Callable[[str], OssStore]:
    """An OssStore on the loopback fake under a prefix; each call is a new client, as another process would be."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-canary-id-41",
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "oss-canary-secret-42"}
    return lambda prefix: OssStore(oss.bucket, oss.endpoint, prefix, environ=env)
