"""The timing arithmetic of one attempt on set marks (seconds that are exact in binary, so every phase is
an exact number of milliseconds), and the phase a deadline names at each stage."""

from __future__ import annotations

import pytest

from shared.probe.attempt import _blackbox_phases, _phases, _timeout_phase
from shared.probe.transport import Marks
from shared.verdict.codes import Code


def https_marks(body_end: float | None = 12.0) -> Marks:
    return Marks(
        connect_start=10.0,
        connect_end=10.25,
        tls_start=10.25,
        tls_end=10.5,
        request_start=10.5,
        request_written=10.5,
        first_byte=11.0,
        headers_done=11.25,
        body_end=body_end,
    )


def test_https_phases_in_milliseconds():
    marks = https_marks()
    assert _phases(marks, start=9.0, end=13.0) == {"connect": 250.0, "tls": 250.0, "ttfb": 750.0, "total": 2000.0}
    assert _blackbox_phases(marks, end=13.0) == {
        "connect": 250.0,
        "tls": 250.0,
        "processing": 500.0,
        "transfer": 1000.0,
    }


def test_an_unfinished_body_ends_the_total_at_the_attempts_end_and_has_no_transfer():
    marks = https_marks(body_end=None)
    assert _phases(marks, start=9.0, end=12.5)["total"] == 2500.0
    assert _blackbox_phases(marks, end=12.5)["transfer"] is None


def test_no_connection_counts_the_total_from_the_attempts_start():
    assert _phases(Marks(), start=9.0, end=9.5) == {"connect": None, "tls": None, "ttfb": None, "total": 500.0}
    assert _blackbox_phases(Marks(), end=9.5) == {"connect": None, "tls": None, "processing": None, "transfer": None}


def test_plain_http_processing_starts_when_the_connection_is_up():
    marks = Marks(connect_start=10.0, connect_end=10.25, request_start=10.25, first_byte=10.75, headers_done=11.0)
    assert _blackbox_phases(marks, end=11.0) == {"connect": 250.0, "tls": None, "processing": 500.0, "transfer": None}
    assert _phases(marks, start=9.0, end=11.5) == {"connect": 250.0, "tls": None, "ttfb": 750.0, "total": 1500.0}


@pytest.mark.parametrize(
    "marks,stream,expected",
    [
        (Marks(), False, (Code.CONNECT_TIMEOUT, "TCP connection")),
        (Marks(connect_end=1.0, tls_start=1.0), True, (Code.TLS_FAILED, "TLS handshake")),
        (Marks(connect_end=1.0), True, (Code.READ_TIMEOUT, "response")),
        (Marks(connect_end=1.0, tls_start=1.0, tls_end=2.0), False, (Code.READ_TIMEOUT, "response")),
        (Marks(connect_end=1.0, headers_done=2.0), True, (Code.STREAM_STALLED, "stream frame")),
        (Marks(connect_end=1.0, headers_done=2.0), False, (Code.READ_TIMEOUT, "response")),
    ],
)
def test_the_phase_a_deadline_cut_short(marks, stream, expected):
    assert _timeout_phase(marks, stream) == expected
