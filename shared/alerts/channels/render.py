"""What an alert says, independent of the channel: titles, per-target facts, plain text.

Channels format these facts as markdown (DingTalk), HTML + text (email) or text (console), so
every channel says the same thing. Every string that leaves through a channel goes through the
log redactor first: a secret that slipped into an upstream's error text never reaches a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared import logs
from shared.alerts.channels import Message
from shared.alerts.policy import Notification, NotificationKind, Severity, iso, parse_iso, zone

MARK = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠"}
RESOLVED_MARK = "✅"
TIMING_KEYS = ("total", "dns", "connect", "tls", "ttfb")
TITLE_NAMES = 3  # targets named in a title; the rest are counted

Entry = tuple[Notification, list[tuple[str, str]]]  # a notification with its (label, value) facts


def clean(text: str) -> str:
    return logs.redact_text(text)


def mark(n: Notification) -> str:
    return RESOLVED_MARK if n.kind.clears else MARK.get(n.severity, "⚪")


def label(n: Notification) -> str:
    """FIRING · CRITICAL, CHANGED · WARNING → CRITICAL, REMINDER · CRITICAL, RESOLVED, CANNOT JUDGE · WARNING,
    JUDGED AGAIN, NOTICE · WARNING."""
    if n.kind == NotificationKind.RESOLVED:
        return "RESOLVED"
    if n.kind == NotificationKind.JUDGED:
        return "JUDGED AGAIN"
    sev = (n.severity or "").upper()
    if n.kind == NotificationKind.CHANGED:
        return f"CHANGED · {(n.previous or '').upper()} → {sev}"
    words = {
        NotificationKind.REMINDER: "REMINDER",
        NotificationKind.UNJUDGED: "CANNOT JUDGE",
        NotificationKind.NOTICE: "NOTICE",
    }
    return f"{words.get(n.kind, 'FIRING')} · {sev}"


def when(stamp: str | None, tz: str) -> str:
    if not stamp:
        return "-"
    moment = parse_iso(stamp).astimezone(zone(tz))
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + (moment.tzname() or tz)


def duration(start: str | None, end: datetime) -> str:
    if not start:
        return "-"
    seconds = max(0, int((end - parse_iso(start)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def state_line(n: Notification, m: Message) -> str:
    if n.kind == NotificationKind.RESOLVED:
        return (
            f"{n.status} since {when(n.since, m.timezone)}; was {_word(n.previous)} for "
            f"{_span(n.started, n.since)} (from {when(n.started, m.timezone)})"
        )
    return f"{n.status} since {when(n.since, m.timezone)} (for {duration(n.since, m.now)})"


def _word(severity: Severity | None) -> str:
    return {Severity.CRITICAL: "down", Severity.WARNING: "degraded"}.get(severity, "failing")


def _span(start: str | None, end: str | None) -> str:
    return duration(start, parse_iso(end)) if end else "-"


def timings(n: Notification) -> str:
    parts = [f"{k} {n.timings[k]:.0f} ms" for k in TIMING_KEYS if n.timings.get(k) is not None]
    if n.http_status:
        parts.append(f"HTTP {n.http_status}")
    return " · ".join(parts) or "-"


def facts(n: Notification, m: Message, remedies_shown: set[str]) -> list[tuple[str, str]]:
    """(label, value) pairs for one entry; a remedy already shown in this message is referenced, not repeated."""
    rows = [("state", state_line(n, m))]
    if n.kind != NotificationKind.RESOLVED and n.code:
        rows.append(("diagnosis", f"{n.code}: {n.message or ''}".strip()))
        if n.remedy and n.code in remedies_shown:
            rows.append(("fix", f"as for {n.code} above"))
        elif n.remedy:
            remedies_shown.add(n.code)
            rows.append(("fix", n.remedy))
    rows.append(("timings", timings(n)))
    if n.failed and n.kind != NotificationKind.RESOLVED:
        rows.append(("failed addresses", ", ".join(n.failed)))
    rows.append(("endpoint", n.url))
    if n.maintenance:
        rows.append(("note", f"changed during maintenance window '{n.maintenance}'; reported now that it ended"))
    return [(k, clean(v)) for k, v in rows]


def heading(n: Notification) -> str:
    return clean(f"{mark(n)} {label(n)} — {n.target} ({n.target_kind})")


def counts(notifications: Iterable[Notification]) -> tuple[str, str]:
    """(worst state word, "2 alerting (1 critical, 1 warning), 1 resolved")."""
    notes = list(notifications)
    alerting = [n for n in notes if not n.kind.clears]
    resolved = [n for n in notes if n.kind.clears]
    crit = sum(1 for n in alerting if n.severity == Severity.CRITICAL)
    warn = len(alerting) - crit
    worst = "CRITICAL" if crit else ("WARNING" if warn else "RESOLVED")
    parts = []
    if alerting:
        split = ", ".join(p for p in (f"{crit} critical" if crit else "", f"{warn} warning" if warn else "") if p)
        parts.append(f"{len(alerting)} alerting ({split})")
    if resolved:
        parts.append(f"{len(resolved)} resolved")
    return worst, ", ".join(parts)


def title(m: Message) -> str:
    """`[vpcprobe] CRITICAL: 2 alerting (2 critical), 1 resolved — llm-eas-vpc, qwen-a, +1`."""
    worst, text = counts(m.notifications)
    targets = [n.target for n in m.notifications]
    shown = ", ".join(targets[:TITLE_NAMES])
    if len(targets) > TITLE_NAMES:
        shown += f", +{len(targets) - TITLE_NAMES}"
    return clean(f"[vpcprobe] {worst}: {text} — {shown}")


def all_facts(m: Message) -> list[Entry]:
    """Each notification with its facts, computed once per message (email renders them twice)."""
    shown: set[str] = set()
    return [(n, facts(n, m, shown)) for n in m.notifications]


def plain(m: Message, rows: list[Entry] | None = None) -> str:
    """The message as plain text (console, email text part)."""
    lines = [title(m), ""]
    for n, pairs in rows if rows is not None else all_facts(m):
        lines.append(heading(n))
        lines += [f"  {k}: {v}" for k, v in pairs]
        lines.append("")
    if m.status_page_url:
        lines.append(f"Status page: {m.status_page_url}")
    lines.append(f"Sent by vpcprobe at {when(iso(m.now), m.timezone)}.")
    return "\n".join(lines)

