"""When the prober is the problem: a timeout seen while the prober's own event loop lagged says nothing.

A monitor that pages for a total outage because it was itself too slow to read the answers is the
worst failure it can have. So a result whose failure is a timeout (connect, read, a stalled stream,
a TLS handshake cut short, the probe's whole budget) is turned into `unknown` with the diagnosis
`prober_overloaded` when, during the probe, the prober's own event-loop lag may have cost one attempt
at least half of its timeout (shared/probe/lag.py measures it). A refusal, a reset, an HTTP error or
a TLS error is an answer from the network, whatever the prober's state: it is never touched.

Why half: a timeout is set with headroom over the endpoint's normal latency (at least 2x, or every
slow minute would page). While the prober loses less than half the timeout, a healthy endpoint still
had more than its normal latency to answer, so the timeout is the endpoint's. From half on, a healthy
endpoint may have been cut off by the prober's own stall: the honest answer is "unknown". A lower
share would hide real hangs behind ordinary busy rounds; a higher one lets a starved prober page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shared.verdict.codes import Code
from shared.verdict.decide import target_verdict
from shared.verdict.diagnose import Diagnosis, diagnose
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status

OVERLOAD_SHARE = 0.5

# Failures that only say "nothing came back in time": the prober's own slowness can cause them.
TIMEOUT_CODES = frozenset({Code.CONNECT_TIMEOUT, Code.READ_TIMEOUT, Code.STREAM_STALLED})
# A TLS handshake cut short by the attempt's deadline is reported as tls_failed with this phrase
# (attempt.py); any other tls_failed is the peer's answer.
TLS_TIMEOUT_MARK = "no TLS handshake within"


def _timed_out(diagnosis: Diagnosis | None) -> bool:
    if diagnosis is None:
        return False
    if diagnosis.code in TIMEOUT_CODES:
        return True
    return diagnosis.code in (Code.TLS_FAILED, Code.TLS_ON_HTTP_ONLY) and TLS_TIMEOUT_MARK in diagnosis.message


def timed_out(result: ProbeResult) -> bool:
    """Whether the prober's lag could explain this result's failure (cheap: asked before measuring the lag)."""
    if result.status not in (Status.DOWN, Status.DEGRADED):
        return False
    if not result.addresses:
        return _timed_out(result.diagnosis)
    return any(a.status == Status.DOWN and _timed_out(a.diagnosis) for a in result.addresses)


def overloaded(lag_ms: float, timeout_s: float, share: float = OVERLOAD_SHARE) -> bool:
    """Whether the loop lost a large share (`share`) of an attempt's timeout to its own lag."""
    return lag_ms >= share * timeout_s * 1000


def judge_overload(result: ProbeResult, lag_ms: float, timeout_s: float, share: float = OVERLOAD_SHARE) -> ProbeResult:
    """The result as it should be reported, given what the loop's lag may have cost one of its attempts
    (`lag_ms`, LagMonitor.lost_ms). Unchanged unless a timeout coincides
    with an overloaded prober; then those addresses become `unknown`, and the target `unknown` unless
    its other addresses already tell (a real failure elsewhere makes it degraded, never down)."""
    if not timed_out(result) or not overloaded(lag_ms, timeout_s, share):
        return result
    what = (
        f"the prober's own event-loop lag may have cost an attempt {lag_ms:.0f} ms of its "
        f"{timeout_s * 1000:.0f} ms timeout"
    )
    if not result.addresses:
        return replace(result, status=Status.UNKNOWN, diagnosis=_overload(what, result.diagnosis))
    addresses = [
        replace(a, status=Status.UNKNOWN, diagnosis=_overload(what, a.diagnosis))
        if a.status == Status.DOWN and _timed_out(a.diagnosis)
        else a
        for a in result.addresses
    ]
    status, diagnosis = _target(addresses, what)
    return replace(result, addresses=addresses, status=status, diagnosis=diagnosis)


def _overload(what: str, seen: Diagnosis | None) -> Diagnosis:
    observed = f" (the probe saw {seen.code}: {seen.message})" if seen is not None else ""
    return diagnose(Code.PROBER_OVERLOADED, what + observed)


def _target(addresses: Sequence[AddressResult], what: str) -> tuple[Status, Diagnosis | None]:
    unknown = [a for a in addresses if a.status == Status.UNKNOWN]
    known = [a for a in addresses if a.status != Status.UNKNOWN]
    lead = unknown[0].diagnosis
    if not known:
        return Status.UNKNOWN, lead
    # A public address cannot be the reason here: target_verdict ranks failed zones before it.
    status, diagnosis = target_verdict(known, host="the host", expect_private=False)
    which = ", ".join(a.ip for a in unknown)
    if status == Status.UP:
        # The others answered, but whether these zones are down cannot be told this round.
        return Status.UNKNOWN, diagnose(Code.PROBER_OVERLOADED, f"{which}: {what}; the other addresses answered")
    if status == Status.DOWN:
        # A real failure: some zone is down, but a total outage cannot be claimed.
        bad = ", ".join(f"{a.ip}: {a.error_code}" for a in known)
        detail = f"{len(known)} of {len(addresses)} down ({bad}); {which}: unknown, {what}"
        return Status.DEGRADED, diagnose(Code.ZONES_DOWN, detail)
    return status, diagnosis  # degraded on what answered (slow, certificate, a real failure): stands
