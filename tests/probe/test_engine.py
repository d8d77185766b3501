"""The probe engine against the real simulator on loopback: every diagnosis code, every address."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from shared.config.load import ProbeSettings, Target, parse_config
from shared.config.urls import Endpoint
from shared.local.simulator import Fault, Simulator
from shared.probe.engine import Prober, dns

PL = "ep-test01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
CUSTOM = "vpc-ap-southeast-1.dashscope.aliyuncs.com"
EAS = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
ZONES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def sim():
    s = Simulator(
        hosts=ZONES,
        tls_hostnames=(CUSTOM,),
        api_keys={"sk-good-key": "ap-southeast-1", "sk-beijing-key": "cn-beijing"},
        eas_services={"llm": "eas-token-1", "grp.blue": "eas-token-2"},
    ).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean(sim, monkeypatch):
    monkeypatch.setenv("DS_KEY", "sk-good-key")
    monkeypatch.setenv("DS_KEY_BJ", "sk-beijing-key")
    monkeypatch.setenv("EAS_TOKEN", "eas-token-1")
    sim.clear()
    for host in ZONES:
        sim.set_host_down(host, False)
    sim.set_eas_service("llm", token="eas-token-1", state="running")
    yield
    sim.clear()


def make_config(sim, *targets, **top):
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {
            PL: [f"{ip}:{sim.port}" for ip in ZONES],
            CUSTOM: [f"{ip}:{sim.https_port}" for ip in ZONES],
            EAS: [f"{ZONES[0]}:{sim.port}"],
        },
        "targets": list(targets),
        **top,
    }
    return parse_config(data)


def ds(name="ds", **fields):
    return {"name": name, "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:DS_KEY", **fields}


def eas(name="eas", service="llm", **fields):
    return {
        "name": name,
        "kind": "eas",
        "endpoint": f"http://{EAS}/api/predict/{service}",
        "credential": "env:EAS_TOKEN",
        **fields,
    }


def probe_one(config, name=None):
    results = asyncio.run(Prober(config).run_round([name] if name else None))
    return results[0]


def code_of(result):
    return result.diagnosis.code if result.diagnosis else None


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


def test_https_custom_domain_with_sni_and_cert_days(sim, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim.ca_pem)
    r = probe_one(make_config(sim, ds(endpoint=f"https://{CUSTOM}", ca_bundle=str(ca))))
    assert r.status == "up", r.to_dict()
    assert r.phases_ms["tls"] is not None and r.tls_days_left is not None and r.tls_days_left > 0


# --- every diagnosis code ------------------------------------------------------------------------


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
    assert r.addresses[1].diagnosis.code == "connect_refused" and ZONES[1] in r.diagnosis.message


def test_all_zones_refused_is_down(sim):
    for host in ZONES:
        sim.set_host_down(host)
    r = probe_one(make_config(sim, ds()))
    assert (r.status, code_of(r)) == ("down", "connect_refused")
    assert "security group" not in r.diagnosis.remedy or "80" in r.diagnosis.remedy


def test_connect_timeout_from_a_full_backlog():
    """A listener that never accepts, with its backlog full, drops SYNs: a real connect timeout."""
    server = socket.socket()
    server.bind(("127.0.0.4", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.4", port))
        fillers.append(c)
    try:
        config = parse_config(
            {"defaults": {"timeout": "500ms", "retries": 0}, "resolve": {PL: [f"127.0.0.4:{port}"]}, "targets": [ds()]}
        )
        r = probe_one(config)
        assert (r.status, code_of(r)) == ("down", "connect_timeout")
        assert "security group" in r.diagnosis.remedy and "80" in r.diagnosis.remedy
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_connection_reset(sim):
    sim.inject(Fault(route="/compatible-mode/v1/models", reset=True))
    assert code_of(probe_one(make_config(sim, ds()))) == "connection_reset"


def test_tls_untrusted_certificate(sim):
    r = probe_one(make_config(sim, ds(endpoint=f"https://{CUSTOM}")))
    assert (r.status, code_of(r)) == ("down", "tls_failed")


def test_tls_on_http_only_default_domain(sim):
    """https on the default domain (config refuses it; a hand-built target shows what the probe sees)."""
    ep = Endpoint("dashscope", "privatelink-default", "https", PL, 443, "", "ap-southeast-1")
    target = Target("tls", "dashscope", ep, "compatible", None, None, "bearer", ProbeSettings(retries=0, timeout_s=2))
    config = make_config(sim, ds())
    config = type(config)(config.path, None, (target,), {PL: (f"{ZONES[0]}:{sim.port}",)})
    r = probe_one(config)
    assert code_of(r) == "tls_on_http_only"
    assert "supports only HTTP" in r.diagnosis.remedy


def test_tls_cert_expiring(sim, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim.ca_pem)
    target = ds(endpoint=f"https://{CUSTOM}", ca_bundle=str(ca), probe={"cert_min_days": 10000000})
    r = probe_one(make_config(sim, target))
    assert (r.status, code_of(r)) == ("degraded", "tls_cert_expiring")


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


def test_path_not_found(sim):
    r = probe_one(make_config(sim, eas(probe={"mode": "http", "path": "/v2/nothing"})))
    assert code_of(r) == "path_not_found" and "/api/predict/" in r.diagnosis.remedy


def test_no_ready_instance(sim):
    sim.set_eas_service("llm", token="eas-token-1", state="unready")
    r = probe_one(make_config(sim, eas()))
    assert code_of(r) == "no_ready_instance" and "no healthy upstream" in r.diagnosis.message


@pytest.mark.parametrize(
    "status,target,code",
    [
        (400, ds(), "bad_request"),
        (403, ds(), "forbidden"),
        (408, eas(), "request_timeout"),
        (413, eas(), "body_too_large"),
        (429, ds(), "rate_limited"),
        (450, eas(), "eas_queue_full"),
        (500, ds(), "server_error"),
        (503, ds(), "model_unavailable"),
    ],
)
def test_status_codes(sim, status, target, code):
    sim.inject(Fault(status=status))
    r = probe_one(make_config(sim, target))
    assert (r.status, r.http_status, code_of(r)) == ("down", status, code)


def test_body_over_one_megabyte_is_413_from_the_gateway(sim):
    big = ProbeSettings(
        mode="http", method="POST", path="/v1/chat/completions", body="x" * (1024 * 1024 + 10), retries=0, timeout_s=5
    )
    config = make_config(sim, eas())
    t = config.targets[0]
    target = Target(t.name, t.kind, t.endpoint, t.api, None, t.credential, t.auth, big)
    config = type(config)(config.path, None, (target,), config.resolve)
    r = probe_one(config)
    assert code_of(r) == "body_too_large" and "1 MB" in r.diagnosis.remedy


def test_unexpected_status_and_body_mismatch(sim):
    r = probe_one(
        make_config(sim, ds(probe={"mode": "http", "path": "/compatible-mode/v1/models", "expect_status": 204}))
    )
    assert code_of(r) == "unexpected_status"
    r = probe_one(
        make_config(
            sim, ds(probe={"mode": "http", "path": "/compatible-mode/v1/models", "expect_body": "no-such-model"})
        )
    )
    assert code_of(r) == "body_mismatch"


@pytest.mark.parametrize("api", ["compatible", "native"])
def test_error_frame_inside_200_stream(sim, api):
    sim.inject(Fault(stream_error=True))
    r = probe_one(make_config(sim, ds(api=api, probe={"mode": "chat", "stream": True})))
    assert (r.status, r.http_status, code_of(r)) == ("down", 200, "stream_error_frame")


def test_stream_stalled(sim):
    sim.inject(Fault(stream_stall_after=1))
    config = make_config(sim, ds(probe={"mode": "chat", "stream": True, "timeout": "500ms"}))
    assert code_of(probe_one(config)) == "stream_stalled"


def test_read_timeout_never_stalls_the_round(sim):
    sim.inject(Fault(route="/compatible-mode/v1/models", stall=True))
    config = make_config(sim, ds(probe={"timeout": "300ms"}), eas())
    results = asyncio.run(Prober(config).run_round())
    assert [code_of(r) for r in results] == ["read_timeout", None]


def test_slow_is_degraded(sim):
    sim.inject(Fault(latency_ms=300))
    r = probe_one(make_config(sim, ds(probe={"latency_slo": "100ms"})))
    assert (r.status, code_of(r)) == ("degraded", "slow")
    assert r.phases_ms["ttfb"] >= 300


def test_protocol_error():
    server = socket.socket()
    server.bind(("127.0.0.5", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def garbage():
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH_9.0\r\nnot http at all\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    try:
        config = parse_config(
            {"defaults": {"retries": 0, "timeout": "2s"}, "resolve": {PL: [f"127.0.0.5:{port}"]}, "targets": [ds()]}
        )
        assert code_of(probe_one(config)) == "protocol_error"
    finally:
        server.close()


# --- retries -------------------------------------------------------------------------------------


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


def test_single_zone_privatelink_endpoint_warns(sim):
    config = make_config(sim, ds())
    config = type(config)(config.path, None, config.targets, {PL: (f"{ZONES[0]}:{sim.port}",)})
    r = probe_one(config)
    assert r.status == "up" and any("single zone" in w for w in r.warnings)
    assert not any("single zone" in w for w in probe_one(make_config(sim, ds())).warnings)
