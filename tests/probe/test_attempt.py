"""One request to one address: what failed, as a code, for each way the network or the upstream fails."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import threading

import pytest

from shared.config.load import parse_config
from shared.config.targets import ProbeSettings, Target
from shared.config.urls import Endpoint
from shared.local.simulator import Fault
from shared.probe.attempt import _classify_error, try_address
from shared.probe.dns import Address
from shared.probe.request import RequestSpec
from shared.probe.transport import ConnectFailed, Stage, TlsFailed
from shared.verdict.codes import Code
from tests.probe.loopback import CUSTOM, PL, ZONES, code_of, ds, eas, make_config, probe_one


def test_connect_timeout_from_a_full_backlog():
    """A listener that never accepts, with its backlog full, drops SYNs: a real connect timeout.

    The filler connections must be established before the probe connects (else the probe's SYN may take
    the queue's place), and a loaded machine may stall the probe's loop past half its timeout (`unknown`,
    prober_overloaded: the product being right): so up to three tries, one of which must be the timeout."""
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
    select.select([], fillers[:1], [], 5.0)  # the first filler is in the accept queue: the queue is full
    try:
        config = parse_config(
            {"defaults": {"timeout": "1500ms", "retries": 0}, "resolve": {PL: [f"127.0.0.4:{port}"]}, "targets": [ds()]}
        )
        seen = []
        for _ in range(3):
            r = probe_one(config)
            seen.append((r.status, code_of(r)))
            if seen[-1] == ("down", "connect_timeout"):
                break
        assert seen[-1] == ("down", "connect_timeout"), seen
        assert all(s == ("unknown", "prober_overloaded") for s in seen[:-1]), seen
        assert "security group" in r.diagnosis.remedy and "80" in r.diagnosis.remedy
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_connect_refused_names_the_address(sim):
    sim.set_host_down(ZONES[0])
    r = probe_one(make_config(sim, ds()))
    address = r.addresses[0]
    assert (address.status, address.error_code) == ("down", "connect_refused")
    assert address.error_message == f"TCP connection refused: {ZONES[0]}:{sim.port}: connection refused"
    assert address.to_dict()["error"] == f"connect_refused: {address.error_message}"


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


def test_path_not_found(sim):
    r = probe_one(make_config(sim, eas(probe={"mode": "http", "path": "/v2/nothing"})))
    assert code_of(r) == "path_not_found" and "/api/predict/" in r.diagnosis.remedy


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


def test_stream_stalled(sim):
    sim.inject(Fault(stream_stall_after=1))
    config = make_config(sim, ds(probe={"mode": "chat", "stream": True, "timeout": "500ms"}))
    assert code_of(probe_one(config)) == "stream_stalled"


def test_read_timeout(sim):
    sim.inject(Fault(route="/compatible-mode/v1/models", stall=True))
    r = probe_one(make_config(sim, ds(probe={"timeout": "300ms"})))
    assert code_of(r) == "read_timeout" and "no response within 0.3s" in r.diagnosis.message


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


# --- diagnoses of issue 11 ------------------------------------------------------------------------------


def test_tls_against_a_port_that_speaks_plain_http(sim):
    """https pinned to the simulator's plain-HTTP port: OpenSSL reads "HTTP/1.1 400" as a bad record."""
    config = parse_config({
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {CUSTOM: [f"{ZONES[0]}:{sim.port}"]},
        "targets": [ds(endpoint=f"https://{CUSTOM}")],
    })
    r = probe_one(config)
    assert (r.status, code_of(r)) == ("down", "tls_plain_http")
    assert "speaks plain HTTP" in r.diagnosis.remedy and f"http://{CUSTOM}" in r.diagnosis.remedy
    assert "certificate" not in r.diagnosis.remedy


def test_no_route_is_not_a_connect_timeout():
    """TCP to a multicast address: the kernel answers ENETUNREACH at once, and nothing leaves the host."""
    config = parse_config({
        "defaults": {"timeout": "2s", "retries": 0}, "resolve": {PL: ["224.0.0.1:80"]}, "targets": [ds()],
    })
    r = probe_one(config)
    assert (r.status, code_of(r)) == ("down", "no_route")
    assert r.addresses[0].error_message.endswith("224.0.0.1:80: network is unreachable (ENETUNREACH)")
    assert all(w in r.diagnosis.remedy for w in ("route table", "vSwitch", "CEN", "security group"))


@pytest.mark.parametrize("err", [errno.EHOSTUNREACH, errno.ENETUNREACH])
def test_unreachable_errnos_are_no_route(err):
    code, detail = _classify_error(ConnectFailed(Stage.CONNECT, os.strerror(err), err), "custom")
    assert code is Code.NO_ROUTE and errno.errorcode[err] in detail


@pytest.mark.parametrize("reason, form, code", [
    ("WRONG_VERSION_NUMBER", "custom", Code.TLS_PLAIN_HTTP),
    ("RECORD_LAYER_FAILURE", "eas-vpc", Code.TLS_PLAIN_HTTP),
    ("WRONG_VERSION_NUMBER", "privatelink-default", Code.TLS_ON_HTTP_ONLY),
    ("CERTIFICATE_VERIFY_FAILED", "custom", Code.TLS_FAILED),
    (None, "custom", Code.TLS_FAILED),
])
def test_tls_failures_by_openssl_reason(reason, form, code):
    assert _classify_error(TlsFailed(Stage.TLS, "x", reason=reason), form)[0] is code


def test_a_header_value_with_a_line_break_is_named_not_quoted(sim):
    """Was: a crash in the round (probe error: ValueError) or, with h11, `Illegal header value b'Bearer sk-…\\n'`."""
    config = make_config(sim, ds())
    target = config.targets[0]
    key = "sk-never-printed-key"
    spec = RequestSpec("GET", f"http://{PL}/compatible-mode/v1/models", {"Authorization": f"Bearer {key}\n"})
    attempt = asyncio.run(try_address(target, spec, Address(ZONES[0], sim.port, True)))
    assert attempt.code is Code.REQUEST_HEADER_INVALID
    assert attempt.detail == f"{ZONES[0]}:{sim.port}: header Authorization: its value holds a line break or NUL"
    assert key not in attempt.detail and attempt.phases["connect"] is None  # refused before connecting
