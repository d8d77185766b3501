"""Benchmark (not a test): round time vs target count, ttfb accuracy, handler import time.

Run: make bench  (or .venv/bin/python scripts/bench_probe.py). The simulator runs in a child
process so the figures are not skewed by sharing the prober's interpreter.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.config.load import parse_config  # noqa: E402
from shared.probe.engine import Prober  # noqa: E402

HOST = "ep-bench.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
KEY = "sk-bench-key-0000"


def start_simulator() -> tuple[subprocess.Popen, int]:
    code = (
        "import sys; from shared.local.simulator import Simulator; "
        f"s = Simulator(hosts=('127.0.0.2',), api_keys={{'{KEY}': 'ap-southeast-1'}}).start(); "
        "print(s.port, flush=True); sys.stdin.read(); s.stop()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return proc, int(proc.stdout.readline())


def set_latency(port: int, ms: int) -> None:
    admin = f"http://127.0.0.2:{port}/_sim/faults"
    httpx.delete(admin)
    if ms:
        httpx.post(admin, json={"route": "/compatible-mode/v1/models", "latency_ms": ms}).raise_for_status()


def config(port: int, n: int):
    import os

    os.environ["BENCH_KEY"] = KEY
    return parse_config(
        {
            "defaults": {"timeout": "5s", "retries": 0},
            "resolve": {HOST: f"127.0.0.2:{port}"},
            "targets": [
                {"name": f"t{i}", "kind": "dashscope", "endpoint": f"http://{HOST}", "credential": "env:BENCH_KEY"}
                for i in range(n)
            ],
        }
    )


def round_time(port: int, n: int, repeat: int = 3) -> tuple[float, str]:
    cfg = config(port, n)
    prober = Prober(cfg)
    asyncio.run(prober.run_round())  # warm-up: first-use imports, SSL contexts
    times, statuses = [], set()
    for _ in range(repeat):
        start = time.perf_counter()
        results = asyncio.run(prober.run_round())
        times.append((time.perf_counter() - start) * 1000)
        statuses |= {r.status for r in results}
    return statistics.median(times), ",".join(sorted(statuses))


def ttfb_error(port: int, delay: int, repeat: int = 5) -> tuple[float, float]:
    set_latency(port, delay)
    prober = Prober(config(port, 1))
    asyncio.run(prober.run_round())
    errors = []
    for _ in range(repeat):
        r = asyncio.run(prober.run_round())[0]
        errors.append(r.phases_ms["ttfb"] - delay)
    return statistics.median(errors), max(errors)


def import_time(repeat: int = 7) -> tuple[float, float]:
    code = (
        "import sys, time; sys.path.insert(0, 'functions/probe'); t = time.perf_counter(); import index; "
        "print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    return statistics.median(runs), min(runs)


def main() -> None:
    proc, port = start_simulator()
    figures: dict[str, object] = {}
    try:
        set_latency(port, 200)
        print("round time, every target answering after 200 ms (median of 3, concurrency default):")
        for n in (1, 10, 100):
            ms, statuses = round_time(port, n)
            figures[f"round_ms_{n}"] = round(ms, 1)
            print(f"  {n:>4} targets: {ms:7.1f} ms   (statuses: {statuses})")
        print("reported ttfb minus injected server delay (median / worst of 5):")
        for delay in (50, 200, 1000):
            med, worst = ttfb_error(port, delay)
            figures[f"ttfb_error_ms_{delay}"] = round(med, 2)
            print(f"  {delay:>5} ms delay: {med:+6.2f} ms / {worst:+6.2f} ms")
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    med, best = import_time()
    figures["import_ms"] = round(med, 1)
    print(f"import time of functions/probe/index.py: {med:.1f} ms median, {best:.1f} ms best (of 7 cold processes)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
