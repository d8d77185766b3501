"""Human-readable rendering of probe results (the CLI table and `serve`'s round lines)."""

from __future__ import annotations

from shared.verdict.result import ProbeResult
from shared.verdict.status import Status


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_table(results: list[ProbeResult], *, warnings: bool = True) -> str:
    """One row per target, then each diagnosis with its fix; `warnings`: the targets' config warnings too."""
    header = ("TARGET", "STATUS", "HTTP", "ADDR", "DNS", "CONNECT", "TLS", "TTFB", "TOTAL", "DIAGNOSIS")
    rows = [header]
    for r in results:
        p = r.phases_ms
        ok = sum(1 for a in r.addresses if a.status in (Status.UP, Status.DEGRADED))  # unknown is not ok
        rows.append(
            (
                r.target,
                str(r.status).upper(),
                str(r.http_status or "-"),
                f"{ok}/{len(r.addresses)}",
                _ms(p.get("dns")),
                _ms(p.get("connect")),
                _ms(p.get("tls")),
                _ms(p.get("ttfb")),
                _ms(p.get("total")),
                r.diagnosis.code if r.diagnosis else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        if r.diagnosis:
            lines.append(f"\n{r.target}: {r.diagnosis.message}\n  fix: {r.diagnosis.remedy}")
        for w in r.warnings if warnings else ():
            lines.append(f"{r.target}: warning: {w}")
    return "\n".join(lines)
