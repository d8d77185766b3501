"""The probe result: the one shape that logs, `--json`, the status page and alerts all share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared.verdict.codes import Code
from shared.verdict.diagnose import Diagnosis
from shared.verdict.status import Status

PHASES = ("dns", "connect", "tls", "ttfb", "total")
# blackbox_exporter's probe_http_duration_seconds phases, for comparing side by side (README "The result object").
BLACKBOX_PHASES = ("resolve", "connect", "tls", "processing", "transfer")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(text: object) -> float | None:
    """Unix seconds of an RFC 3339 time ("...Z" or an offset), as results and state documents carry it; None
    when it is not one (a stored document may hold anything)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _round(phases: dict[str, float | None], names: tuple[str, ...] = PHASES) -> dict[str, float | None]:
    return {k: (None if phases.get(k) is None else round(phases[k], 1)) for k in names}


@dataclass
class AddressResult:
    ip: str
    port: int
    private: bool
    status: Status = Status.DOWN
    phases_ms: dict[str, float | None] = field(default_factory=dict)
    http_status: int | None = None
    # Why the address is down or degraded; its remedy becomes the target's when this address leads.
    diagnosis: Diagnosis | None = None
    attempts: int = 0
    tls_days_left: int | None = None
    tls_not_after: str | None = None  # RFC 3339 notAfter of the peer certificate
    blackbox_phases_ms: dict[str, float | None] = field(default_factory=dict)

    @property
    def error_code(self) -> Code | None:
        return None if self.diagnosis is None else self.diagnosis.code

    @property
    def error_message(self) -> str | None:
        return None if self.diagnosis is None else self.diagnosis.message

    def to_dict(self) -> dict:
        return {
            "ip": self.ip,
            "port": self.port,
            "private": self.private,
            "status": str(self.status),
            "http_status": self.http_status,
            "phases_ms": _round(self.phases_ms),
            "blackbox_phases_ms": _round(self.blackbox_phases_ms, BLACKBOX_PHASES),
            "attempts": self.attempts,
            "error": None if self.diagnosis is None else f"{self.error_code}: {self.error_message}",
        }


@dataclass
class ProbeResult:
    target: str
    kind: str
    url: str
    status: Status
    http_status: int | None = None
    phases_ms: dict[str, float | None] = field(default_factory=dict)
    addresses: list[AddressResult] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    checked_at: str = field(default_factory=now_rfc3339)
    form: str | None = None
    mode: str | None = None
    tls_days_left: int | None = None
    # RFC 3339: the earliest notAfter of the addresses' certificates (probe_ssl_earliest_cert_expiry)
    tls_not_after: str | None = None
    warnings: list[str] = field(default_factory=list)
    # eas: credentials: what DescribeService said, {"status", "running", "total"}.
    eas_service: dict | None = None
    # A 401 made the probe fetch the credential again and retry with the new value.
    credential_refreshed: bool = False
    blackbox_phases_ms: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "status": str(self.status),
            "http_status": self.http_status,
            "phases_ms": _round(self.phases_ms),
            "addresses": [a.to_dict() for a in self.addresses],
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "checked_at": self.checked_at,
            "form": self.form,
            "mode": self.mode,
            "tls_days_left": self.tls_days_left,
            "warnings": list(self.warnings),
            "eas_service": None if self.eas_service is None else dict(self.eas_service),
            "credential_refreshed": self.credential_refreshed,
            "blackbox_phases_ms": _round(self.blackbox_phases_ms, BLACKBOX_PHASES),
            "tls_not_after": self.tls_not_after,
        }
