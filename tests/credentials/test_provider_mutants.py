"""An empty environment variable is no credential: refused by name (never sent as `Bearer `), and a
probe of a target that uses it is diagnosed `credential_unavailable`. The provider's own wiring: the
settings and environment it is given reach the control plane it creates, a value is registered with the
redactor, a refused value names its reference, and invalidate says whether it dropped anything."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from shared import logs
from shared.config.load import parse_config
from shared.credentials.errors import CredentialError
from shared.credentials.provider import Resolved, TokenProvider
from shared.credentials.refs import CredentialRef, parse_ref
from shared.credentials.settings import CloudSettings
from shared.probe.engine import Prober
from tests.credentials.rounds import DS_KEY, REGION, Clock, provider

HOST = "ep-empty01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"


@pytest.mark.parametrize("environ", [{}, {"DS_KEY": ""}])
def test_unset_or_empty_variable_is_refused_by_name(environ):
    with pytest.raises(CredentialError) as info:
        asyncio.run(TokenProvider(environ=environ).get(CredentialRef("env", "DS_KEY")))
    assert str(info.value) == "env:DS_KEY: environment variable DS_KEY is not set"


def test_a_set_variable_is_returned_as_is():
    assert asyncio.run(TokenProvider(environ={"DS_KEY": "sk-1"}).get(CredentialRef("env", "DS_KEY"))) == "sk-1"


def test_env_values_have_no_fetch_budget_and_others_the_cloud_one():
    tokens = TokenProvider(environ={})
    assert tokens.fetch_budget_s(CredentialRef("env", "X")) == 0.0
    assert tokens.fetch_budget_s(CredentialRef("kms", "x")) > 0.0


def test_probe_with_an_empty_variable_is_credential_unavailable():
    with socket.socket() as listener:  # bound, never listening: nothing may be sent to it anyway
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = parse_config(
            {
                "defaults": {"timeout": "2s", "retries": 0},
                "resolve": {HOST: f"127.0.0.1:{port}"},
                "targets": [
                    {"name": "ds", "kind": "dashscope", "endpoint": f"http://{HOST}", "credential": "env:DS_KEY"}
                ],
            }
        )
        [result] = asyncio.run(Prober(config, TokenProvider(environ={"DS_KEY": ""})).run_round())
    assert (result.status, result.diagnosis.code) == ("down", "credential_unavailable"), result.to_dict()
    assert "DS_KEY" in result.diagnosis.message


def test_the_cloud_settings_given_are_the_ones_used():
    settings = CloudSettings(region=REGION, timeout_s=1.0, retries=0)
    assert TokenProvider(environ={}, cloud=settings).fetch_budget_s(CredentialRef("kms", "x")) == 3.0


def test_an_env_value_is_registered_with_the_redactor(monkeypatch):
    # An empty registry: mutmut's workers fork from a process whose clean run registered this value already.
    monkeypatch.setattr(logs, "_known", set())
    monkeypatch.setattr(logs, "_forms", set())
    monkeypatch.setattr(logs, "_known_re", None)
    value = "env-registered-5e1d77"  # no sk- prefix: the sk- pattern would mask it without registration
    assert asyncio.run(TokenProvider(environ={"K": value}).get(CredentialRef("env", "K"))) == value
    assert value not in logs.redact_text(f"upstream said {value}")


def test_the_control_plane_it_creates_uses_its_environment_and_settings(cloud):
    settings = CloudSettings(region=REGION, retries=0)
    tokens = TokenProvider(cloud.env(), settings, clock=Clock())  # no plane given: created on first fetch
    assert asyncio.run(tokens.get(parse_ref("kms:dashscope-key"))) == DS_KEY


def test_settings_and_context_reach_a_given_plane():
    plane = SimpleNamespace(settings=CloudSettings(), context=None)
    tokens = TokenProvider(environ={}, cloud=CloudSettings(), plane=plane)
    changed = CloudSettings(region=REGION, retries=0)
    tokens.configure(changed)
    context = SimpleNamespace(credentials=None)
    tokens.set_context(context)
    assert (plane.settings, plane.context) == (changed, context)


def test_a_blank_eas_token_is_refused_naming_the_reference(cloud):
    cloud.add_eas_service("blank", token="   ")
    with pytest.raises(CredentialError) as caught:
        asyncio.run(provider(cloud).get(parse_ref(f"eas:{REGION}/blank")))
    assert str(caught.value) == f"eas:{REGION}/blank: the value is only whitespace; set the secret itself"


def test_an_unknown_scheme_is_refused_naming_it():
    tokens = TokenProvider(environ={}, plane=SimpleNamespace(context=None))
    with pytest.raises(CredentialError) as caught:
        asyncio.run(tokens.get(CredentialRef("ftp", "x")))
    assert str(caught.value) == "ftp:x: unknown reference scheme"


def test_invalidate_says_whether_it_dropped_the_value(cloud):
    tokens = provider(cloud)
    ref = parse_ref("kms:dashscope-key")
    assert tokens.invalidate(ref) is False  # nothing cached yet
    asyncio.run(tokens.get(ref))
    assert tokens.invalidate(ref, "another value") is False
    assert tokens.invalidate(ref, DS_KEY) is True
    assert tokens.invalidate(ref) is False


def test_an_env_value_shows_no_fetch_time_and_never_its_value():
    assert repr(Resolved("sk-secret")) == "Resolved(value=***, fetched_at=0.000, eas=None)"


def test_a_cached_value_is_fetched_again_exactly_at_the_ttl(cloud):
    now = [1000.0]
    settings = CloudSettings(region=REGION, retries=0, cache_ttl_s=300.0)
    tokens = TokenProvider(cloud.env(), settings, clock=lambda: now[0])
    ref = parse_ref("kms:dashscope-key")
    asyncio.run(tokens.get(ref))
    now[0] = 1299.5
    asyncio.run(tokens.get(ref))
    assert cloud.count("kms") == 1
    now[0] = 1300.0
    asyncio.run(tokens.get(ref))
    assert cloud.count("kms") == 2


class BlockingPlane:
    """A control plane whose KMS answer waits for `release` (a thread the fetch runs in), counting calls."""

    def __init__(self) -> None:
        self.context, self.settings = None, None
        self.release, self.calls = threading.Event(), 0

    def get_secret_value(self, name: str, stage: str | None) -> str:
        self.calls += 1
        self.release.wait(10)
        return f"value-of-{name}"


def test_a_control_plane_that_never_answers_is_a_credential_error_within_the_budget():
    plane = BlockingPlane()
    settings = CloudSettings(region=REGION, timeout_s=0.01, retries=0)  # budget: 0.01 x 2 + 1 s
    tokens = TokenProvider(environ={}, cloud=settings, plane=plane)

    async def resolve() -> None:
        try:  # the guard: a resolve without its budget would wait for the plane forever
            await asyncio.wait_for(tokens.resolve(CredentialRef("kms", "stuck")), timeout=5)
        finally:
            plane.release.set()  # before asyncio.run waits for the fetch's thread

    try:
        with pytest.raises(CredentialError) as caught:
            asyncio.run(resolve())
    finally:
        plane.release.set()
    assert str(caught.value) == "kms:stuck: no answer from the control plane within 1s"


def test_a_finished_fetch_is_not_held_and_its_callback_raises_nothing(caplog):
    """Each fetch is dropped from the in-flight table when it ends (one per reference would pile up over a
    warm instance's life otherwise), by a callback that runs cleanly on the loop."""
    plane = BlockingPlane()
    plane.release.set()
    tokens = TokenProvider(environ={}, cloud=CloudSettings(region=REGION, retries=0), plane=plane)
    with caplog.at_level("ERROR", logger="asyncio"):
        assert asyncio.run(tokens.get(CredentialRef("kms", "a"))) == "value-of-a"
    assert tokens._inflight == {}
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_a_fetch_in_flight_on_another_event_loop_is_not_awaited_here():
    """Two loops (threads) may resolve one reference at once: a loop cannot await another loop's task, so
    each starts its own fetch."""
    plane = BlockingPlane()
    tokens = TokenProvider(environ={}, cloud=CloudSettings(region=REGION, retries=0), plane=plane)
    ref = CredentialRef("kms", "shared")
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(asyncio.run(tokens.get(ref))))
    thread.start()
    try:
        for _ in range(500):  # the other loop's fetch is in flight once the plane has been called
            if plane.calls:
                break
            time.sleep(0.01)
        assert plane.calls == 1

        async def here() -> str:
            task = asyncio.ensure_future(tokens.get(ref))
            for _ in range(500):  # until this loop's own fetch reaches the plane (or the task ends)
                if plane.calls >= 2 or task.done():
                    break
                await asyncio.sleep(0.01)
            plane.release.set()
            return await asyncio.wait_for(task, 5)

        assert asyncio.run(here()) == "value-of-shared"
    finally:
        plane.release.set()
        thread.join(10)
    assert other == ["value-of-shared"] and plane.calls == 2
