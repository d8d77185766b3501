"""Benchmark (not a test): what the gateway adds on top of a direct call, against nginx in the same run.

Run: make bench (`--quick`: a short soak) or .venv/bin/python scripts/bench_gateway.py [--soak-streams 500
--soak-seconds 60]. One loopback upstream written here (OpenAI-style JSON, and SSE with N frames at a set
interval: the simulator is too slow to be the upstream for throughput), each in its own process: the upstream,
the gateway (uvicorn, as FC runs it), nginx when installed (single process, `proxy_buffering off`; twice: with
kept-alive upstream connections, and with its defaults otherwise as in issue 8's anchor), and the
load generator (uvloop + httptools on raw sockets, so it is not the bottleneck). Prints figures; asserts nothing.
Goals (issue 8): c=1 added p50 <= 1 ms; c=50 throughput >= 0.2x nginx's; first frame added p50 <= 0.3 ms;
500 x 60-s streams: 0 errors, gateway RSS <= 150 MB, first frame p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httptools

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The gateway reaches the upstream under a real-looking name pinned by `resolve:` (never resolved).
UPSTREAM_NAME = "ep-bench.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
TARGET = "bench"
CHAT_PATH = "/compatible-mode/v1/chat/completions"
GATEWAY_KEY_ENV, UPSTREAM_KEY_ENV = "VPCPROBE_BENCH_GATEWAY_KEY", "VPCPROBE_BENCH_UPSTREAM_KEY"
GATEWAY_KEY, UPSTREAM_KEY = "gw-bench-key-0123456789", "sk-bench-upstream-0123456789"
CHAT_BODY = json.dumps(
    {"model": "qwen-plus", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}
).encode()
# c=1 is measured back to back and again with this gap between requests: back to back, what a server does
# after answering (the gateway's log line) delays the next request, which a real client would not see.
PAUSE_MS = 1.0
ISSUE_FIRST_FRAME_RATIO = 0.3 / 0.08  # issue 8: first frame goal +0.3 ms, measured where nginx added +0.08 ms
FC_VCPU = 0.35  # what FC 3.0 gives a 512 MB function by default (fc3 schema: cpu 0.35)
STREAM_BODY = json.dumps(
    {"model": "qwen-plus", "messages": [{"role": "user", "content": "ping"}], "stream": True}
).encode()


def _run_loop(main: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(main)
    except ImportError:
        return asyncio.run(main)


# ---------------------------------------------------------------------------------------------------------
# The upstream: raw asyncio + httptools, so it costs far less than what is measured through it.


_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "qwen-plus",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
).encode()
_JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: bench-0001\r\n"
    b"content-length: " + str(len(_COMPLETION)).encode() + b"\r\n\r\n" + _COMPLETION
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-request-id: bench-0002\r\ntransfer-encoding: chunked\r\n\r\n"
)
_FRAME = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"qwen-plus",'
    b'"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}\n\n'
)
_LAST_FRAME = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"qwen-plus",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}\n\n'
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _UpstreamProtocol(asyncio.Protocol):
    """One client connection: JSON completions, or an SSE stream of `?frames=N&interval_ms=M`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.streaming = False
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        if b'"stream": true' in body or b'"stream":true' in body:
            query = parse_qs(urlsplit(self.url.decode()).query)
            frames = int(query.get("frames", ["3"])[0])
            interval = float(query.get("interval_ms", ["0"])[0]) / 1000
            asyncio.get_running_loop().create_task(self._stream(frames, interval))
        else:
            self.transport.write(_JSON_RESPONSE)

    async def _stream(self, frames: int, interval: float) -> None:
        self.transport.write(_SSE_HEAD + _chunk(_FRAME))
        for i in range(1, frames):
            await asyncio.sleep(interval)
            if self.transport.is_closing():
                return
            self.transport.write(_chunk(_LAST_FRAME if i == frames - 1 else _FRAME))
        self.transport.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


async def _serve_upstream() -> None:
    server = await asyncio.get_running_loop().create_server(_UpstreamProtocol, HOST, 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


# ---------------------------------------------------------------------------------------------------------
# The load generator: keep-alive connections on raw asyncio + httptools, one request at a time each.


class LoadError(Exception):
    """A request that did not end in a complete 2xx response."""


class _ClientConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future | None = None
        self.first_frame: float | None = None
        self.frames = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(LoadError(f"bad response: {exc}"))

    def on_body(self, body: bytes) -> None:
        n = body.count(b"data:")
        if n and self.first_frame is None:
            self.first_frame = time.perf_counter()
        self.frames += n

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LoadError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)
        self.transport.close()

    def send(self, request: bytes) -> asyncio.Future:
        self.first_frame, self.frames = None, 0
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.done


