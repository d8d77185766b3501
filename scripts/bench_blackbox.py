"""Benchmark (not a test): vpcprobe side by side with Prometheus blackbox_exporter, one loopback server, one run.

Run: make bench  (or .venv/bin/python scripts/bench_blackbox.py [--quick]). Needs blackbox_exporter
(Debian/Ubuntu: `apt-get install -y prometheus-blackbox-exporter`; or --blackbox PATH) and, for the
CPU-starved run, `taskset`. The exporter runs as this script's own child on a loopback port with this
script's own config file, never the system service.

Prints, each figure for both probers where it applies:
- ttfb error (reported ttfb − injected server delay; blackbox: its `processing` phase) and the connect
  phase minus a bare connect(), for delays of 0/50/200/1000 ms;
- round time ÷ one target's, N = 1, 10, 100, 1000 targets, one and two addresses each, every answer
  after 200 ms; CPU per target; peak RSS;
- a CPU-starved run: the prober pinned to one core shared with a busy loop, the count of false `down`
  (the server answers everything: any `down` is false) and of `unknown`;
- the first round in a fresh process vs a warm one.

The upstream is an asyncio raw-socket HTTP/1.1 server in a child process (pinned to the other core
when possible); `/delay/<ms>` answers after that many ms. vpcprobe rounds run in child processes too,
so CPU time and peak RSS are the prober's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "ep-bench.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
ZONES = ("127.0.0.2", "127.0.0.3")
BODY = b'{"object": "list", "data": [{"id": "qwen-plus"}]}'
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      valid_status_codes: [200]
"""


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the upstream: child process ---------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """GET /delay/<ms>: 200 with a small JSON body after <ms>; one request per connection."""

    answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        line = self.buf.split(b"\r\n", 1)[0].split()
        path = line[1].decode() if len(line) > 1 else "/"
        delay = int(path.rsplit("/", 1)[1]) / 1000 if path.startswith("/delay/") else 0.0
        self.buf = b""
        asyncio.get_running_loop().call_later(delay, self._answer)

    def _answer(self) -> None:
        if self.transport.is_closing():
            return
        _Upstream.answered += 1
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + BODY)
        self.transport.close()


