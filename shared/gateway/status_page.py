"""GET /status: the probe history as one server-rendered HTML page that needs nothing from outside.

It must work inside a VPC with no internet, so there are no external assets: CSS inline, each
latency sparkline an inline SVG, no JavaScript (a meta refresh reloads it every 30 s). Every string
on it came from config or from upstreams' answers (names, URLs, error text), so each one is redacted
(a known secret masked) and HTML-escaped, and the response's Content-Security-Policy forbids any load
at all, an injected one included. Targets are grouped by kind, in config order.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.history.slots import day_slots
from shared.verdict.result import epoch_of
from shared.verdict.status import Status

if TYPE_CHECKING:
    from shared.gateway.history_cache import HistorySnapshot
    from shared.history.columns import Series
    from shared.history.view import TargetHistory

REFRESH_S = 30
CONTENT_TYPE = "text/html; charset=utf-8"
# No load of any kind (scripts, fonts, frames, connections); the inline <style> and data: icon only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
HEADERS = [
    (b"content-type", CONTENT_TYPE.encode()),
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
KIND_TITLES = {"dashscope": "Model Studio (DashScope)", "eas": "PAI-EAS"}
# Sparkline geometry (SVG user units): at most one latency point (of history.slots.SLOTS) per 2 units across.
SPARK_W, SPARK_H, SPARK_MARK_H = 240, 44, 5
_SHOWN_ORDER = (Status.DOWN.value, Status.DEGRADED.value, Status.UNKNOWN.value, Status.UP.value)  # the summary's
_NO_DATA = "none"  # the status class of a target without a recorded round

_CSS = """
:root{--up:#1a7f37;--degraded:#bf6a02;--down:#cf222e;--unknown:#6e7781;--none:#8c959f;--fg:#1f2328;--muted:#59636e;
--line:#d0d7de;--bg:#f6f8fa;--card:#fff}
*{box-sizing:border-box}
body{margin:0;padding:12px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"PingFang SC","Microsoft YaHei",
sans-serif;color:var(--fg);background:var(--bg)}
header,section{max-width:1100px;margin:0 auto}
h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:18px 0 8px}h3{font-size:15px;margin:0;word-break:break-all}
.meta,.url,.since,.figures dt,.spark-label{color:var(--muted);font-size:12px}
.summary b{margin-right:10px}
.target{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--none);border-radius:6px;
padding:10px 12px;margin:0 0 10px}
.head{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px}
.url{margin:2px 0;word-break:break-all}
.badge{color:#fff;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;background:var(--none)}
.diag{margin:6px 0;padding:6px 8px;background:var(--bg);border-radius:4px;overflow-wrap:anywhere}
.diag code{font-weight:600}.remedy{display:block;color:var(--muted)}
.warn{margin:4px 0;font-size:12px;color:var(--degraded);overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;align-items:center;gap:8px 18px;margin-top:6px}
.zones{display:flex;flex-wrap:wrap;gap:4px}
.zone{border:1px solid var(--none);border-radius:4px;padding:0 6px;font:12px ui-monospace,monospace}
.zone::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:4px;
background:var(--none)}
.spark{display:block;width:240px;max-width:100%;height:44px;background:var(--bg);border-radius:3px}
.spark polyline{fill:none;stroke:#0969da;stroke-width:1.5;stroke-linejoin:round}
.spark circle{fill:#0969da}.spark .m-down{fill:var(--down)}.spark .m-degraded{fill:var(--degraded)}
.spark .m-unknown{fill:var(--unknown)}
.figures{display:grid;grid-template-columns:repeat(4,auto);gap:0 14px;margin:0}
.figures dt{grid-row:1}.figures dd{grid-row:2;margin:0;font-weight:600}
.s-up{--c:var(--up)}.s-degraded{--c:var(--degraded)}.s-down{--c:var(--down)}.s-unknown{--c:var(--unknown)}
.s-none{--c:var(--none)}
.target.s-up,.target.s-degraded,.target.s-down,.target.s-unknown{border-left-color:var(--c)}
.badge[class*=" s-"],.zone[class*=" s-"]::before{background:var(--c)}.zone[class*=" s-"]{border-color:var(--c)}
.summary b[class*="s-"]{color:var(--c)}
@media (max-width:600px){body{padding:6px}.target{padding:8px}.row{gap:6px 12px}}
"""


def render(snapshot: HistorySnapshot, allowed: Callable[[str], bool], *, now: float | None = None) -> bytes:
    """The page for the targets of `snapshot` that `allowed` lets the caller see."""
    now = time.time() if now is None else now
    view = snapshot.view
    targets = [th for th in view.targets if allowed(th.target)]
    counts: dict[str, int] = {}
    for th in targets:
        status = th.status or _NO_DATA
        counts[status] = counts.get(status, 0) + 1
    worst = ", ".join(f"{counts[s]} {s}" for s in (Status.DOWN.value, Status.DEGRADED.value) if counts.get(s))
    parts = [
        _head(f"vpcprobe status — {worst}" if worst else "vpcprobe status"),
        "<header><h1>vpcprobe status</h1>",
        _summary(len(targets), counts),
        f'<p class="meta">last round {_when(view.round_at)} · page generated {_when(view.generated_at)}'
        f" · refreshes every {REFRESH_S} s</p></header>",
    ]
    if not targets:
        parts.append('<section><p class="meta">No target is recorded yet (or this key may see none): the page '
                     "fills in after the probe function's next round.</p></section>")
    for kind, members in _by_kind(targets):
        title = KIND_TITLES.get(kind, kind)
        parts.append(f'<section class="kind" id="kind-{_e(kind)}"><h2>{_e(title)}</h2>')
        parts.extend(_target(th, now) for th in members)
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def render_unavailable(message: str) -> bytes:
    """The page when the history cannot be read (answered with 503): what failed, refreshing until it reads."""
    return "".join((
        _head("vpcprobe status — unavailable"),
        "<header><h1>vpcprobe status</h1>",
        f'<div class="diag"><code>history_unavailable</code>: {_e(message)}'
        '<span class="remedy">The gateway reads the history from the probe function\'s state store '
        "(state: in vpcprobe.yaml): both functions must use the same NAS directory or OSS prefix.</span></div>",
        "</header></body></html>\n",
    )).encode()


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<link rel="icon" href="data:,">'  # a browser asks for /favicon.ico otherwise: a 404 in its console
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
    )


def _summary(total: int, counts: dict[str, int]) -> str:
    shown = [f'<b class="s-{s}">{counts[s]} {_status_text(s)}</b>' for s in (*_SHOWN_ORDER, _NO_DATA) if counts.get(s)]
    return f'<p class="summary">{total} {"target" if total == 1 else "targets"}: {"".join(shown)}</p>'


def _status_text(status: str) -> str:
    return "no data" if status == _NO_DATA else status


def _by_kind(targets: Sequence[TargetHistory]) -> list[tuple[str, list[TargetHistory]]]:
    """Targets grouped by kind: DashScope, then EAS, then any other kind by name; config order inside each."""
    groups: dict[str, list[TargetHistory]] = {}
    for th in targets:
        groups.setdefault(th.kind, []).append(th)
    known = [k for k in KIND_TITLES if k in groups]
    return [(k, groups[k]) for k in known + sorted(set(groups) - set(known))]


def _target(th: TargetHistory, now: float) -> str:
    latest: dict[str, Any] = th.latest or {}
    status = th.status or _NO_DATA
    cls = f"s-{_e(status)}"
    since = f"since {_when(th.since)} ({_ago(th.since, now)})" if th.since else ""
    checked = f" · checked {_when(latest.get('checked_at'))}" if latest.get("checked_at") else ""
    out = [
        f'<article class="target {cls}" data-target="{_e(th.target)}" data-status="{_e(status)}">',
        f'<div class="head"><span class="badge {cls}">{_e(_status_text(status))}</span>'
        f'<h3>{_e(th.target)}</h3><span class="since">{since}{checked}</span></div>',
        f'<p class="url">{_e(th.url)}</p>',
    ]
    diagnosis = latest.get("diagnosis")
    if isinstance(diagnosis, dict) and diagnosis.get("code"):
        remedy = diagnosis.get("remedy")
        out.append(
            f'<div class="diag"><code>{_e(diagnosis["code"])}</code>: {_e(diagnosis.get("message"))}'
            + (f'<span class="remedy">Fix: {_e(remedy)}</span>' if remedy else "")
            + "</div>"
        )
    out.extend(f'<p class="warn">{_e(w)}</p>' for w in latest.get("warnings") or ())
    out.append('<div class="row">')
    out.append(_zones(latest.get("addresses") or ()))
    out.append(_sparkline(th.points, now))
    out.append(_figures(th))
    out.append("</div></article>")
    return "".join(out)


def _zones(addresses: Iterable[Any]) -> str:
    """One mark per address (one endpoint ENI per zone), with its ip and status."""
    marks = []
    for a in addresses:
        if not isinstance(a, dict):
            continue
        status = str(a.get("status"))
        detail = f"{a.get('ip')}:{a.get('port')} {status}" + (f" — {a['error']}" if a.get("error") else "")
        marks.append(f'<span class="zone s-{_e(status)}" title="{_e(detail)}">{_e(a.get("ip"))}</span>')
    return f'<div class="zones" aria-label="zones">{"".join(marks)}</div>' if marks else ""


def _figures(th: TargetHistory) -> str:
    cells = [(f"up {w}", _percent(th.uptime.get(w))) for w in ("24h", "7d", "30d")]
    cells.append(("cert", "—" if th.tls_days_left is None else f"{th.tls_days_left} d"))
    return '<dl class="figures">' + "".join(f"<dt>{dt}</dt><dd>{dd}</dd>" for dt, dd in cells) + "</dl>"


def _sparkline(points: Series, now: float) -> str:
    """Total latency over the last 24 h (or since the first round, when younger) as an inline SVG: a line
    broken where rounds are missing or failed, and a colored mark under each down, degraded or unknown slot
    (history/slots.py: at most 120 slots, each the slowest latency and worst status of its rounds)."""
    day = day_slots(points, now)
    if day is None:
        return '<div><span class="spark-label">no rounds in the last 24 h</span></div>'
    span = day.end - day.start
    top = max((s.total_ms for s in day.slots if s.total_ms is not None), default=0.0) or 1.0
    y_scale = (SPARK_H - SPARK_MARK_H - 4) / top
    x_scale = (SPARK_W - 2) / span
    mark_y = SPARK_H - SPARK_MARK_H

    lines: list[list[str]] = []
    marks = []
    previous: float | None = None
    for at, ms, status in day.slots:
        x = round((at - day.start) * x_scale + 1, 1)
        if ms is None or previous is None or at - previous > day.gap_s:
            lines.append([])
        if ms is not None:
            lines[-1].append(f"{x},{round(2 + (top - ms) * y_scale, 1)}")
        if status is not Status.UP:
            marks.append(f'<rect class="m-{status.value}" x="{round(x - 1, 1)}" y="{mark_y}" '
                         f'width="2" height="{SPARK_MARK_H}"/>')
        previous = at
    shapes = []
    for line in lines:
        if len(line) > 1:
            shapes.append(f'<polyline points="{" ".join(line)}"/>')
        elif line:
            cx, cy = line[0].split(",")
            shapes.append(f'<circle cx="{cx}" cy="{cy}" r="1.5"/>')
    label = f"total latency, last {_duration(span)}, max {top:.0f} ms"
    return (
        f'<div><svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" preserveAspectRatio="none" role="img" '
        f'aria-label="{label}">{"".join(shapes)}{"".join(marks)}</svg>'
        f'<span class="spark-label">{label}</span></div>'
    )


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    return "100%" if value >= 100 else f"{min(value, 99.99):.2f}%"



def _when(text: Any) -> str:
    """An RFC 3339 time as 'YYYY-MM-DD HH:MM:SS UTC' (escaped as it came when it is not one)."""
    epoch = epoch_of(text)
    if epoch is None:
        return "—" if text is None else _e(text)
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(text: str, now: float) -> str:
    epoch = epoch_of(text)
    return "?" if epoch is None else f"for {_duration(max(0.0, now - epoch))}"


def _duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def _e(value: Any) -> str:
    """Any value as page text: known secrets masked, then HTML-escaped (quotes too: it goes in attributes)."""
    return html.escape(logs.redact_text(str(value)), quote=True)