async def _connect(port: int) -> _ClientConnection:
    _, conn = await asyncio.get_running_loop().create_connection(_ClientConnection, HOST, port)
    return conn


def _request(path: str, body: bytes, auth: str | None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    if auth:
        head += f"authorization: Bearer {auth}\r\n"
    return head.encode() + b"\r\n" + body


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _rate(port: int, path: str, auth: str | None, concurrency: int, seconds: float, warmup: float,
                stream: bool, pause_ms: float = 0.0) -> dict:
    """Closed loop: `concurrency` connections, each sending its next request when the last one ends
    (`pause_ms` later: so work a server does after answering is not billed to the next request).

    A streamed request's latency is the time to its first frame."""
    request = _request(path, STREAM_BODY if stream else CHAT_BODY, auth)
    latencies: list[float] = []
    errors = total = 0
    conns = [await _connect(port) for _ in range(concurrency)]
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def worker(conn: _ClientConnection) -> None:
        nonlocal errors, total
        while (now := time.perf_counter()) < stop_at:
            total += 1
            try:
                status = await conn.send(request)
                end = conn.first_frame if stream else time.perf_counter()
                ok = 200 <= status < 300 and end is not None
            except LoadError:
                ok, end = False, None
                conn = await _connect(port)
            if now >= measure_from:
                if ok:
                    latencies.append(end - now)
                else:
                    errors += 1
            if pause_ms:
                await asyncio.sleep(pause_ms / 1000)

    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        conn.transport.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "all_requests": total,  # warm-up included: what the contender's CPU time is divided by
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": _percentile(latencies, 0.5) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


async def _streams(port: int, path: str, auth: str | None, count: int, seconds: float, interval_ms: float,
                   ramp: float) -> dict:
    """`count` concurrent SSE streams of `seconds` each, started evenly over `ramp` seconds."""
    frames = max(2, int(seconds * 1000 / interval_ms))
    request = _request(f"{path}?frames={frames}&interval_ms={interval_ms:g}", STREAM_BODY, auth)
    first: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, started + ramp * i / count - time.perf_counter()))
        t0 = time.perf_counter()
        try:
            conn = await _connect(port)
            status = await conn.send(request)
            if status != 200 or conn.first_frame is None or conn.frames < frames:
                errors.append(f"status {status}, {conn.frames}/{frames} frames")
            else:
                first.append(conn.first_frame - t0)
            conn.transport.close()
        except (OSError, LoadError) as exc:
            errors.append(str(exc))

    await asyncio.gather(*(one(i) for i in range(count)))
    first.sort()
    return {
        "streams": count,
        "errors": len(errors),
        "error_samples": errors[:3],
        "first_frame_p50_ms": _percentile(first, 0.5) * 1000,
        "first_frame_p99_ms": _percentile(first, 0.99) * 1000,
        "wall_s": time.perf_counter() - started,
    }


def _load_main(spec: dict) -> dict:
    kind = spec.pop("kind")
    return _run_loop(_rate(**spec) if kind == "rate" else _streams(**spec))


