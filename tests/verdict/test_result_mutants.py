"""The per-address entries of the result object, field by field, and timings rounded to 0.1 ms
(README "The result object": consumers parse these names)."""

from __future__ import annotations

import pytest

from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult, epoch_of
from shared.verdict.status import Status


def test_address_entry_fields_and_rounding():
    a = AddressResult("10.0.0.7", 443, True, status=Status.UP, http_status=200, attempts=2)
    a.phases_ms = {"dns": 0.04, "connect": 2.66, "tls": None, "ttfb": 12.349, "total": 15.0}
    d = a.to_dict()
    expected = {"ip": "10.0.0.7", "port": 443, "private": True, "status": "up", "http_status": 200, "attempts": 2}
    assert {k: d[k] for k in expected} == expected
    assert d["phases_ms"] == {"dns": 0.0, "connect": 2.7, "tls": None, "ttfb": 12.3, "total": 15.0}
    assert d["error"] is None


def test_a_down_address_names_its_code_and_message():
    a = AddressResult("10.0.0.8", 80, False, status=Status.DOWN, attempts=1)
    a.diagnosis = diagnose(Code.CONNECT_REFUSED, "10.0.0.8:80")
    d = a.to_dict()
    assert (d["status"], d["private"], d["http_status"]) == ("down", False, None)
    assert d["error"] == f"connect_refused: {a.diagnosis.message}" and a.error_code == Code.CONNECT_REFUSED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T01:02:03Z", 1795309323.0),
        ("2026-11-22T09:02:03+08:00", 1795309323.0),  # the same moment in UTC+8
        ("2026-11-22T01:02:03.250Z", 1795309323.25),
        ("2026-11-22T01:02:03", None),  # no zone: which moment is meant is unknown
        ("soon", None),
        ("", None),
        (1795309323, None),  # a number where a time belongs (a damaged document): not taken as one
        (None, None),
    ],
)
def test_epoch_of_reads_rfc3339_with_a_zone_and_nothing_else(text, expected):
    assert epoch_of(text) == expected
