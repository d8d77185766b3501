"""Verdicts: an address from what its request saw, a target from all of its addresses."""

from __future__ import annotations

from shared.verdict.codes import Code
from shared.verdict.decide import address_verdict, lead_address, target_verdict
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult
from shared.verdict.status import Status

LIMITS = {"total_ms": 80.0, "tls_days_left": 90, "latency_slo_ms": 1000.0, "cert_min_days": 14}


def address(ip: str, status: Status, code: Code | None = None, *, private: bool = True) -> AddressResult:
    diag = None if code is None else diagnose(code, f"{ip}:80: observed", port=80)
    return AddressResult(ip, 80, private, status=status, diagnosis=diag, phases_ms={"total": float(ip[-1])})


def test_a_failure_is_down_with_the_address_context_in_the_remedy():
    status, diag = address_verdict(Code.CONNECT_TIMEOUT, "10.0.0.1:443: timed out", **LIMITS, port=443)
    assert (status, diag.code, diag.message) == (
        Status.DOWN,
        Code.CONNECT_TIMEOUT,
        "TCP connect timed out: 10.0.0.1:443: timed out",
    )
    assert "inbound 443 " in diag.remedy


def test_slow_and_expiring_are_degraded_slow_first():
    status, diag = address_verdict(None, "", **{**LIMITS, "total_ms": 1500.0, "tls_days_left": 3})
    assert (status, diag.code, diag.message) == (
        Status.DEGRADED,
        Code.SLOW,
        "slower than the latency objective: 1500 ms > 1000 ms",
    )
    status, diag = address_verdict(None, "", **{**LIMITS, "tls_days_left": 3})
    assert (status, diag.code) == (Status.DEGRADED, Code.TLS_CERT_EXPIRING) and diag.message.endswith("3 days left")


def test_within_limits_is_up():
    assert address_verdict(None, "", **LIMITS) == (Status.UP, None)
    assert address_verdict(None, "", **{**LIMITS, "latency_slo_ms": None, "tls_days_left": None}) == (Status.UP, None)


def test_the_lead_is_the_first_address_that_answers():
    a, b = address("10.0.0.1", Status.DOWN, Code.CONNECT_REFUSED), address("10.0.0.2", Status.DEGRADED, Code.SLOW)
    assert lead_address([a, b]) is b
    assert lead_address([a]) is a


def test_all_down_takes_the_most_common_code():
    addrs = [
        address("10.0.0.1", Status.DOWN, Code.CONNECT_REFUSED),
        address("10.0.0.2", Status.DOWN, Code.CONNECT_TIMEOUT),
        address("10.0.0.3", Status.DOWN, Code.CONNECT_TIMEOUT),
    ]
    status, diag = target_verdict(addrs, host="h", expect_private=True)
    assert (status, diag.code) == (Status.DOWN, Code.CONNECT_TIMEOUT)
    assert diag.message == "TCP connect timed out: 10.0.0.2:80: observed (all 3 addresses)"
    assert diag.remedy == addrs[1].diagnosis.remedy


def test_one_address_down_is_its_own_diagnosis():
    only = address("10.0.0.1", Status.DOWN, Code.UNAUTHORIZED)
    assert target_verdict([only], host="h", expect_private=True) == (Status.DOWN, only.diagnosis)


def test_some_down_is_zones_down_naming_each():
    addrs = [
        address("10.0.0.1", Status.UP),
        address("10.0.0.2", Status.DOWN, Code.CONNECT_REFUSED),
        address("10.0.0.3", Status.DOWN),
    ]
    status, diag = target_verdict(addrs, host="ep.example", expect_private=True)
    assert (status, diag.code) == (Status.DEGRADED, Code.ZONES_DOWN)
    assert diag.message.endswith("2 of 3 down (10.0.0.2: connect_refused, 10.0.0.3: down)")


def test_a_degraded_address_degrades_the_target():
    slow = address("10.0.0.2", Status.DEGRADED, Code.SLOW)
    assert target_verdict([address("10.0.0.1", Status.UP), slow], host="h", expect_private=True) == (
        Status.DEGRADED,
        slow.diagnosis,
    )


def test_a_public_address_is_degraded_only_where_private_is_expected():
    addrs = [address("10.0.0.1", Status.UP), address("8.8.8.8", Status.UP, private=False)]
    status, diag = target_verdict(addrs, host="ep.example", expect_private=True)
    assert (status, diag.code) == (Status.DEGRADED, Code.DNS_PUBLIC_ADDRESS) and diag.message.endswith(
        "ep.example -> 8.8.8.8"
    )
    assert target_verdict(addrs, host="ep.example", expect_private=False) == (Status.UP, None)
