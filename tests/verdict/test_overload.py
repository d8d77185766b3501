"""When the prober is the problem: timeouts under its own lag become unknown; real answers never do."""

from __future__ import annotations

import pytest

from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.overload import judge_overload, overloaded, timed_out
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status

TIMEOUT_S = 0.5


def address(ip: str, code: Code | None, detail: str = "observed") -> AddressResult:
    status = Status.UP if code is None else Status.DOWN
    diag = None if code is None else diagnose(code, f"{ip}:80: {detail}")
    return AddressResult(ip, 80, True, status=status, diagnosis=diag, phases_ms={"total": 1.0})


def target(*addresses: AddressResult, status: Status = Status.DOWN, code: Code | None = None) -> ProbeResult:
    diag = None if code is None else diagnose(code, "observed")
    if diag is None and addresses:
        diag = next((a.diagnosis for a in addresses if a.diagnosis), None)
    return ProbeResult("qwen", "dashscope", "http://x/v1/models", status, addresses=list(addresses), diagnosis=diag)


def test_the_threshold_is_half_the_timeout_both_sides():
    assert not overloaded(249.0, TIMEOUT_S) and overloaded(250.0, TIMEOUT_S) and overloaded(600.0, TIMEOUT_S)


@pytest.mark.parametrize("code", [Code.CONNECT_TIMEOUT, Code.READ_TIMEOUT, Code.STREAM_STALLED])
def test_a_timeout_under_overload_is_unknown_naming_lag_timeout_and_what_was_seen(code):
    r = target(address("127.0.0.2", code))
    out = judge_overload(r, 400.0, TIMEOUT_S)
    assert out.status == Status.UNKNOWN and out.diagnosis.code == Code.PROBER_OVERLOADED
    assert "400 ms" in out.diagnosis.message and "500 ms timeout" in out.diagnosis.message
    assert str(code) in out.diagnosis.message
    assert "fewer targets" in out.diagnosis.remedy and "concurrency" in out.diagnosis.remedy
    assert "memory/CPU" in out.diagnosis.remedy
    assert out.addresses[0].status == Status.UNKNOWN and out.to_dict()["status"] == "unknown"
    assert r.status == Status.DOWN  # pure: the input is left as it was


def test_a_timeout_without_overload_stays_down():
    r = target(address("127.0.0.2", Code.READ_TIMEOUT))
    assert judge_overload(r, 249.0, TIMEOUT_S) is r


@pytest.mark.parametrize(
    "code",
    [
        Code.CONNECT_REFUSED,
        Code.CONNECTION_RESET,
        Code.SERVER_ERROR,
        Code.UNAUTHORIZED,
        Code.NO_READY_INSTANCE,
        Code.PROTOCOL_ERROR,
        Code.TLS_FAILED,
        Code.DNS_UNRESOLVED,
    ],
)
def test_a_real_answer_is_never_unknown_however_bad_the_lag(code):
    r = target(address("127.0.0.2", code), address("127.0.0.3", code))
    assert not timed_out(r)
    assert judge_overload(r, 10_000.0, TIMEOUT_S) is r


def test_a_tls_handshake_cut_by_the_deadline_counts_as_a_timeout_a_tls_error_does_not():
    cut = target(address("127.0.0.2", Code.TLS_FAILED, "no TLS handshake within 0.5s"))
    assert judge_overload(cut, 400.0, TIMEOUT_S).status == Status.UNKNOWN
    bad_cert = target(address("127.0.0.2", Code.TLS_FAILED, "certificate verify failed"))
    assert judge_overload(bad_cert, 400.0, TIMEOUT_S).status == Status.DOWN


def test_the_probe_budget_without_addresses_is_unknown_under_overload():
    r = target(code=Code.READ_TIMEOUT)  # "probe exceeded its budget": no address results
    assert judge_overload(r, 400.0, TIMEOUT_S).status == Status.UNKNOWN
    assert judge_overload(r, 100.0, TIMEOUT_S).status == Status.DOWN
    assert judge_overload(target(code=Code.CREDENTIAL_UNAVAILABLE), 400.0, TIMEOUT_S).status == Status.DOWN


def test_one_zone_timed_out_under_overload_the_other_answered_is_unknown_not_a_recovery_nor_zones_down():
    r = target(
        address("127.0.0.2", None),
        address("127.0.0.3", Code.CONNECT_TIMEOUT),
        status=Status.DEGRADED,
        code=Code.ZONES_DOWN,
    )
    out = judge_overload(r, 400.0, TIMEOUT_S)
    assert out.status == Status.UNKNOWN and out.diagnosis.code == Code.PROBER_OVERLOADED
    assert "127.0.0.3" in out.diagnosis.message and [a.status for a in out.addresses] == ["up", "unknown"]


def test_a_refused_zone_with_a_timed_out_zone_under_overload_is_degraded_never_a_total_outage():
    r = target(address("127.0.0.2", Code.CONNECT_REFUSED), address("127.0.0.3", Code.READ_TIMEOUT))
    out = judge_overload(r, 400.0, TIMEOUT_S)
    assert out.status == Status.DEGRADED and out.diagnosis.code == Code.ZONES_DOWN
    assert [a.status for a in out.addresses] == ["down", "unknown"]
    assert "127.0.0.2: connect_refused" in out.diagnosis.message and "127.0.0.3: unknown" in out.diagnosis.message


def test_up_and_unknown_results_are_left_alone():
    up = target(address("127.0.0.2", None), status=Status.UP)
    assert judge_overload(up, 10_000.0, TIMEOUT_S) is up
