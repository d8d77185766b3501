"""Failover that knows the probe's verdicts (issue 8): a route skips a target the latest probe round found
down, unless every target is; stale or missing state never refuses traffic.

A gateway of its own, with a file state store the test writes the way the probe function's alert step
does; its ProbeHealth is refreshed synchronously, so nothing waits on a background thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from shared.config.load import parse_config
from shared.local.simulator import EAS_MODEL, REPLY_TEXT
from shared.state.file import FileStore
from tests.gateway.harness import KEY_ALL, config_dict

HI = [{"role": "user", "content": "say hi please"}]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def state_gateway(gw_sim, dead_port, gw_tokens, tmp_path_factory) -> Iterator[tuple[Any, Any, FileStore]]:
    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    workdir = tmp_path_factory.mktemp("gateway-state")
    ca = workdir / "sim-ca.pem"
    ca.write_bytes(gw_sim.ca_pem or b"")
    data = config_dict(gw_sim, dead_port, str(ca))
    data["state"] = {"backend": "file", "path": str(workdir / "state")}
    data["alerts"] = {"channels": [{"name": "console", "type": "console"}]}
    app = create_app(parse_config(data, path="gateway-state-test.yaml"), tokens=gw_tokens)
    server = start_in_thread(app, "127.0.0.1", 0)
    yield app, server, FileStore(workdir / "state")
    server.stop()


@pytest.fixture
def with_state(state_gateway, gw):
    app, server, store = state_gateway

    def write(statuses: dict[str, str], age_s: float = 5.0) -> Any:
        checked = iso(time.time() - age_s)
        store.save({"version": 1, "targets": {name: {"state": "ok", "status": status, "last_checked": checked}
                                              for name, status in statuses.items()}})
        app.health.refresh()
        return gw.openai("v1", KEY_ALL, gateway_url=server.url)

    return write


def test_a_target_the_probe_found_down_is_skipped(with_state, gw):
    client = with_state({"llm-eas": "down", "qwen-pl": "up"})
    reply = client.chat.completions.create(model="chat-ha", messages=HI)
    assert reply.model == "qwen-turbo"  # the second route entry answered
    assert [r["path"] for r in gw.arrived()] == ["/compatible-mode/v1/chat/completions"]


def test_a_degraded_target_is_not_skipped(with_state, gw):
    client = with_state({"llm-eas": "degraded"})
    assert client.chat.completions.create(model="chat-ha", messages=HI).model == EAS_MODEL


def test_when_every_target_is_down_they_are_still_tried(with_state, gw):
    client = with_state({"llm-eas": "down"})
    reply = client.chat.completions.create(model="deepseek", messages=HI)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert [r["path"] for r in gw.arrived()] == ["/api/predict/llm/v1/chat/completions"]


def test_stale_state_never_refuses_traffic(with_state, gw):
    client = with_state({"llm-eas": "down"}, age_s=3600)
    assert client.chat.completions.create(model="chat-ha", messages=HI).model == EAS_MODEL


def test_a_damaged_document_is_read_as_nothing_down_and_left_where_it_is(state_gateway, with_state, gw):
    app, server, store = state_gateway
    with_state({"llm-eas": "down"})
    folder = store.dir
    for damaged in (b"{not json", b'{"version": 7, "targets": {"llm-eas": {"status": "down"}}}'):
        (folder / "state.json").write_bytes(damaged)
        before = sorted(p.name for p in folder.iterdir())
        app.health.refresh()
        assert not app.health.is_down("llm-eas")
        assert sorted(p.name for p in folder.iterdir()) == before  # never quarantined by a reader
        assert (folder / "state.json").read_bytes() == damaged
    client = gw.openai("v1", KEY_ALL, gateway_url=server.url)
    assert client.chat.completions.create(model="chat-ha", messages=HI).model == EAS_MODEL
