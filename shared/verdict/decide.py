"""Up, degraded or down: for one address from what its request observed, for a target from its addresses.

A target is down only when every address fails, and degraded when some do: a zone's endpoint ENI
failing while the name still answers is the failure a single request to the name would miss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from shared.verdict.codes import Code
from shared.verdict.diagnose import Diagnosis, diagnose
from shared.verdict.result import AddressResult
from shared.verdict.status import Status


def address_verdict(
    failure: Code | None,
    detail: str,
    *,
    total_ms: float,
    tls_days_left: int | None,
    latency_slo_ms: float | None,
    cert_min_days: int,
    **context: object,
) -> tuple[Status, Diagnosis | None]:
    """One address: down on a failure; degraded when slower than the objective or its certificate expires soon."""
    if failure is not None:
        return Status.DOWN, diagnose(failure, detail, **context)
    if latency_slo_ms is not None and total_ms > latency_slo_ms:
        return Status.DEGRADED, diagnose(Code.SLOW, f"{total_ms:.0f} ms > {latency_slo_ms:.0f} ms", **context)
    if tls_days_left is not None and tls_days_left < cert_min_days:
        return Status.DEGRADED, diagnose(Code.TLS_CERT_EXPIRING, f"{tls_days_left} days left", **context)
    return Status.UP, None


def lead_address(addresses: Sequence[AddressResult]) -> AddressResult:
    """The address whose timings and HTTP status stand for the target: the first that is not down."""
    return next((a for a in addresses if a.status != Status.DOWN), addresses[0])


def target_verdict(
    addresses: Sequence[AddressResult], *, host: str, expect_private: bool
) -> tuple[Status, Diagnosis | None]:
    """A target from its addresses (at least one); `expect_private`: a public address is degraded."""
    good = [a for a in addresses if a.status != Status.DOWN]
    bad = [a for a in addresses if a.status == Status.DOWN]
    if not good:
        top = Counter(a.error_code for a in bad if a.error_code).most_common(1)[0][0]
        first = next(a for a in bad if a.error_code == top)
        if len(bad) == 1:
            return Status.DOWN, first.diagnosis
        return Status.DOWN, Diagnosis(top, f"{first.error_message} (all {len(bad)} addresses)", first.diagnosis.remedy)
    if bad:
        detail = ", ".join(f"{a.ip}: {a.error_code or 'down'}" for a in bad)
        return Status.DEGRADED, diagnose(Code.ZONES_DOWN, f"{len(bad)} of {len(addresses)} down ({detail})", host=host)
    degraded = next((a for a in good if a.status == Status.DEGRADED), None)
    if degraded is not None:
        return Status.DEGRADED, degraded.diagnosis
    public = [a.ip for a in addresses if not a.private]
    if expect_private and public:
        return Status.DEGRADED, diagnose(Code.DNS_PUBLIC_ADDRESS, f"{host} -> {', '.join(public)}", host=host)
    return Status.UP, None