def serve_upstream() -> None:
    _raise_nofile()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first = await loop.create_server(_Upstream, ZONES[0], 0, backlog=8192)
        port = first.sockets[0].getsockname()[1]
        await loop.create_server(_Upstream, ZONES[1], port, backlog=8192)
        print(port, flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        print(_Upstream.answered, flush=True)

    asyncio.run(main())


# --- vpcprobe rounds: child process ------------------------------------------------------------


def _config(port: int, n: int, addresses: int, delay_ms: int, concurrency: int | None):
    from shared.config.load import parse_config

    data: dict = {
        "defaults": {"timeout": "5s", "retries": 0},
        "resolve": {HOST: [f"{ip}:{port}" for ip in ZONES[:addresses]]},
        "targets": [
            {
                "name": f"t{i}",
                "kind": "dashscope",
                "endpoint": f"http://{HOST}",
                "probe": {"mode": "http", "path": f"/delay/{delay_ms}"},
            }
            for i in range(n)
        ],
    }
    if concurrency:
        data["concurrency"] = concurrency
    return parse_config(data)


def vpcprobe_rounds(args: argparse.Namespace) -> None:
    """Child: `repeat` rounds after one warm-up; prints JSON figures."""
    _raise_nofile()
    t0 = time.perf_counter()
    from shared.probe import loop
    from shared.probe.engine import Prober

    import_ms = (time.perf_counter() - t0) * 1000
    prober = Prober(_config(args.port, args.n, args.addresses, args.delay, args.concurrency))
    warm_up_ms = None
    if args.warm_up:  # what the probe function's Initializer hook does once per instance (probe/warmup.py)
        from shared.probe.warmup import warm_up

        warm_up_ms = warm_up(prober.config)["ms"]
    first_start = time.perf_counter()
    first = loop.run(prober.run_round())  # as the probe function runs it
    first_ms = (time.perf_counter() - first_start) * 1000
    rounds, phases, statuses, codes, lags = [], [], {}, {}, []
    cpu0 = time.process_time()
    for _ in range(args.repeat):
        start = time.perf_counter()
        results = loop.run(prober.run_round())
        rounds.append((time.perf_counter() - start) * 1000)
        lags.append(prober.last_lag.max_ms if getattr(prober, "last_lag", None) else None)
        for r in results:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            if r.diagnosis:
                codes[str(r.diagnosis.code)] = codes.get(str(r.diagnosis.code), 0) + 1
            phases.append({k: r.phases_ms.get(k) for k in ("connect", "ttfb", "total")})
    cpu_ms = (time.process_time() - cpu0) * 1000
    for r in first:
        statuses["first:" + str(r.status)] = statuses.get("first:" + str(r.status), 0) + 1
    print(
        json.dumps(
            {
                "round_ms": rounds,
                "first_ms": first_ms,
                "import_ms": import_ms,
                "warm_up_ms": warm_up_ms,
                "cpu_ms_per_target": cpu_ms / (args.repeat * args.n),
                "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "phases": phases if args.n == 1 else [],
                "statuses": statuses,
                "codes": codes,
                "lag_max_ms": lags,
                "concurrency": prober.config.concurrency,
                "loop": loop.chosen(),
            }
        )
    )


def run_vpcprobe(
    port: int,
    n: int,
    addresses: int,
    delay: int,
    repeat: int,
    *,
    pin: str | None = None,
    concurrency: int | None = None,
    warm_up: bool = False,
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "vpcprobe",
        "--port",
        str(port),
        "--n",
        str(n),
        "--addresses",
        str(addresses),
        "--delay",
        str(delay),
        "--repeat",
        str(repeat),
    ]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    if warm_up:
        cmd += ["--warm-up"]
    if pin is not None:
        cmd = ["taskset", "-c", pin] + cmd
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- blackbox_exporter: driven from this process -----------------------------------------------


class Blackbox:
    def __init__(self, binary: str) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="bench-blackbox-")
        cfg = Path(self.dir.name) / "blackbox.yml"
        cfg.write_text(BLACKBOX_CONFIG)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.025)  # waiting for the exporter to listen, not for a result
        raise SystemExit("blackbox_exporter did not start listening")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.dir.cleanup()

    def cpu_ms(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def peak_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def probe_path(self, target_url: str) -> str:
        from urllib.parse import quote

        return f"/probe?module=http_2xx&target={quote(target_url, safe='')}"

    def probe_one(self, target_url: str) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.probe_path(target_url)}", timeout=30) as r:
            return _metrics(r.read().decode())

    async def _fetch(self, path: str) -> dict[str, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        # HTTP/1.0: the whole body, never chunked, then the close
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return _metrics(data.split(b"\r\n\r\n", 1)[1].decode(errors="replace"))

    def round(self, urls: list[str]) -> tuple[float, list[dict[str, float]]]:
        """Every probe at once, as Prometheus scrapes N targets; wall time until the last answers."""

        async def main() -> tuple[float, list[dict[str, float]]]:
            paths = [self.probe_path(u) for u in urls]
            start = time.perf_counter()
            out = await asyncio.gather(*(self._fetch(p) for p in paths))
            return (time.perf_counter() - start) * 1000, list(out)

        return asyncio.run(main())


def _metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("probe_http_duration_seconds{"):
            phase = name.split('phase="', 1)[1].split('"', 1)[0]
            out[phase] = float(value) * 1000
        elif name in ("probe_success", "probe_duration_seconds"):
            out[name] = float(value)
    return out


# --- the run -----------------------------------------------------------------------------------


def bare_connect_ms(port: int, repeat: int = 50, idle_s: float = 0.0) -> float:
    """A blocking connect() in a tight loop, or each after `idle_s` of sleep: a core that idled (as it does
    while a probe waits for a delayed answer) connects several times slower than a hot one."""
    times = []
    for _ in range(repeat):
        if idle_s:
            time.sleep(idle_s)
        s = socket.socket()
        start = time.perf_counter()
        s.connect((ZONES[0], port))
        times.append((time.perf_counter() - start) * 1000)
        s.close()
    return statistics.median(times)


def busy_loop(cpu: str) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", cpu, sys.executable, "-c", "while True: pass"])


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--blackbox", default=shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    )
    p.add_argument("--quick", action="store_true", help="fewer repeats, N up to 100 (a smoke run)")
    args = p.parse_args()
    if not args.blackbox:
        raise SystemExit(
            "blackbox_exporter not found: apt-get install -y prometheus-blackbox-exporter (Debian/Ubuntu), "
            "or pass --blackbox PATH to a blackbox_exporter binary"
        )
    _raise_nofile()
    cores = os.cpu_count() or 1
    taskset = shutil.which("taskset") is not None and cores >= 2
    server_cmd = [sys.executable, __file__, "--child", "server"]
    if taskset:
        server_cmd = ["taskset", "-c", "1"] + server_cmd
    server = subprocess.Popen(server_cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    bb = Blackbox(args.blackbox)
    figures: dict[str, object] = {}
    repeat = 3 if args.quick else 11
    try:
        version = subprocess.run([args.blackbox, "--version"], capture_output=True, text=True).stderr.split("\n")[0]
        print(f"vpcprobe vs {version or args.blackbox}; upstream on {ZONES[0]}/{ZONES[1]}:{port}; {cores} cores")

        bare = bare_connect_ms(port)
        figures["bare_connect_ms"] = round(bare, 3)
        print(f"\nbare connect() on loopback: {bare:.3f} ms median")
        print(
            "ttfb error = reported ttfb − injected delay (blackbox: processing); connect − bare connect (hot, and "
            f"after the same idle gap as the probe: the delay); median of {repeat}"
        )
        print(
            f"  {'delay':>6}  {'vpcprobe ttfb err':>17}  {'blackbox ttfb err':>17}  "
            f"{'vpcprobe conn err':>17}  {'blackbox conn err':>17}  {'idle bare':>9}  {'v err idle':>10}  "
            f"{'bb err idle':>11}"
        )
        for delay in (0, 50, 200, 1000):
            idle_bare = bare_connect_ms(port, min(repeat, 11), delay / 1000) if delay else bare
            v = run_vpcprobe(port, 1, 1, delay, repeat)
            v_ttfb = med([ph["ttfb"] - delay for ph in v["phases"] if ph["ttfb"] is not None])
            v_conn = med([ph["connect"] - bare for ph in v["phases"] if ph["connect"] is not None])
            url = f"http://{ZONES[0]}:{port}/delay/{delay}"
            bb.probe_one(url)  # warm-up
            b = [bb.probe_one(url) for _ in range(repeat)]
            b_ttfb = med([m["processing"] - delay for m in b])
            b_conn = med([m["connect"] - bare for m in b])
            figures[f"ttfb_err_ms_{delay}"] = {"vpcprobe": round(v_ttfb, 3), "blackbox": round(b_ttfb, 3)}
            figures[f"connect_err_ms_{delay}"] = {"vpcprobe": round(v_conn, 3), "blackbox": round(b_conn, 3)}
            v_idle, b_idle = v_conn + bare - idle_bare, b_conn + bare - idle_bare
            figures[f"connect_err_idle_ms_{delay}"] = {
                "bare": round(idle_bare, 3),
                "vpcprobe": round(v_idle, 3),
                "blackbox": round(b_idle, 3),
            }
            print(
                f"  {delay:>4}ms  {v_ttfb:>+15.2f}ms  {b_ttfb:>+15.2f}ms  {v_conn:>+15.3f}ms  {b_conn:>+15.3f}ms  "
                f"{idle_bare:>7.3f}ms  {v_idle:>+8.3f}ms  {b_idle:>+9.3f}ms"
            )

        sizes = (1, 10, 100) if args.quick else (1, 10, 100, 1000)
        print(
            f"\nround time, every answer after 200 ms (median of {min(repeat, 3)} rounds), ÷ one target's; "
            "CPU per target; blackbox: all N (×addresses) probes at once from this script's asyncio client (on the "
            "same cores: its own work inflates blackbox's wall time at large N; its longest probe_duration is shown)"
        )
        print(
            f"  {'N×addr':>8}  {'vpcprobe ms':>11} {'÷1':>6}  {'blackbox ms':>11} {'÷1':>6}  {'v/bb':>5}  "
            f"{'v CPU/target':>12}  {'bb CPU/target':>13}  {'v statuses'}"
        )
        # The configured default concurrency, and for the largest N also concurrency = N (every target at once).
        rows = [(n, None) for n in sizes] + [(sizes[-1], sizes[-1])]
        for addresses in (1, 2):
            base_v = base_b = None
            for n, conc in rows:
                if conc is not None and figures[f"round_{n}x{addresses}"]["concurrency"] == conc:
                    continue  # the default already is concurrency = N
                v = run_vpcprobe(port, n, addresses, 200, min(repeat, 3), concurrency=conc)
                v_ms = med(v["round_ms"])
                if conc is None:  # blackbox has no concurrency setting: measured once per N
                    urls = [f"http://{ip}:{port}/delay/200" for _ in range(n) for ip in ZONES[:addresses]]
                    bb.round(urls[: min(len(urls), 10)])  # warm-up
                    cpu0 = bb.cpu_ms()
                    b_rounds, b_fail, b_longest = [], 0, []
                    for _ in range(min(repeat, 3)):
                        ms, metrics = bb.round(urls)
                        b_rounds.append(ms)
                        b_fail += sum(1 for m in metrics if m.get("probe_success") != 1.0)
                        b_longest.append(max(m.get("probe_duration_seconds", 0.0) for m in metrics) * 1000)
                    b_cpu = (bb.cpu_ms() - cpu0) / (min(repeat, 3) * n)
                    b_ms = med(b_rounds)
                base_v, base_b = base_v or v_ms, base_b or b_ms
                key = f"round_{n}x{addresses}" + (f"_c{conc}" if conc else "")
                figures[key] = {
                    "vpcprobe_ms": round(v_ms, 1),
                    "vpcprobe_x1": round(v_ms / base_v, 2),
                    "blackbox_ms": round(b_ms, 1),
                    "blackbox_x1": round(b_ms / base_b, 2),
                    "vpcprobe_cpu_ms_per_target": round(v["cpu_ms_per_target"], 3),
                    "blackbox_cpu_ms_per_target": round(b_cpu, 3),
                    "vpcprobe_rss_mb": round(v["rss_kb"] / 1024, 1),
                    "vpcprobe_statuses": v["statuses"],
                    "blackbox_failed": b_fail,
                    "blackbox_longest_probe_ms": round(med(b_longest), 1),
                    "concurrency": v["concurrency"],
                }
                print(
                    f"  {n:>5}×{addresses}  {v_ms:>11.1f} {v_ms / base_v:>5.2f}×  {b_ms:>11.1f} {b_ms / base_b:>5.2f}× "
                    f"{v_ms / b_ms:>4.2f}×  {v['cpu_ms_per_target']:>10.3f}ms  {b_cpu:>11.3f}ms  "
                    f"{v['statuses']} (concurrency {v['concurrency']}; blackbox failed {b_fail}, "
                    f"its longest probe {med(b_longest):.0f} ms)"
                )
        big = f"round_{sizes[-1]}x2"
        print(
            f"\npeak RSS: vpcprobe {figures[big]['vpcprobe_rss_mb']} MB (N={sizes[-1]}×2, its own process); "
            f"blackbox_exporter {bb.peak_rss_kb() / 1024:.1f} MB (whole run)"
        )
        figures["blackbox_peak_rss_mb"] = round(bb.peak_rss_kb() / 1024, 1)

        if taskset:
            n = 100 if args.quick else 1000
            print(
                f"\nCPU-starved: prober pinned to core 0 with a busy loop on it; N={n}×2, 200 ms answers, "
                "timeout 5s, no retries; the server answers every request, so any `down` is false"
            )
            busy = busy_loop("0")
            try:
                seen: set[int] = set()
                for conc in (None, 1000):  # the default, and every target at once (the false outage)
                    if conc in seen:
                        continue
                    v = run_vpcprobe(port, n, 2, 200, 3, pin="0", concurrency=conc)
                    seen.add(v["concurrency"])
                    st = v["statuses"]
                    down = st.get("down", 0) + st.get("first:down", 0)
                    unknown = st.get("unknown", 0) + st.get("first:unknown", 0)
                    key = f"starved_concurrency_{v['concurrency']}"
                    figures[key] = {
                        "false_down": down,
                        "unknown": unknown,
                        "statuses": st,
                        "codes": v["codes"],
                        "round_ms": [round(x) for x in v["round_ms"]],
                        "lag_max_ms": [round(x or 0) for x in v["lag_max_ms"]],
                    }
                    print(
                        f"  vpcprobe concurrency {v['concurrency']:>5}: false down {down}, unknown {unknown} "
                        f"of {4 * n} results; rounds {[round(x) for x in v['round_ms']]} ms; "
                        f"loop lag max {[round(x or 0) for x in v['lag_max_ms']]} ms; codes {v['codes']}"
                    )
                subprocess.run(["taskset", "-p", "-c", "0", str(bb.proc.pid)], capture_output=True, check=True)
                urls = [f"http://{ip}:{port}/delay/200" for _ in range(n) for ip in ZONES]
                fails, rounds = 0, []
                for _ in range(3):
                    ms, metrics = bb.round(urls)
                    rounds.append(round(ms))
                    fails += sum(1 for m in metrics if m.get("probe_success") != 1.0)
                figures["starved_blackbox_failed"] = fails
                print(
                    f"  blackbox_exporter (pinned to core 0 too): failed probes {fails} of {3 * len(urls)}; "
                    f"rounds {rounds} ms"
                )
            finally:
                busy.terminate()
                busy.wait()
        else:
            print("\nCPU-starved run skipped: needs taskset and at least 2 cores")

        print("\nfirst round in a fresh process vs a warm round (1 target, no delay; median of 7 processes each)")
        for hook in (False, True):
            firsts, warms, imports, hooks = [], [], [], []
            for _ in range(7):
                v = run_vpcprobe(port, 1, 1, 0, 5, warm_up=hook)
                firsts.append(v["first_ms"])
                warms.append(med(v["round_ms"]))
                imports.append(v["import_ms"])
                hooks.append(v["warm_up_ms"] or 0.0)
            key = "after_initializer" if hook else "no_initializer"
            figures[f"first_ms_{key}"], figures[f"warm_ms_{key}"] = round(med(firsts), 2), round(med(warms), 2)
            print(
                f"  {'after the Initializer hook' if hook else 'without an Initializer  '}: "
                f"first {med(firsts):.2f} ms, "
                f"warm {med(warms):.2f} ms: {med(firsts) / med(warms):.2f}× (importing the engine before it: "
                f"{med(imports):.1f} ms" + (f"; the hook itself: {med(hooks):.1f} ms)" if hook else ")")
            )
    finally:
        bb.stop()
        server.stdin.close()
        answered = server.stdout.readline().strip()
        server.wait(timeout=10)
    print(f"\nupstream answered {answered} requests")
    print(json.dumps(figures))


def child() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--n", type=int)
    p.add_argument("--addresses", type=int)
    p.add_argument("--delay", type=int)
    p.add_argument("--repeat", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--warm-up", action="store_true", help="run FC's Initializer warm-up before the first round")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child == "server":
        serve_upstream()
    else:
        vpcprobe_rounds(args)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
