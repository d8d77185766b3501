"""Fixtures of the probe tests: one simulator for the package, reset for every test that uses it."""

from __future__ import annotations

import pytest

from shared.local.simulator import Simulator
from tests.probe.loopback import CUSTOM, ZONES


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("DS_KEY", "sk-good-key")
    monkeypatch.setenv("DS_KEY_BJ", "sk-beijing-key")
    monkeypatch.setenv("EAS_TOKEN", "eas-token-1")


@pytest.fixture(scope="package")
def running_sim():
    s = Simulator(
        hosts=ZONES,
        tls_hostnames=(CUSTOM,),
        api_keys={"sk-good-key": "ap-southeast-1", "sk-beijing-key": "cn-beijing"},
        eas_services={"llm": "eas-token-1", "grp.blue": "eas-token-2"},
    ).start()
    yield s
    s.stop()


@pytest.fixture
def sim(running_sim):
    """The simulator with no faults, every zone up and the EAS service running."""
    running_sim.clear()
    for host in ZONES:
        running_sim.set_host_down(host, False)
    running_sim.set_eas_service("llm", token="eas-token-1", state="running")
    yield running_sim
    running_sim.clear()
