"""What GET /status, /status.json and /metrics cost the gateway: body size and server render time.

A day of minutely rounds per target (1440 points, what the history view holds at full resolution),
each target's latest result with two zone addresses and a diagnosis, at 100 and 1000 targets. Only
the rendering is timed (the view is built beforehand; reading it is the history reader's cost, cached
for state_ttl); the median of --repeat runs, in one process, so compare the rows with each other.
/status.json is timed as the route renders it: the default summary, and `?points=full`.

    .venv/bin/python scripts/bench_status.py [--targets 100,1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.gateway import metrics, status_page  # noqa: E402
from shared.gateway.history_cache import HistorySnapshot  # noqa: E402
from shared.history.view import HistoryView, Hours, Point, Series, TargetHistory, rfc3339  # noqa: E402
from shared.verdict.codes import Code  # noqa: E402
from shared.verdict.diagnose import diagnose  # noqa: E402
from shared.verdict.result import AddressResult, ProbeResult  # noqa: E402
from shared.verdict.status import Status  # noqa: E402

ROUNDS = 1440  # a day of minutely rounds


def build_view(n: int, now: float) -> HistoryView:
    targets = []
    for i in range(n):
        name, kind = f"target-{i:04d}", "dashscope" if i % 3 else "eas"
        url = f"http://ep-{i:04d}.dashscope.ap-southeast-1.privatelink.aliyuncs.com/compatible-mode/v1/models"
        down_from = (i * 37) % ROUNDS
        points = Series.of(
            Point(now - (ROUNDS - 1 - j) * 60.0, Status.DOWN if down_from <= j < down_from + 5 else Status.UP,
                  20.0 + (i + j) % 40, 10.0, None)
            for j in range(ROUNDS)
        )
        addresses = [AddressResult("10.0.1.10", 80, True, Status.UP, {"total": 21.0}, 200, attempts=1),
                     AddressResult("10.0.2.10", 80, True, Status.DOWN, {"total": 1.0}, None, attempts=2,
                                   diagnosis=diagnose(Code.CONNECT_REFUSED, "10.0.2.10:80: refused"))]
        latest = ProbeResult(name, kind, url, Status.DEGRADED, 200, {"total": 21.0}, addresses,
                             diagnosis=diagnose(Code.ZONES_DOWN, "1 of 2 down (10.0.2.10: connect_refused)"))
        targets.append(TargetHistory(name, kind, url, latest.to_dict(), rfc3339(now - 300), points, Hours(),
                                     {"24h": 99.65, "7d": 99.9, "30d": 99.97}, None))
    return HistoryView(rfc3339(now), rfc3339(now), tuple(targets))


def compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def timed(fn, repeat: int) -> tuple[bytes, float]:
    times, out = [], b""
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    now = time.time()
    print("| targets | route | body | gzip | render (median) |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.targets.split(",")):
        snapshot = HistorySnapshot(build_view(n, now), {f"target-{i:04d}": "firing" for i in range(n)})
        routes = {
            "/status": lambda s=snapshot: status_page.render(s, lambda name: True, now=now),
            "/status.json": lambda s=snapshot: compact(s.view.summary_dict(now)),
            "/status.json?points=full": lambda s=snapshot: compact(s.view.full_dict()),
            "/metrics": lambda s=snapshot: metrics.render(s, lambda name: True),
        }
        for route, fn in routes.items():
            body, ms = timed(fn, args.repeat)
            print(f"| {n} | {route} | {len(body) / 1024:,.0f} KiB | {len(gzip.compress(body)) / 1024:,.0f} KiB "
                  f"| {ms:,.0f} ms |")


if __name__ == "__main__":
    main()
