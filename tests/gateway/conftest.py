"""Fixtures of the gateway acceptance tests: simulator, gateway in a thread, SDK clients, captured logs.

End to end over real sockets: SDK -> gateway (127.0.0.1, ephemeral port) -> simulator (127.0.0.2 and
127.0.0.3, two "zones"). The gateway modules are imported inside the fixtures, so the unit tests in this
directory still run while the gateway is being written.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared import logs
from shared.config.load import Config, parse_config
from shared.credentials.provider import TokenProvider
from shared.credentials.settings import CloudSettings
from shared.local.simulator import Simulator
from tests.gateway.harness import (
    BASE_ENV,
    CUSTOM_HOST,
    DEAD_ADDR,
    EAS_SERVICE,
    KEY_ALL,
    KMS_KEY_OLD,
    KMS_SECRET,
    REGION,
    UPSTREAM_DS_KEY,
    UPSTREAM_EAS_TOKEN,
    ZONE_A,
    ZONE_B,
    RotatingPlane,
    config_dict,
)


@pytest.fixture(scope="session")
def gw_sim() -> Iterator[Simulator]:
    sim = Simulator(
        hosts=(ZONE_A, ZONE_B),
        tls_hostnames=(CUSTOM_HOST,),
        region=REGION,
        api_keys={UPSTREAM_DS_KEY: REGION},
        eas_services={EAS_SERVICE: UPSTREAM_EAS_TOKEN},
    ).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def dead_port() -> Iterator[int]:
    """A port on DEAD_ADDR that is bound (so nobody else takes it) but never listens: connect refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((DEAD_ADDR, 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="session")
def gw_environ() -> dict[str, str]:
    return dict(BASE_ENV)


@pytest.fixture(scope="session")
def gw_plane() -> RotatingPlane:
    return RotatingPlane()


@pytest.fixture(scope="session")
def gw_config(gw_sim: Simulator, dead_port: int, tmp_path_factory: pytest.TempPathFactory) -> Config:
    ca = tmp_path_factory.mktemp("gateway") / "sim-ca.pem"
    ca.write_bytes(gw_sim.ca_pem or b"")
    return parse_config(config_dict(gw_sim, dead_port, str(ca)), path="gateway-test.yaml")


@pytest.fixture(scope="session")
def gw_tokens(gw_environ: dict[str, str], gw_plane: RotatingPlane) -> TokenProvider:
    return TokenProvider(gw_environ, CloudSettings(region=REGION), plane=gw_plane)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gw_server(gw_config: Config, gw_tokens: TokenProvider) -> Iterator[Any]:
    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    server = start_in_thread(create_app(gw_config, tokens=gw_tokens), "127.0.0.1", 0)
    yield server
    server.stop()


@dataclass
class Gateway:
    """One test's view: the gateway's URL, the simulator, and the requests the simulator saw since the start."""

    url: str
    port: int
    sim: Simulator
    environ: dict[str, str]
    plane: RotatingPlane
    start: int
    clients: list[Any] = field(default_factory=list)

    def arrived(self, since: int | None = None) -> list[dict[str, Any]]:
        """Upstream requests recorded by the simulator during this test (or after `mark()`), oldest first."""
        start = self.start if since is None else since
        return [r for r in self.sim.requests if r["seq"] > start]

    def mark(self) -> int:
        """A point in the simulator's request sequence, for `arrived(since=...)`."""
        return self.sim.received

    def received(self) -> int:
        """Requests (admin ones too) that reached the simulator during this test."""
        return self.sim.received - self.start

    def openai(self, base: str, key: str = KEY_ALL, *, gateway_url: str | None = None, **kwargs: Any) -> Any:
        """The official OpenAI client, unchanged but for base URL and key (no retries: each call is one request)."""
        import openai

        root = (gateway_url or self.url).rstrip("/")
        client = openai.OpenAI(base_url=f"{root}/{base}", api_key=key, max_retries=0, timeout=15, **kwargs)
        self.clients.append(client)
        return client

    def settle(self) -> None:
        """Wait (bounded) until the simulator has finished every request, so records are final."""
        assert self.sim.wait_inflight(0, timeout=10), "the simulator still has requests in flight"


def _reset(sim: Simulator, environ: dict[str, str], plane: RotatingPlane) -> None:
    sim.clear()
    for host in sim.hosts:
        sim.set_host_down(host, False)
    sim.set_eas_service(EAS_SERVICE, token=UPSTREAM_EAS_TOKEN, state="running")
    sim.api_keys.clear()
    sim.api_keys.update({UPSTREAM_DS_KEY: REGION, KMS_KEY_OLD: REGION})
    environ.clear()
    environ.update(BASE_ENV)
    plane.secrets.clear()
    plane.secrets[KMS_SECRET] = KMS_KEY_OLD


@pytest.fixture
def gw(gw_server: Any, gw_sim: Simulator, gw_environ: dict[str, str], gw_plane: RotatingPlane) -> Iterator[Gateway]:
    """The running gateway with the simulator back to normal (no faults, zones up, keys as configured)."""
    _reset(gw_sim, gw_environ, gw_plane)
    assert gw_sim.wait_inflight(0, timeout=10)
    gateway = Gateway(gw_server.url.rstrip("/"), gw_server.port, gw_sim, gw_environ, gw_plane, gw_sim.received)
    yield gateway
    for client in gateway.clients:
        client.close()
    gw_sim.wait_inflight(0, timeout=10)
    _reset(gw_sim, gw_environ, gw_plane)


@pytest.fixture
def gw_logs() -> Iterator[io.StringIO]:
    """The JSON log lines written during the test (the gateway's thread included)."""
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs._configured = False
    logs.configure()


@pytest.fixture
def dashscope_at(gw: Gateway, monkeypatch: pytest.MonkeyPatch):
    """Point the official DashScope SDK at a gateway path (its documented base_http_api_url setting)."""
    import dashscope

    def point(path: str) -> Any:
        monkeypatch.setattr(dashscope, "base_http_api_url", f"{gw.url}/{path}")
        return dashscope

    return point
