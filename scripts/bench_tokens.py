"""Benchmark (not a test): a probe round's time with kms:/eas: credentials cached versus fetched.

Run: .venv/bin/python scripts/bench_tokens.py [--targets 10] [--rounds 7] [--cp-latency-ms 0]
The control plane is tests/fakecloud.py (the real SDK clients, answered in-process by `responses`;
--cp-latency-ms adds a VPC endpoint's round trip); the data plane is the simulator in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakecloud import FakeCloud  # noqa: E402

from shared.config.load import parse_config  # noqa: E402
from shared.credentials.provider import TokenProvider  # noqa: E402
from shared.probe.engine import Prober  # noqa: E402

REGION = "ap-southeast-1"
PL = "ep-bench.dashscope.ap-southeast-1.privatelink.aliyuncs.com"


def start_simulator(n: int) -> tuple[subprocess.Popen, int]:
    keys = {f"sk-bench-{i:04d}": REGION for i in range(n)}
    services = {f"llm{i}": f"eas-bench-{i:04d}" for i in range(n)}
    code = (
        "import sys; from shared.local.simulator import Simulator; "
        f"s = Simulator(hosts=('127.0.0.2',), api_keys={keys!r}, eas_services={services!r}).start(); "
        "print(s.port, flush=True); sys.stdin.read(); s.stop()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    return proc, int(proc.stdout.readline())


def timed(prober: Prober) -> float:
    start = time.perf_counter()
    results = asyncio.run(prober.run_round())
    elapsed = (time.perf_counter() - start) * 1000
    bad = [r.target for r in results if r.status != "up"]
    assert not bad, bad
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=10, help="half kms:, half eas: (each its own reference)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cp-latency-ms", type=float, default=0.0)
    args = ap.parse_args()
    half = args.targets // 2
    proc, port = start_simulator(half)
    try:
        with FakeCloud() as cloud:
            cloud.latency_s = args.cp_latency_ms / 1000
            eas_host = f"{cloud.account_id}.vpc.{REGION}.pai-eas.aliyuncs.com"
            targets = []
            for i in range(half):
                cloud.add_kms_secret(f"key{i}", f"sk-bench-{i:04d}")
                cloud.add_eas_service(f"llm{i}", token=f"eas-bench-{i:04d}")
                targets.append({"name": f"ds{i}", "kind": "dashscope", "endpoint": f"http://{PL}",
                                "credential": f"kms:key{i}"})
                targets.append({"name": f"eas{i}", "kind": "eas", "credential": f"eas:{REGION}/llm{i}"})
            config = parse_config({
                "region": REGION,
                "defaults": {"timeout": "5s", "retries": 0},
                "resolve": {PL: f"127.0.0.2:{port}", eas_host: f"127.0.0.2:{port}"},
                "targets": targets,
            })
            tokens = TokenProvider(cloud.env(), config.cloud)
            prober = Prober(config, tokens)
            cold = timed(prober)  # first round of the process: SDK imports, clients, fetches
            fresh, cached = [], []
            for _ in range(args.rounds):
                cached.append(timed(prober))
                for t in config.targets:
                    tokens.invalidate(t.credential)
                fresh.append(timed(prober))
            calls = cloud.count()
        print(f"{args.targets} targets ({half} kms:, {half} eas:), control-plane latency {args.cp_latency_ms:g} ms, "
              f"median of {args.rounds}:")
        print(f"  first round in the process (SDK import + fetch): {cold:.1f} ms")
        print(f"  fresh tokens (fetch every reference):           {statistics.median(fresh):.1f} ms")
        print(f"  cached tokens:                                  {statistics.median(cached):.1f} ms")
        print(f"  control-plane calls: {calls} (= {args.targets} x {args.rounds + 1} fresh rounds)")
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
