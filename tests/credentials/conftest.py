"""Fixtures of the credential tests: the simulator, the fake cloud, and a test's own log stream."""

from __future__ import annotations

import io
import time

import pytest

from shared import logs
from shared.local.simulator import Simulator
from tests.credentials.rounds import DS_KEY, EAS_TOKEN, REGION, test_started
from tests.fakecloud import FakeCloud


@pytest.fixture(scope="module")
def sim():
    s = Simulator(hosts=("127.0.0.2",), api_keys={DS_KEY: REGION}, eas_services={"llm": EAS_TOKEN}).start()
    yield s
    s.stop()


@pytest.fixture
def log_stream():
    """The JSON log lines of this test (structlog may still be bound to another test's stream)."""
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs._configured = False
    logs.configure()  # back to whatever sys.stdout is at each call


@pytest.fixture
def cloud(sim):
    sim.clear()
    test_started["t"] = time.time()
    sim.api_keys.clear()
    sim.api_keys[DS_KEY] = REGION
    sim.set_eas_service("llm", token=EAS_TOKEN, state="running")
    with FakeCloud() as fake:
        fake.add_kms_secret("dashscope-key", DS_KEY)
        fake.add_eas_service("llm", token=EAS_TOKEN)
        yield fake
