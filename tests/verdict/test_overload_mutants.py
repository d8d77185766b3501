"""judge_overload's whole messages (the lag, the timeout, what the probe saw, which addresses), its
`share`, and the addresses it leaves to target_verdict: a public one that answered is not a finding."""

from __future__ import annotations

from shared.verdict.codes import CATALOG, Code
from shared.verdict.diagnose import Diagnosis, diagnose
from shared.verdict.overload import judge_overload
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status

LAG = "the prober's own event-loop lag may have cost an attempt 400 ms of its 500 ms timeout"
OVERLOADED_REMEDY = CATALOG[Code.PROBER_OVERLOADED][1]


def address(ip: str, code: Code | None, *, private: bool = True) -> AddressResult:
    status = Status.UP if code is None else Status.DOWN
    diag = None if code is None else diagnose(code, f"{ip}:80: seen")
    return AddressResult(ip, 80, private, status=status, diagnosis=diag)


def target(*addresses: AddressResult, diagnosis: Diagnosis | None = None) -> ProbeResult:
    return ProbeResult(
        "qwen", "dashscope", "http://x/v1/models", Status.DOWN, addresses=list(addresses), diagnosis=diagnosis
    )


def overloaded_message(text: str) -> str:
    return f"{CATALOG[Code.PROBER_OVERLOADED][0]}: {text}"


def test_the_probe_budget_alone_names_the_lag_and_what_was_seen():
    seen = diagnose(Code.READ_TIMEOUT, "no response within 0.5s")
    out = judge_overload(target(diagnosis=seen), 400.0, 0.5)
    assert out.status == Status.UNKNOWN
    assert out.diagnosis == Diagnosis(
        Code.PROBER_OVERLOADED,
        overloaded_message(f"{LAG} (the probe saw read_timeout: {seen.message})"),
        OVERLOADED_REMEDY,
    )


def test_a_down_result_without_a_diagnosis_is_left_alone():
    r = target()
    assert judge_overload(r, 400.0, 0.5) is r


def test_share_sets_the_threshold_against_this_timeout():
    r = target(address("10.0.0.1", Code.CONNECT_TIMEOUT))
    assert judge_overload(r, 300.0, 2.0, share=0.25) is r
    out = judge_overload(r, 700.0, 2.0, share=0.25)
    assert out.status == Status.UNKNOWN
    assert out.diagnosis.message.startswith(
        overloaded_message("the prober's own event-loop lag may have cost an attempt 700 ms of its 2000 ms timeout")
    )


def test_timed_out_zones_beside_a_public_address_that_answered_are_unknown():
    out = judge_overload(
        target(
            address("10.0.0.1", Code.READ_TIMEOUT),
            address("10.0.0.2", Code.READ_TIMEOUT),
            address("47.88.1.1", None, private=False),
        ),
        400.0,
        0.5,
    )
    assert out.status == Status.UNKNOWN
    assert out.diagnosis == Diagnosis(
        Code.PROBER_OVERLOADED,
        overloaded_message(f"10.0.0.1, 10.0.0.2: {LAG}; the other addresses answered"),
        OVERLOADED_REMEDY,
    )


def test_refused_zones_beside_timed_out_ones_are_degraded_naming_each():
    out = judge_overload(
        target(
            address("10.0.0.1", Code.CONNECT_REFUSED),
            address("10.0.0.2", Code.CONNECTION_RESET),
            address("10.0.0.3", Code.READ_TIMEOUT),
        ),
        400.0,
        0.5,
    )
    assert out.status == Status.DEGRADED and out.diagnosis.code == Code.ZONES_DOWN
    assert out.diagnosis.message == (
        f"{CATALOG[Code.ZONES_DOWN][0]}: 2 of 3 down (10.0.0.1: connect_refused, 10.0.0.2: connection_reset); "
        f"10.0.0.3: unknown, {LAG}"
    )
