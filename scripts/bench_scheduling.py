"""Benchmark (not a test): how `concurrency` and the start pacer shape a round of N targets x M addresses.

The pacer's figure is starts per event-loop pass (0 = no pacing).

Run: .venv/bin/python scripts/bench_scheduling.py [--targets 1000] [--addresses 2] [--delay-ms 200]
     [--concurrency 100,250,500,1000] [--per-pass 0,1,8,32] [--repeat 3] [--loop auto|asyncio]

A minimal asyncio protocol server answers every request after --delay-ms, in a child
process so it does not share the prober's interpreter. Every configuration runs in the same run, in
turn, --repeat times; the figures are ratios (round time / one target's round time), so they compare
side by side on a shared machine. Prints, per configuration: round time median, its ratio to one target,
prober CPU per target, ttfb error (reported ttfb - delay) median and p99, and the count not `up`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.config.load import parse_config  # noqa: E402
from shared.probe import engine, loop, pacing  # noqa: E402

HOST = "ep-bench.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
IPS = ("127.0.0.21", "127.0.0.22")

# The cheapest honest server: a protocol that answers `delay` after the request head, then closes.
SERVER = """
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n{{}}"

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.seen = transport, b""
    def data_received(self, data):
        self.seen += data
        if b"\\r\\n\\r\\n" in self.seen:
            asyncio.get_running_loop().call_later({delay!r}, self.answer)
    def answer(self):
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)
            self.transport.close()

async def main():
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Answer, ip, 0, backlog=4096) for ip in {ips!r}[:1]]
    port = servers[0].sockets[0].getsockname()[1]
    servers += [await loop.create_server(Answer, ip, port, backlog=4096) for ip in {ips!r}[1:]]
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def start_server(addresses: int, delay_s: float) -> tuple[subprocess.Popen, int]:
    code = SERVER.format(root=str(ROOT), ips=IPS[:addresses], delay=delay_s)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def make_config(port: int, n: int, addresses: int, concurrency: int):
    return parse_config(
        {
            "defaults": {"timeout": "10s", "retries": 0},
            "resolve": {HOST: [f"{ip}:{port}" for ip in IPS[:addresses]]},
            "concurrency": concurrency,
            "targets": [{"name": f"t{i}", "kind": "dashscope", "endpoint": f"http://{HOST}"} for i in range(n)],
        }
    )


def one_round(config, per_pass: int, which: str | None = None) -> tuple[float, float, list]:
    prober = engine.Prober(config)
    prober._pacer = pacing.StartPacer(per_pass)
    cpu, wall = time.process_time(), time.perf_counter()
    results = loop.run(prober.run_round(), which)  # the probe function's loop (uvloop when installed)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=2)
    ap.add_argument("--delay-ms", type=float, default=200)
    ap.add_argument("--concurrency", default="100,250,500,1000")
    ap.add_argument("--per-pass", default="0,1,8,32")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop", default="auto", help="auto (uvloop when installed) or asyncio")
    args = ap.parse_args()
    proc, port = start_server(args.addresses, args.delay_ms / 1000)
    try:
        one = make_config(port, 1, args.addresses, 1)
        one_round(one, 0, args.loop)  # warm: imports, first sockets
        singles = [one_round(one, 0, args.loop)[0] for _ in range(5)]
        base = statistics.median(singles)
        print(f"loop: {loop.chosen(args.loop)}; one target x {args.addresses} addresses: {base:.1f} ms (median of 5)")
        print(f"N={args.targets} x {args.addresses} addresses, delay {args.delay_ms:g} ms, {args.repeat} rounds each")
        print("concurrency   per_pass  round_ms  x_one  cpu_ms/target  ttfb_err_med  ttfb_err_p99  not_up")
        combos = [(int(c), int(k)) for c in args.concurrency.split(",") for k in args.per_pass.split(",")]
        figures: dict[tuple, list] = {combo: [] for combo in combos}
        for _ in range(args.repeat):
            for concurrency, per_pass in combos:  # interleaved, so load drifts hit every combination alike
                config = make_config(port, args.targets, args.addresses, concurrency)
                figures[(concurrency, per_pass)].append(one_round(config, per_pass, args.loop))
        for (concurrency, per_pass), runs in figures.items():
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs) / args.targets
            errors = sorted(
                a.phases_ms["ttfb"] - args.delay_ms
                for r in runs
                for res in r[2]
                for a in res.addresses
                if a.phases_ms.get("ttfb") is not None
            )
            not_up = sum(res.status != "up" for r in runs for res in r[2])
            p99 = errors[int(len(errors) * 0.99)] if errors else float("nan")
            print(
                f"{concurrency:11d} {per_pass:10d} {wall:9.0f} {wall / base:6.2f} {cpu:14.2f}"
                f" {statistics.median(errors) if errors else float('nan'):13.2f} {p99:13.2f} {not_up:7d}"
            )
        print(f"peak RSS of the prober: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        proc.stdin.close()
        proc.wait(10)


if __name__ == "__main__":
    main()
