"""GET /metrics (issue 9): the latest round in Prometheus' text format, blackbox_exporter's names where it has them.

Parsed with prometheus_client's own parser. Figures are checked exactly against the results they came
from (milliseconds in, seconds out); names, types, help texts and the phase labels against a real
blackbox_exporter scraped on loopback (skipped where the binary is not installed). The end-to-end test
probes the simulator with the real Prober, records the round with record_round and reads all three
routes through the gateway.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.config.load import parse_config
from shared.gateway import metrics
from shared.gateway.history_cache import HistorySnapshot
from shared.history.record import record_round
from shared.probe.engine import Prober
from shared.state.file import FileStore
from shared.verdict.status import Status
from tests.gateway.harness import KEY_ALL, KEY_CHAT, config_dict
from tests.gateway.status_fixtures import CERT_NOT_AFTER, DEMO_TARGETS, history, result, view

NOW = 1_790_000_000.0
BLACKBOX = Path("/usr/bin/prometheus-blackbox-exporter")
# blackbox_exporter's metrics that /metrics carries, with the same meaning
BLACKBOX_NAMES = {"probe_success", "probe_duration_seconds", "probe_http_duration_seconds", "probe_http_status_code",
                  "probe_http_ssl", "probe_ssl_earliest_cert_expiry", "probe_dns_lookup_time_seconds"}
PHASES = {"resolve", "connect", "tls", "processing", "transfer"}


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict[str, Any], name: str) -> dict[tuple, float]:
    """{(label values sorted by label name): value} of one family."""
    return {tuple(v for _, v in sorted(s.labels.items())): s.value for s in fams[name].samples}


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, Any], list]:
    """Metrics of three targets: degraded (zone B down), up over TLS, and one the prober could not judge."""
    pl = result(DEMO_TARGETS[0], True, 23.0, NOW)
    custom = result(DEMO_TARGETS[2], False, 31.0, NOW)
    unknown = result(DEMO_TARGETS[1], False, 40.0, NOW)
    unknown.status = Status.UNKNOWN
    targets = [
        history("qwen-privatelink", latest=pl, uptime={"24h": 99.5, "7d": 100.0, "30d": None}),
        history("qwen-custom-domain", latest=custom, tls_days_left=88),
        history("llm-eas-vpc", "eas", latest=unknown),
        history("never-probed"),
    ]
    snapshot = HistorySnapshot(view(targets, NOW), {"qwen-privatelink": "firing", "qwen-custom-domain": "ok"})
    return families(metrics.render(snapshot, lambda name: True).decode()), [pl, custom, unknown]


def test_blackbox_figures_per_target_in_seconds(demo) -> None:
    fams, (pl, custom, unknown) = demo
    assert {n for n in BLACKBOX_NAMES if fams[n].type == "gauge"} == BLACKBOX_NAMES
    assert samples(fams, "probe_success") == {("qwen-privatelink",): 1.0, ("qwen-custom-domain",): 1.0}
    assert samples(fams, "probe_duration_seconds") == {
        ("qwen-privatelink",): pytest.approx(0.023), ("qwen-custom-domain",): pytest.approx(0.031)}
    phases = samples(fams, "probe_http_duration_seconds")
    assert {k for k in phases if k[1] == "qwen-privatelink"} == {(p, "qwen-privatelink") for p in PHASES}
    for target, r in (("qwen-privatelink", pl), ("qwen-custom-domain", custom)):
        for phase in PHASES:
            ms = r.to_dict()["blackbox_phases_ms"][phase]
            assert phases[(phase, target)] == pytest.approx((ms or 0.0) / 1000), (target, phase)
    assert phases[("tls", "qwen-privatelink")] == 0.0  # plain http: 0, as blackbox reports it
    assert phases[("tls", "qwen-custom-domain")] == pytest.approx(0.0025)
    assert samples(fams, "probe_dns_lookup_time_seconds")[("qwen-privatelink",)] == pytest.approx(0.0002)
    assert samples(fams, "probe_http_status_code")[("qwen-privatelink",)] == 200.0
    assert samples(fams, "probe_http_ssl") == {("qwen-privatelink",): 0.0, ("qwen-custom-domain",): 1.0}
    expiry = datetime.fromisoformat(CERT_NOT_AFTER.replace("Z", "+00:00")).timestamp()
    assert samples(fams, "probe_ssl_earliest_cert_expiry") == {("qwen-custom-domain",): expiry}
    for name in BLACKBOX_NAMES - {"probe_http_status_code", "probe_ssl_earliest_cert_expiry", "probe_success",
                                  "probe_http_ssl"}:
        assert all(0 <= s.value < 1 for s in fams[name].samples), name  # tens of ms: seconds, never ms


def test_target_status_is_one_hot_and_unknown_is_no_news(demo) -> None:
    fams, _ = demo
    status = samples(fams, "vpcprobe_target_status")
    expected = {"qwen-privatelink": "degraded", "qwen-custom-domain": "up", "llm-eas-vpc": "unknown"}
    for target, current in expected.items():
        assert {s: status[(s.value, target)] for s in Status} == {s: float(s.value == current) for s in Status}
    assert not [k for k in status if k[1] == "never-probed"]
    # unknown: the prober was starved; no probe_success (a gap), but its zones are still reported
    assert ("llm-eas-vpc",) not in samples(fams, "probe_success")
    assert samples(fams, "vpcprobe_zones_total")[("llm-eas-vpc",)] == 1.0


def test_diagnosis_zones_and_addresses(demo) -> None:
    fams, _ = demo
    assert samples(fams, "vpcprobe_diagnosis") == {("zones_down", "qwen-privatelink"): 1.0}
    assert samples(fams, "vpcprobe_zones_up")[("qwen-privatelink",)] == 1.0
    assert samples(fams, "vpcprobe_zones_total")[("qwen-privatelink",)] == 2.0
    assert samples(fams, "vpcprobe_zones_up")[("qwen-custom-domain",)] == 2.0
    success = samples(fams, "vpcprobe_address_success")
    assert success[("127.0.0.2:38443", "qwen-privatelink")] == 1.0
    assert success[("127.0.0.3:38443", "qwen-privatelink")] == 0.0
    duration = samples(fams, "vpcprobe_address_duration_seconds")
    assert duration[("127.0.0.2:38443", "qwen-privatelink")] == pytest.approx(0.023)
    assert duration[("127.0.0.3:38443", "qwen-privatelink")] == pytest.approx(0.0009)


def test_uptime_alert_state_and_last_round(demo) -> None:
    fams, _ = demo
    uptime = samples(fams, "vpcprobe_uptime_ratio")
    assert {k: v for k, v in uptime.items() if k[0] == "qwen-privatelink"} == {
        ("qwen-privatelink", "24h"): pytest.approx(0.995), ("qwen-privatelink", "7d"): 1.0}
    alert = samples(fams, "vpcprobe_alert_state")
    assert alert == {(s, "qwen-privatelink"): float(s == "firing") for s in ("ok", "pending", "firing")} | {
        (s, "qwen-custom-domain"): float(s == "ok") for s in ("ok", "pending", "firing")}
    assert samples(fams, "vpcprobe_last_round_timestamp_seconds") == {(): NOW - 5}


def test_without_an_alert_state_document_there_is_no_alert_state() -> None:
    snapshot = HistorySnapshot(view([history("a", latest=result(DEMO_TARGETS[0], False, 5.0, NOW))], NOW), None)
    fams = families(metrics.render(snapshot, lambda name: True).decode())
    assert fams["vpcprobe_alert_state"].samples == [] and len(fams["probe_success"].samples) == 1


# ------------------------------------------------------------------ against blackbox_exporter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def loopback_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A small HTTPS server on 127.0.0.1 with a trustme certificate, for blackbox to probe."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(not BLACKBOX.exists(), reason="no blackbox_exporter (apt-get install prometheus-blackbox-exporter)")
def test_names_types_help_and_phases_match_blackbox_exporter(demo, loopback_https, tmp_path: Path) -> None:
    config = tmp_path / "blackbox.yml"
    config.write_text("modules:\n  https:\n    prober: http\n    timeout: 5s\n"
                      "    http:\n      tls_config: {insecure_skip_verify: true}\n")
    port = _free_port()
    proc = subprocess.Popen([str(BLACKBOX), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/probe?module=https&target=https://127.0.0.1:{loopback_https}/"
        text = None
        deadline = time.monotonic() + 15
        while text is None and time.monotonic() < deadline:
            try:
                text = httpx.get(url, timeout=10).text
            except httpx.TransportError:
                time.sleep(0.1)  # not listening yet
        assert text is not None, "blackbox_exporter did not start"
    finally:
        proc.terminate()
        proc.wait(10)
    theirs = families(text)
    assert samples(theirs, "probe_success") == {(): 1.0}, text
    ours, _ = demo
    for name in BLACKBOX_NAMES:
        assert name in theirs, name
        assert (ours[name].type, ours[name].documentation) == (theirs[name].type, theirs[name].documentation), name
    assert {s.labels["phase"] for s in theirs["probe_http_duration_seconds"].samples} == PHASES
    assert not [n for n in ours if n.startswith("probe_") and n not in BLACKBOX_NAMES]  # no made-up probe_ names


# ------------------------------------------------------------------ end to end


@pytest.fixture
def recorded_gateway(gw_sim, dead_port, gw_tokens, tmp_path: Path) -> Iterator[tuple[str, list]]:
    """A real probe round of the harness's https and http targets on the simulator, recorded with record_round
    into the file store of a gateway that serves the status routes."""
    import asyncio

    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    ca = tmp_path / "sim-ca.pem"
    ca.write_bytes(gw_sim.ca_pem or b"")
    data = config_dict(gw_sim, dead_port, str(ca))
    data["state"] = {"backend": "file", "path": str(tmp_path / "state")}
    data["alerts"] = {"channels": [{"name": "console", "type": "console"}]}
    config = parse_config(data, path="metrics-e2e.yaml")
    results = asyncio.run(Prober(config, gw_tokens).run_round(["qwen-pl", "qwen-custom", "qwen-dead"]))
    record_round(FileStore(tmp_path / "state"), results)
    server = start_in_thread(create_app(config, tokens=gw_tokens), "127.0.0.1", 0)
    yield server.url, results
    server.stop()


def test_a_recorded_probe_round_reads_back_through_all_three_routes(recorded_gateway) -> None:
    url, results = recorded_gateway
    by_name = {r.target: r for r in results}
    assert {n: str(r.status) for n, r in by_name.items()} == {"qwen-pl": "up", "qwen-custom": "up", "qwen-dead": "down"}
    custom = by_name["qwen-custom"]
    assert custom.tls_not_after is not None and by_name["qwen-pl"].tls_not_after is None
    auth = {"Authorization": f"Bearer {KEY_ALL}"}
    m = httpx.get(url + "/metrics", headers=auth, timeout=10)
    assert m.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = families(m.text)
    assert samples(fams, "probe_success") == {("qwen-pl",): 1.0, ("qwen-custom",): 1.0, ("qwen-dead",): 0.0}
    expiry = samples(fams, "probe_ssl_earliest_cert_expiry")[("qwen-custom",)]
    assert expiry == datetime.fromisoformat(custom.tls_not_after.replace("Z", "+00:00")).timestamp()
    days = (expiry - time.time()) / 86400
    assert custom.tls_days_left is not None and custom.tls_days_left <= days < custom.tls_days_left + 1
    durations = samples(fams, "probe_duration_seconds")
    for name, r in by_name.items():
        assert durations[(name,)] == pytest.approx(r.to_dict()["phases_ms"]["total"] / 1000)
    assert samples(fams, "probe_http_status_code")[("qwen-dead",)] == 0.0
    assert ("connect_refused", "qwen-dead") in samples(fams, "vpcprobe_diagnosis")

    status = httpx.get(url + "/status.json", headers=auth, timeout=10).json()
    assert {t["target"]: t["latest"]["status"] for t in status["targets"]} == {
        "qwen-pl": "up", "qwen-custom": "up", "qwen-dead": "down"}
    assert [len(t["slots"]["slots"]) for t in status["targets"]] == [1, 1, 1]
    page = httpx.get(url + "/status", auth=("browser", KEY_ALL), timeout=10).text
    assert page.count("<article ") == 3 and "<code>connect_refused</code>" in page
    # a key limited to one target sees it alone, on every route
    limited = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY_CHAT}"}, timeout=10).text
    assert {s.labels["target"] for f in families(limited).values() for s in f.samples if "target" in s.labels} == {
        "qwen-pl"}
