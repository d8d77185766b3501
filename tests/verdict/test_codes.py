"""Diagnosis codes: a public contract, so their values never change, and every one has a remedy."""

from __future__ import annotations

import json
import re
import string

import pytest

from shared.verdict.codes import CATALOG, Code
from shared.verdict.diagnose import diagnose

# The codes as they were when they were plain strings: logs, --json, alerts and state files carry them.
PUBLISHED = {
    "dns_unresolved",
    "dns_public_address",
    "connect_timeout",
    "connect_refused",
    "connection_reset",
    "tls_failed",
    "tls_on_http_only",
    "tls_cert_expiring",
    "unauthorized",
    "forbidden",
    "path_not_found",
    "eas_service_not_found",
    "request_timeout",
    "body_too_large",
    "rate_limited",
    "eas_queue_full",
    "no_ready_instance",
    "model_unavailable",
    "server_error",
    "bad_request",
    "unexpected_status",
    "body_mismatch",
    "stream_error_frame",
    "stream_stalled",
    "read_timeout",
    "protocol_error",
    "slow",
    "zones_down",
    "credential_unavailable",
    "eas_service_not_running",
    "prober_overloaded",  # issue 10: the prober's own lag, not the endpoint
    "no_route",  # issue 11: EHOSTUNREACH / ENETUNREACH, was connect_timeout
    "tls_plain_http",  # issue 11: a TLS handshake answered in plain HTTP
    "request_header_invalid",  # issue 11: a credential with a line break, was protocol_error / a crash
    "prober_error",  # the probe itself raised (a vpcprobe bug): unknown, was server_error and down
}
CONTEXT = {"host", "port", "scheme", "region", "service", "in_region", "custom_domain"}


def test_values_are_the_published_codes():
    assert {c.value for c in Code} == PUBLISHED


def test_member_names_are_the_values_in_capitals():
    assert [c.name for c in Code] == [c.value.upper() for c in Code]


@pytest.mark.parametrize("code", list(Code), ids=str)
def test_every_code_has_a_summary_and_a_remedy(code):
    summary, remedy = CATALOG[code]
    assert summary.strip() and remedy.strip()
    fields = {name for _, name, _, _ in string.Formatter().parse(remedy) if name}
    assert fields <= CONTEXT, f"{code}: remedy uses {fields - CONTEXT}"


@pytest.mark.parametrize("code", list(Code), ids=str)
def test_no_remedy_keeps_a_placeholder_for_the_reader(code):
    """`<service>` or `<region>` printed literally (doctor's EAS 404 did) reads as a bug, not advice."""
    for context in ({}, {"host": "h.example", "port": 80, "scheme": "http", "region": "cn-hangzhou", "service": "llm"}):
        remedy = diagnose(code, **context).remedy
        assert not re.search(r"<\w+>|[{}]", remedy), remedy


def test_the_catalog_has_no_stray_entries():
    assert set(CATALOG) == set(Code)


@pytest.mark.parametrize("code", [Code.SLOW, Code.EAS_SERVICE_NOT_RUNNING])
def test_a_code_prints_as_its_value(code):
    assert (str(code), f"{code}", f"{code:>1}", json.dumps(code)) == (code.value,) * 3 + (f'"{code.value}"',)


def test_a_code_finds_and_is_found_by_its_plain_value():
    """State files load codes back as plain strings: lookups must work either way round."""
    assert {"zones_down": 1}[Code.ZONES_DOWN] == 1 and {Code.ZONES_DOWN: 1}["zones_down"] == 1
    assert Code("zones_down") is Code.ZONES_DOWN
