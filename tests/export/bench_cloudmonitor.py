"""CloudMonitor export cost per round against the fake control plane: calls and ms at 100 and 1000 targets.

    .venv/bin/python -m tests.export.bench_cloudmonitor

Each call goes through the real SDK (signing, request building, response parsing) into tests/fakecloud.py,
which answers in-process; `--latency-ms` adds a per-call round trip such as a VPC endpoint's.
"""

from __future__ import annotations

import argparse
import statistics
import time

from shared import logs
from shared.export.cloudmonitor import export
from shared.export.settings import CloudMonitorSettings
from tests.alert_fixtures import at, result
from tests.fakecloud import FakeCloud


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logs.configure(stream=open("/dev/null", "w"))  # noqa: SIM115 - the export's log lines are not the figures
    settings = CloudMonitorSettings(region="ap-southeast-1", deadline_s=60.0)
    with FakeCloud() as cloud:
        cloud.latency_s = args.latency_ms / 1000
        export(settings, [result("warm", "up", at(0))], environ=cloud.env())  # SDK import and client: not counted
        for n in (100, 1000):
            results = [result(f"t{i:04d}", "up", at(0)) for i in range(n)]
            times, calls = [], 0
            for _ in range(args.rounds):
                start = time.perf_counter()
                summary = export(settings, results, environ=cloud.env())
                times.append((time.perf_counter() - start) * 1000)
                calls = summary["calls"]
                assert summary["sent"] == 4 * n and "error" not in summary, summary
            print(f"{n:5d} targets: {4 * n} entries, {calls} calls/round, "
                  f"{statistics.median(times):.0f} ms/round (median of {args.rounds}), "
                  f"{statistics.median(times) / calls:.2f} ms/call; latency {args.latency_ms:g} ms/call")


if __name__ == "__main__":
    main()
