"""The probe engine against the real simulator on loopback: rounds, every address, DNS, credentials, retries."""

from __future__ import annotations

import asyncio

import pytest

from shared.local.simulator import Fault
from shared.probe import dns
from shared.probe.engine import Prober
from tests.probe.loopback import PL, ZONES, code_of, ds, eas, make_config, probe_one

# --- healthy paths -------------------------------------------------------------------------------


def test_models_probe_reaches_every_address_with_host_header(sim):
    before = len(sim.requests)
    r = probe_one(make_config(sim, ds()))
    assert r.status == "up" and r.http_status == 200 and r.diagnosis is None
    assert [a.ip for a in r.addresses] == list(ZONES)
    assert all(a.status == "up" and a.private for a in r.addresses)
    arrived = sim.requests[before:]
    assert {q["listen"] for q in arrived} == set(ZONES)
    assert {q["host"] for q in arrived} == {PL}
    assert all(q["path"] == "/compatible-mode/v1/models" for q in arrived)
    d = r.to_dict()
    assert set(d["phases_ms"]) == {"dns", "connect", "tls", "ttfb", "total"}
    assert d["phases_ms"]["connect"] is not None and d["phases_ms"]["tls"] is None
    assert d["checked_at"].endswith("Z") and d["url"] == f"http://{PL}/compatible-mode/v1/models"


@pytest.mark.parametrize(
    "target",
    [
        ds(probe={"mode": "chat"}),
        ds(probe={"mode": "chat", "stream": True}),
        ds(api="native", probe={"mode": "chat"}),
        ds(api="native", probe={"mode": "chat", "stream": True}),
        eas(probe={"mode": "chat", "model": "DeepSeek-R1-Distill-Qwen-7B"}),
        eas(probe={"mode": "chat", "model": "DeepSeek-R1-Distill-Qwen-7B", "stream": True}),
        eas(auth="bearer"),
        eas(name="grp", service="grp.blue", credential="env:EAS_TOKEN_2"),
        ds(probe={"mode": "http", "path": "/compatible-mode/v1/models", "expect_body": '"object": ?"list"'}),
    ],
    ids=[
        "compat",
        "compat-stream",
        "native",
        "native-sse",
        "eas-chat",
        "eas-stream",
        "eas-bearer",
        "eas-group",
        "http",
    ],
)
def test_healthy_modes(sim, monkeypatch, target):
    monkeypatch.setenv("EAS_TOKEN_2", "eas-token-2")
    r = probe_one(make_config(sim, target))
    assert (r.status, code_of(r)) == ("up", None), r.to_dict()


def test_chat_probe_asks_for_one_token(sim):
    before = len(sim.requests)
    probe_one(make_config(sim, ds(probe={"mode": "chat"})))
    bodies = [q for q in sim.requests[before:] if q["path"].endswith("/chat/completions")]
    assert bodies and all(q["method"] == "POST" for q in bodies)


# --- DNS and zones -------------------------------------------------------------------------------


def test_dns_unresolved(sim):
    r = probe_one(make_config(sim, ds(endpoint="http://no-such-endpoint.invalid")))
    assert (r.status, code_of(r)) == ("down", "dns_unresolved")
    assert "no-such-endpoint.invalid" in r.diagnosis.message


def test_dns_public_address(sim, monkeypatch):
    monkeypatch.setattr(dns, "is_private", lambda ip: False)
    r = probe_one(make_config(sim, ds()))
    assert (r.status, code_of(r)) == ("degraded", "dns_public_address")


def test_zones_down_is_degraded(sim):
    sim.set_host_down(ZONES[1])
    r = probe_one(make_config(sim, ds()))
    assert (r.status, code_of(r)) == ("degraded", "zones_down")
    assert [a.status for a in r.addresses] == ["up", "down"]
    assert r.addresses[1].error_code == "connect_refused" and ZONES[1] in r.diagnosis.message
    assert r.http_status == 200 and r.phases_ms["connect"] is not None  # the answering zone's figures


def test_all_zones_refused_is_down(sim):
    for host in ZONES:
        sim.set_host_down(host)
    r = probe_one(make_config(sim, ds()))
    assert (r.status, code_of(r)) == ("down", "connect_refused")
    assert r.diagnosis.message.endswith("(all 2 addresses)")


def test_single_zone_privatelink_endpoint_warns(sim):
    config = make_config(sim, ds())
    config = type(config)(config.path, None, config.targets, {PL: (f"{ZONES[0]}:{sim.port}",)})
    r = probe_one(config)
    assert r.status == "up" and any("single zone" in w for w in r.warnings)
    assert not any("single zone" in w for w in probe_one(make_config(sim, ds())).warnings)


# --- credentials and EAS -------------------------------------------------------------------------


@pytest.mark.parametrize("env,code", [("DS_KEY_BJ", "unauthorized"), ("NOPE_UNSET", "credential_unavailable")])
def test_credentials(sim, env, code):
    r = probe_one(make_config(sim, ds(credential=f"env:{env}")))
    assert (r.status, code_of(r)) == ("down", code)


def test_unauthorized_mentions_region_bound_keys(sim):
    r = probe_one(make_config(sim, ds(credential="env:DS_KEY_BJ")))
    assert "region" in r.diagnosis.remedy and r.http_status == 401


def test_eas_wrong_token(sim, monkeypatch):
    monkeypatch.setenv("EAS_TOKEN", "stale")
    assert code_of(probe_one(make_config(sim, eas()))) == "unauthorized"


def test_eas_unknown_service_empty_404(sim):
    r = probe_one(make_config(sim, eas(service="nosuch")))
    assert code_of(r) == "eas_service_not_found" and "(empty body)" in r.diagnosis.message


def test_no_ready_instance(sim):
    sim.set_eas_service("llm", token="eas-token-1", state="unready")
    r = probe_one(make_config(sim, eas()))
    assert code_of(r) == "no_ready_instance" and "no healthy upstream" in r.diagnosis.message


# --- verdicts, retries and rounds ----------------------------------------------------------------


def test_slow_is_degraded(sim):
    sim.inject(Fault(latency_ms=300))
    r = probe_one(make_config(sim, ds(probe={"latency_slo": "100ms"})))
    assert (r.status, code_of(r)) == ("degraded", "slow")
    assert r.phases_ms["ttfb"] >= 300


def test_one_quick_retry_absorbs_a_blip(sim):
    sim.inject(Fault(status=500, times=2, host=ZONES[0]))
    r = probe_one(make_config(sim, ds(probe={"retries": 2, "retry_delay": "10ms"})))
    assert r.status == "up" and r.addresses[0].attempts == 3 and r.addresses[1].attempts == 1


def test_no_retry_on_a_bad_key(sim):
    r = probe_one(make_config(sim, ds(credential="env:DS_KEY_BJ", probe={"retries": 2})))
    assert all(a.attempts == 1 for a in r.addresses)


def test_round_selects_targets_in_config_order(sim):
    config = make_config(sim, ds("a"), eas("b"), ds("c"))
    results = asyncio.run(Prober(config).run_round(["c", "a"]))
    assert [r.target for r in results] == ["a", "c"]


def test_read_timeout_never_stalls_the_round(sim):
    sim.inject(Fault(route="/compatible-mode/v1/models", stall=True))
    # 1 s, not less: a loop stalled for half the timeout by a loaded machine is rightly `unknown`
    config = make_config(sim, ds(probe={"timeout": "1s"}), eas())
    results = asyncio.run(Prober(config).run_round())
    assert [code_of(r) for r in results] == ["read_timeout", None]