def run_load(spec: dict) -> dict:
    """Run one load scenario in its own process (the generator never shares the measured process)."""
    out = subprocess.run(
        [sys.executable, __file__, "_load", json.dumps(spec)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout)


# ---------------------------------------------------------------------------------------------------------
# The processes under test.


@dataclass
class Service:
    """A child process listening on a loopback port."""

    name: str
    proc: subprocess.Popen
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")


def start_upstream() -> Service:
    proc = subprocess.Popen(
        [sys.executable, __file__, "_upstream"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    return Service("upstream", proc, int(proc.stdout.readline()))


def _wait_port(proc: subprocess.Popen, port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


NGINX_CONF = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream up {{ server {host}:{upstream};{upstream_keepalive} }}
  server {{
    listen {host}:{port} backlog=4096;
    keepalive_requests 1000000;
    keepalive_timeout 900s;
    location / {{
      proxy_pass http://up;{proxy_keepalive}
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""


# "nginx": kept-alive upstream connections (HTTP/1.1, a pool of 1024), as the gateway keeps them: the
# strongest anchor. "nginx-default": issue 8's anchor row, `proxy_buffering off` and nginx's defaults
# otherwise (HTTP/1.0 to the upstream, a new upstream connection per request), the configuration most
# proxies in front of a model run with.
NGINX_UPSTREAM_KEEPALIVE = {
    "nginx": (" keepalive 1024; keepalive_requests 1000000;",
              '\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";'),
    "nginx-default": ("", ""),
}


def start_nginx(upstream: Service, workdir: Path, name: str = "nginx") -> Service | None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if nginx is None:
        return None
    port = _free_port()
    home = workdir / name
    home.mkdir()
    conf = home / "nginx.conf"
    upstream_keepalive, proxy_keepalive = NGINX_UPSTREAM_KEEPALIVE[name]
    conf.write_text(NGINX_CONF.format(dir=home, host=HOST, upstream=upstream.port, port=port,
                                      upstream_keepalive=upstream_keepalive, proxy_keepalive=proxy_keepalive))
    proc = subprocess.Popen([nginx, "-p", str(home), "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_port(proc, port)
    return Service(name, proc, port)


def _gateway_config(upstream: Service, workdir: Path) -> Path:
    import yaml

    config = {
        "region": "ap-southeast-1",
        "resolve": {UPSTREAM_NAME: [f"{HOST}:{upstream.port}"]},
        "targets": [
            {"name": TARGET, "kind": "dashscope", "endpoint": f"http://{UPSTREAM_NAME}",
             "credential": f"env:{UPSTREAM_KEY_ENV}"},
        ],
        "gateway": {
            "keys": [{"name": "bench", "key": f"env:{GATEWAY_KEY_ENV}"}],
            "models": {"qwen-plus": [{"target": TARGET, "model": "qwen-plus"}]},
        },
    }
    path = workdir / "vpcprobe.bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


GATEWAY_CODE = """
import sys
from shared import logs
from shared.config.load import load_config
from shared.gateway.app import create_app
from shared.gateway.server import run
logs.configure()
run(create_app(load_config(sys.argv[1])), host=sys.argv[2], port=int(sys.argv[3]))
"""


def start_gateway(upstream: Service, workdir: Path, cpu: int | None, root: Path = ROOT,
                  name: str = "gateway") -> Service:
    """The real gateway: shared.gateway.app.create_app served by server.run, as in FC; from `root`'s sources
    (`--baseline-root`: another checkout's gateway beside this one, so before/after come from one run)."""
    config = _gateway_config(upstream, workdir)
    port = _free_port()
    env = dict(os.environ, **{GATEWAY_KEY_ENV: GATEWAY_KEY, UPSTREAM_KEY_ENV: UPSTREAM_KEY})
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, "-c", GATEWAY_CODE, str(config), HOST, str(port)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    # One JSON log line per request is part of what the gateway costs (FC keeps stdout too): to a file.
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        _wait_port(proc, port)
    except RuntimeError:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise
    return Service(name, proc, port)


class _FloorApp:
    """What any ASGI gateway on this server costs at least (`--floor`): `fixed` answers the completion itself
    (uvicorn + uvloop alone); `relay` sends each request through shared/gateway/client.py's pool and relays the
    answer with two ASGI sends, with no routing, keys, header rules or log line."""

    def __init__(self, kind: str, upstream_port: int) -> None:
        self.kind = kind
        self.upstream_port = upstream_port
        self.pool: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.kind == "fixed":
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(_COMPLETION)).encode())]})
            await send({"type": "http.response.body", "body": _COMPLETION})
            return
        if self.pool is None:
            from shared.gateway.client import UpstreamPool

            self.pool = UpstreamPool()
        reply = await self.pool.request(
            "POST", CHAT_PATH, [(b"content-type", b"application/json")], body, ip=HOST, port=self.upstream_port,
            server_name=UPSTREAM_NAME, connect_timeout=5, first_byte_timeout=30)
        headers = [(k.lower(), v) for k, v in reply.raw_headers if k.lower() != b"transfer-encoding"]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        while (chunk := await reply.next_chunk(30)) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        reply.release()


def _serve_floor(kind: str, upstream_port: int, port: int) -> None:
    from shared.gateway.server import run

    run(_FloorApp(kind, upstream_port), host=HOST, port=port)


def start_floor(kind: str, upstream: Service) -> Service:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "_floor", kind, str(upstream.port), str(port)],
                            stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    _wait_port(proc, port)
    return Service(f"floor-{kind}", proc, port)


# ---------------------------------------------------------------------------------------------------------
# Scenarios and the report.


@dataclass
class Route:
    """How one contender is called: its port, path prefix and key."""

    service: Service
    prefix: str = ""
    auth: str | None = None

    @property
    def name(self) -> str:
        return self.service.name


def _rate_spec(route: Route, concurrency: int, seconds: float, stream: bool, pause_ms: float) -> dict:
    path = route.prefix + CHAT_PATH + ("?frames=3&interval_ms=1" if stream else "")
    return {"kind": "rate", "port": route.service.port, "path": path, "auth": route.auth,
            "concurrency": concurrency, "seconds": seconds, "warmup": min(1.0, seconds / 3), "stream": stream,
            "pause_ms": pause_ms}


def measure_rate(route: Route, concurrency: int, seconds: float, stream: bool = False, pause_ms: float = 0.0) -> dict:
    """Latency and throughput, plus the contender's own CPU time per request (robust to a busy machine)."""
    cpu = route.service.cpu_s()
    result = run_load(_rate_spec(route, concurrency, seconds, stream, pause_ms))
    result["cpu_us_per_request"] = (route.service.cpu_s() - cpu) / max(1, result["all_requests"]) * 1e6
    return result


def soak(route: Route, count: int, seconds: float, interval_ms: float, ramp: float) -> dict:
    """Concurrent long streams while sampling the contender's RSS (start, peak, end)."""
    start_rss, start_cpu = route.service.rss_mb(), route.service.cpu_s()
    spec = {"kind": "streams", "port": route.service.port, "path": route.prefix + CHAT_PATH, "auth": route.auth,
            "count": count, "seconds": seconds, "interval_ms": interval_ms, "ramp": ramp}
    proc = subprocess.Popen([sys.executable, __file__, "_load", json.dumps(spec)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    peak = start_rss
    while proc.poll() is None:
        peak = max(peak, route.service.rss_mb())
        time.sleep(0.2)
    result = json.loads(proc.stdout.read())
    result["cpu_percent"] = (route.service.cpu_s() - start_cpu) / result["wall_s"] * 100
    time.sleep(1.0)  # let the contender drop what the streams held
    return {**result, "rss_start_mb": start_rss, "rss_peak_mb": peak, "rss_end_mb": route.service.rss_mb()}


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs and a 100 x 10-s soak (make bench)")
    parser.add_argument("--seconds", type=float, help="measured seconds per rate scenario")
    parser.add_argument("--soak-streams", type=int)
    parser.add_argument("--soak-seconds", type=float)
    parser.add_argument("--soak-interval-ms", type=float, default=100.0, help="gap between a stream's frames")
    parser.add_argument("--soak-ramp", type=float, default=1.0, help="seconds over which the streams start")
    parser.add_argument("--concurrency-sweep", default="10,50,100,200",
                        help="gateway throughput/latency at these concurrencies (instanceConcurrency)")
    parser.add_argument("--gateway-cpu", type=int, help="pin the gateway to this CPU (taskset)")
    parser.add_argument("--baseline-root", type=Path,
                        help="also run the gateway of this source tree (e.g. a `git archive` of an older commit)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bare uvicorn (fixed answer) and uvicorn + the upstream client (relay)")
    parser.add_argument("--rates-only", action="store_true", help="skip the concurrency sweep and the soak")
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    soak_streams = 0 if args.rates_only else args.soak_streams or (100 if args.quick else 500)
    if args.rates_only:
        args.concurrency_sweep = ""
    soak_seconds = args.soak_seconds or (10.0 if args.quick else 60.0)

    workdir = Path(tempfile.mkdtemp(prefix="vpcprobe-bench-gw-"))
    services: list[Service] = []
    try:
        upstream = start_upstream()
        services.append(upstream)
        gateway = start_gateway(upstream, workdir, args.gateway_cpu)
        services.append(gateway)
        routes = [Route(upstream), Route(gateway, f"/{TARGET}", GATEWAY_KEY)]
        if args.baseline_root is not None:
            baseline = start_gateway(upstream, workdir, args.gateway_cpu, args.baseline_root.resolve(), "baseline")
            services.append(baseline)
            routes.append(Route(baseline, f"/{TARGET}", GATEWAY_KEY))
        for kind in ("fixed", "relay") if args.floor else ():
            services.append(start_floor(kind, upstream))
            routes.append(Route(services[-1]))
        for name in NGINX_UPSTREAM_KEEPALIVE:
            nginx = start_nginx(upstream, workdir, name)
            if nginx is None:
                print("nginx: not installed (apt-get install nginx): no nginx column, no throughput ratio")
                break
            services.append(nginx)
            routes.append(Route(nginx))
        load = "load generator: separate process, uvloop + httptools on raw keep-alive connections"
        print(f"{load}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}\n")
        _report(routes, seconds, args, soak_streams, soak_seconds)
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(routes: list[Route], seconds: float, args: argparse.Namespace, soak_streams: int,
            soak_seconds: float) -> None:
    names = [r.name for r in routes]
    results: dict[str, dict[str, dict]] = {n: {} for n in names}
    scenarios = {"c1": (1, False, 0.0), "c50": (50, False, 0.0), "sse": (1, True, 0.0),
                 "c1_paced": (1, False, PAUSE_MS), "sse_paced": (1, True, PAUSE_MS)}
    for route in routes:
        measure_rate(route, 1, 0.5)  # warm every pool and code path
    # Scenario by scenario, every contender in turn: a busy spell of the shared machine hits all of them alike.
    for scenario, (concurrency, stream, pause) in scenarios.items():
        for route in routes:
            if stream and route.name == "floor-fixed":  # answers JSON only
                results[route.name][scenario] = dict.fromkeys(("p50_ms", "p99_ms", "rps", "cpu_us_per_request",
                                                                "errors"), 0)
                continue
            results[route.name][scenario] = measure_rate(route, concurrency, seconds, stream, pause)
    direct = results["upstream"]
    print(f"{'':34}" + "".join(f"{n:>14}" for n in names))
    rows = [
        ("c=1 p50 ms", "c1", "p50_ms"), ("c=1 p99 ms", "c1", "p99_ms"),
        (f"c=1 +{PAUSE_MS:g} ms gaps p50 ms", "c1_paced", "p50_ms"),
        (f"c=1 +{PAUSE_MS:g} ms gaps p99 ms", "c1_paced", "p99_ms"),
        ("c=50 p50 ms", "c50", "p50_ms"), ("c=50 p99 ms", "c50", "p99_ms"), ("c=50 req/s", "c50", "rps"),
        ("first frame c=1 p50 ms", "sse", "p50_ms"), ("first frame c=1 p99 ms", "sse", "p99_ms"),
        (f"first frame +{PAUSE_MS:g} ms gaps p50 ms", "sse_paced", "p50_ms"),
        (f"first frame +{PAUSE_MS:g} ms gaps p99 ms", "sse_paced", "p99_ms"),
        ("CPU us/request c=1", "c1", "cpu_us_per_request"), ("CPU us/request c=50", "c50", "cpu_us_per_request"),
    ]
    for label, scenario, key in rows:
        print(f"{label:34}" + "".join(f"{_fmt(results[n][scenario][key]):>14}" for n in names))
    errors = {n: sum(r["errors"] for r in results[n].values()) for n in names}
    print(f"{'errors':34}" + "".join(f"{errors[n]:>14}" for n in names))
    print()
    for name in names[1:]:
        r = results[name]
        print(f"{name}: added c=1 p50 {_fmt(r['c1']['p50_ms'] - direct['c1']['p50_ms'])} ms "
              f"p99 {_fmt(r['c1']['p99_ms'] - direct['c1']['p99_ms'])} ms; "
              f"c=50 p50 {_fmt(r['c50']['p50_ms'] - direct['c50']['p50_ms'])} ms "
              f"p99 {_fmt(r['c50']['p99_ms'] - direct['c50']['p99_ms'])} ms; "
              f"first frame p50 {_fmt(r['sse']['p50_ms'] - direct['sse']['p50_ms'])} ms; with {PAUSE_MS:g} ms gaps: "
              f"c=1 p50 {_fmt(r['c1_paced']['p50_ms'] - direct['c1_paced']['p50_ms'])} ms, first frame p50 "
              f"{_fmt(r['sse_paced']['p50_ms'] - direct['sse_paced']['p50_ms'])} ms")
    gw = results["gateway"]
    print("\ngoals (gateway):")
    print(f"  c=1 added p50 <= 1 ms: {_fmt(gw['c1']['p50_ms'] - direct['c1']['p50_ms'])} ms back to back, "
          f"{_fmt(gw['c1_paced']['p50_ms'] - direct['c1_paced']['p50_ms'])} ms with gaps")
    if "nginx" in results:
        nginx_rps = results["nginx"]["c50"]["rps"]
        print(f"  c=50 throughput >= 0.2x nginx: {gw['c50']['rps'] / nginx_rps:.2f}x ({gw['c50']['rps']:.0f} vs "
              f"{nginx_rps:.0f} req/s)")
        if "nginx-default" in results:
            default_rps = results["nginx-default"]["c50"]["rps"]
            print(f"  c=50 throughput >= 0.2x nginx-default (issue 8's anchor: proxy_buffering off, no upstream "
                  f"keep-alive): {gw['c50']['rps'] / default_rps:.2f}x ({default_rps:.0f} req/s)")
        for name in names:
            if name not in ("upstream", "gateway", "nginx"):
                print(f"  {name}: c=50 {results[name]['c50']['rps'] / nginx_rps:.2f}x nginx")
    print(f"  first frame added p50 <= 0.3 ms: {_fmt(gw['sse']['p50_ms'] - direct['sse']['p50_ms'])} ms back to back, "
          f"{_fmt(gw['sse_paced']['p50_ms'] - direct['sse_paced']['p50_ms'])} ms with gaps")
    if "nginx" in results:
        # Issue 8 set 0.3 ms where nginx added 0.08 ms: the same goal relative to nginx measured in this run.
        ratios = []
        for scenario, how in (("sse", "back to back"), ("sse_paced", "with gaps")):
            ours = gw[scenario]["p50_ms"] - direct[scenario]["p50_ms"]
            theirs = results["nginx"][scenario]["p50_ms"] - direct[scenario]["p50_ms"]
            ratios.append(f"{ours / theirs:.1f}x {how}" if theirs > 0 else f"n/a {how} (nginx added {theirs:.3f} ms)")
        print(f"  first frame added vs nginx's in this run <= {ISSUE_FIRST_FRAME_RATIO:.2f}x "
              f"(issue 8: 0.3 ms goal where nginx added 0.08 ms): {', '.join(ratios)}")

    if args.concurrency_sweep:
        gateway = next(r for r in routes if r.name == "gateway")
        print("\ngateway by concurrency (instanceConcurrency; non-streaming; FC at 512 MB gets 0.35 vCPU, so an"
              " instance does about 0.35 s of CPU per second: the last column):")
        for c in (int(x) for x in args.concurrency_sweep.split(",")):
            r = measure_rate(gateway, c, seconds)
            print(f"  c={c:<4} {r['rps']:>8.0f} req/s  p50 {_fmt(r['p50_ms'], 2)} ms  p99 {_fmt(r['p99_ms'], 2)} ms"
                  f"  errors {r['errors']}  RSS {gateway.service.rss_mb():.0f} MB  CPU {r['cpu_us_per_request']:.0f}"
                  f" us/request  ~{FC_VCPU * 1e6 / r['cpu_us_per_request']:.0f} req/s at {FC_VCPU} vCPU")

    if not soak_streams:
        return
    print(f"\n{soak_streams} concurrent streams x {soak_seconds:g} s (a frame every {args.soak_interval_ms:g} ms, "
          f"started over {args.soak_ramp:g} s):")
    for route in routes[1:]:
        if route.name.startswith("floor-"):
            continue
        s = soak(route, soak_streams, soak_seconds, args.soak_interval_ms, args.soak_ramp)
        print(f"  {route.name:8} errors {s['errors']}  first frame p50 {_fmt(s['first_frame_p50_ms'], 2)} ms "
              f"p99 {_fmt(s['first_frame_p99_ms'], 2)} ms  RSS start/peak/end {s['rss_start_mb']:.0f}/"
              f"{s['rss_peak_mb']:.0f}/{s['rss_end_mb']:.0f} MB  CPU {s['cpu_percent']:.0f}% of a core"
              + (f"  e.g. {s['error_samples']}" if s["errors"] else ""))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        _run_loop(_serve_upstream())
    elif len(sys.argv) > 1 and sys.argv[1] == "_floor":
        _serve_floor(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        print(json.dumps(_load_main(json.loads(sys.argv[2]))))
    else:
        main()
