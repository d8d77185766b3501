"""Helpers for the alerting tests: probe results without probing, and a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status

T0 = datetime(2026, 11, 22, 1, 0, tzinfo=timezone.utc)
CODE_FOR = {"down": Code.CONNECT_REFUSED, "degraded": Code.ZONES_DOWN}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def result(name: str, status: str, when: datetime, *, kind: str = "dashscope", detail: str = "") -> ProbeResult:
    """A result as the prober would produce it: two zones, zone B failing when not up."""
    diag = None if status == Status.UP else diagnose(CODE_FOR[status], detail or "127.0.0.3: connection refused")
    zone_b = AddressResult(
        "127.0.0.3",
        80,
        True,
        status=Status.UP if status == Status.UP else Status.DOWN,
        diagnosis=None if status == Status.UP else diagnose(Code.CONNECT_REFUSED, "TCP connection refused"),
        phases_ms={"dns": 0.1, "connect": 1.0, "total": 2.0},
    )
    zone_a = AddressResult(
        "127.0.0.2",
        80,
        True,
        status=Status.DOWN if status == Status.DOWN else Status.UP,
        diagnosis=diagnose(Code.CONNECT_REFUSED, "TCP connection refused") if status == Status.DOWN else None,
        phases_ms={"dns": 0.1, "connect": 1.2, "ttfb": 3.0, "total": 5.0},
    )
    return ProbeResult(
        name,
        kind,
        f"http://ep-{name}.dashscope.ap-southeast-1.privatelink.aliyuncs.com/compatible-mode/v1/models",
        status,
        http_status=None if status == Status.DOWN else 200,
        phases_ms={"dns": 0.1, "connect": 1.2, "ttfb": 3.0, "total": 5.0},
        addresses=[zone_a, zone_b],
        diagnosis=diag,
        checked_at=when.isoformat().replace("+00:00", "Z"),
    )


def firing(names: list[str], *, status: str = "down") -> list:
    """Notifications for targets that just fired (two failed rounds at minutes 0 and 1)."""
    from shared.alerts.policy import decide

    state: dict = {}
    out: list = []
    for minute in (0, 1):
        state, out = decide([result(n, status, at(minute)) for n in names], state, at(minute))
    return out


def message(notes: list, *, now: datetime | None = None, status_page_url: str | None = None):
    from shared.alerts.channels import Message

    return Message(Message.id_for(notes), tuple(notes), now or at(1), status_page_url, "Asia/Shanghai")
