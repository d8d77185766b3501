"""The result's JSON: statuses and codes as plain strings, the address error as "code: message"."""

from __future__ import annotations

import json

from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status


def test_address_error_fields_and_json():
    a = AddressResult("10.0.0.1", 80, True, diagnosis=diagnose(Code.CONNECT_REFUSED, "10.0.0.1:80: connection refused"))
    assert (a.status, a.error_code, a.error_message) == (
        Status.DOWN,
        Code.CONNECT_REFUSED,
        "TCP connection refused: 10.0.0.1:80: connection refused",
    )
    d = a.to_dict()
    assert d["error"] == "connect_refused: TCP connection refused: 10.0.0.1:80: connection refused"
    assert type(d["status"]) is str and d["status"] == "down"


def test_a_healthy_address_has_no_error():
    a = AddressResult("10.0.0.1", 80, True, status=Status.UP)
    assert (a.error_code, a.error_message, a.to_dict()["error"]) == (None, None, None)


def test_result_json_is_plain():
    r = ProbeResult("t", "eas", "http://h/", Status.DEGRADED, diagnosis=diagnose(Code.SLOW, "2 ms > 1 ms"))
    d = r.to_dict()
    assert (type(d["status"]), type(d["diagnosis"]["code"])) == (str, str)
    again = json.loads(json.dumps(d))
    assert (again["status"], again["diagnosis"]["code"]) == ("degraded", "slow")
    assert list(d) == [
        "target", "kind", "url", "status", "http_status", "phases_ms", "addresses", "diagnosis", "checked_at",
        "form", "mode", "tls_days_left", "warnings", "eas_service", "credential_refreshed", "blackbox_phases_ms",
        "tls_not_after",
    ]  # fmt: skip
