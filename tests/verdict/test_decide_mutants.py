"""Verdict boundaries and remedies filled in: exactly at the objective is not slow, exactly at
`cert_min_days` is not expiring, and no remedy is printed with a `{placeholder}` or `<placeholder>`
left where the probe knew the value."""

from __future__ import annotations

import re

import pytest

from shared.verdict.codes import CATALOG, Code
from shared.verdict.decide import address_verdict, target_verdict
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult
from shared.verdict.status import Status

HOST = "vpc-ap-southeast-1.dashscope.aliyuncs.com"


def verdict(total_ms=100.0, days=None, slo=None, min_days=14):
    return address_verdict(
        None, "", total_ms=total_ms, tls_days_left=days, latency_slo_ms=slo, cert_min_days=min_days, host=HOST
    )


def test_at_the_latency_objective_is_up_and_above_it_slow():
    assert verdict(total_ms=500.0, slo=500.0) == (Status.UP, None)
    status, d = verdict(total_ms=500.4, slo=500.0)
    assert (status, d.code, d.message) == (
        Status.DEGRADED,
        Code.SLOW,
        "slower than the latency objective: 500 ms > 500 ms",
    )


def test_at_cert_min_days_is_up_and_one_below_expiring():
    assert verdict(days=14, min_days=14) == (Status.UP, None)
    status, d = verdict(days=13, min_days=14)
    assert (status, d.code, d.message) == (
        Status.DEGRADED,
        Code.TLS_CERT_EXPIRING,
        "the TLS certificate expires soon: 13 days left",
    )
    assert d.remedy == f"Renew the certificate served for {HOST}."


def test_a_failure_keeps_its_context_in_the_remedy():
    status, d = address_verdict(
        Code.TLS_ON_HTTP_ONLY,
        "handshake failed",
        total_ms=1.0,
        tls_days_left=None,
        latency_slo_ms=None,
        cert_min_days=14,
        host="ep-x.dashscope.cn-beijing.privatelink.aliyuncs.com",
        region="cn-beijing",
    )
    assert status == Status.DOWN and d.message.endswith(": handshake failed")
    assert "http://ep-x.dashscope.cn-beijing.privatelink.aliyuncs.com" in d.remedy
    assert "https://vpc-cn-beijing.dashscope.aliyuncs.com" in d.remedy


def addr(ip, status, code=None, private=True):
    a = AddressResult(ip, 80, private, status=status)
    if code is not None:
        a.diagnosis = diagnose(code, f"at {ip}", host=HOST)
    return a


def test_public_addresses_are_listed_in_the_message():
    addresses = [addr("47.88.1.1", Status.UP, private=False), addr("47.88.1.2", Status.UP, private=False)]
    status, d = target_verdict(addresses, host=HOST, expect_private=True)
    assert (status, d.code) == (Status.DEGRADED, Code.DNS_PUBLIC_ADDRESS)
    assert d.message.endswith(f": {HOST} -> 47.88.1.1, 47.88.1.2")
    assert target_verdict(addresses, host=HOST, expect_private=False) == (Status.UP, None)


def test_all_down_leads_with_the_most_common_code():
    addresses = [
        addr("10.0.0.1", Status.DOWN, Code.CONNECT_TIMEOUT),
        addr("10.0.0.2", Status.DOWN, Code.CONNECT_REFUSED),
        addr("10.0.0.3", Status.DOWN, Code.CONNECT_REFUSED),
    ]
    status, d = target_verdict(addresses, host=HOST, expect_private=True)
    assert (status, d.code) == (Status.DOWN, Code.CONNECT_REFUSED)
    assert d.message.endswith("at 10.0.0.2 (all 3 addresses)")


# What a probe always knows; a remedy must not print the defaults' placeholders when it has them.
KNOWN = {"host": HOST, "port": 443, "scheme": "https", "region": "ap-southeast-1", "service": "llm"}


@pytest.mark.parametrize("code", list(Code))
def test_every_remedy_fills_every_placeholder(code):
    d = diagnose(code, "x", **KNOWN)
    assert "{" not in d.remedy and "}" not in d.remedy, d.remedy
    for key, value in KNOWN.items():
        if f"{{{key}}}" in CATALOG[code][1]:
            assert str(value) in d.remedy, (code, d.remedy)
    assert "<region>" not in d.remedy or "<region>" in CATALOG[code][1], d.remedy
    assert "<service>" not in d.remedy or "<service>" in CATALOG[code][1], d.remedy


def test_eas_service_not_found_names_the_service_and_region():
    d = diagnose(Code.EAS_SERVICE_NOT_FOUND, "404", service="grp.blue", region="cn-hangzhou")
    assert "service 'grp.blue'" in d.remedy and "region cn-hangzhou" in d.remedy
    assert not re.search(r"<(service|region)>", d.remedy)


def test_defaults_when_the_probe_knows_nothing():
    d = diagnose(Code.CONNECT_TIMEOUT)
    assert d.message == CATALOG[Code.CONNECT_TIMEOUT][0] and "80/443" in d.remedy
    assert diagnose(Code.TLS_CERT_EXPIRING).remedy == "Renew the certificate served for the host."
