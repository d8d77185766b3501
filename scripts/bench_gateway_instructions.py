"""Benchmark (not a test): CPU instructions per request of the gateway, counted by valgrind's callgrind.

Wall-clock figures on a shared machine move by 10-20% between runs; instruction counts repeat to within a fraction
of a percent whatever else the machine does, so they tell whether a change made the gateway cheaper. They are not
time: cache misses and system calls are not in them (scripts/bench_gateway.py measures time, against nginx).

Run: .venv/bin/python scripts/bench_gateway_instructions.py [--requests 1000] [--baseline-root DIR] [--floor]
(needs valgrind: apt-get install valgrind). Each contender runs under callgrind behind the same loopback upstream
as in bench_gateway.py; 300 warm-up requests, counters zeroed, then --requests sequential requests on one
keep-alive connection: JSON completions, and SSE streams of 3 frames. `--baseline-root`: the gateway of another
source tree too (e.g. a `git archive` of an older commit), for before/after in one run. `--floor`: uvicorn
answering by itself (fixed) and uvicorn relaying through the gateway's upstream client (relay).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_gateway as bench  # noqa: E402  (the upstream, the gateway's config and the load client are shared)

WARMUP_REQUESTS = 300
STARTUP_S = 600.0  # python under callgrind imports ~50x slower


def _under_callgrind(cmd: list[str], out: Path, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
        stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=cwd,
    )


async def _requests(port: int, path: str, body: bytes, auth: str | None, count: int) -> None:
    conn = await bench._connect(port)
    request = bench._request(path, body, auth)
    try:
        for _ in range(count):
            status = await conn.send(request)
            if status != 200:
                raise RuntimeError(f"HTTP {status} from the contender")
    finally:
        conn.transport.close()


def _collected(out: Path, since: float) -> int:
    """The instructions of the newest dump written after `since` (callgrind_control -d writes out.N)."""
    dumps = [p for p in out.parent.glob(out.name + "*") if p.stat().st_mtime >= since]
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump next to {out}")
    text = max(dumps, key=lambda p: p.stat().st_mtime).read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if found is None:
        raise RuntimeError("no instruction total in the callgrind dump")
    return int(found.group(1))


def measure(name: str, cmd: list[str], env: dict[str, str], port: int, prefix: str, auth: str | None,
            requests: int, workdir: Path) -> dict[str, float]:
    """Instructions per request of one contender, for JSON and for SSE."""
    out = workdir / f"{name}.callgrind"
    proc = _under_callgrind(cmd, out, env, workdir, workdir / f"{name}.log")
    try:
        bench._wait_port(proc, port, timeout=STARTUP_S)
        figures: dict[str, float] = {}
        for kind, path, body in (
            ("json", prefix + bench.CHAT_PATH, bench.CHAT_BODY),
            ("sse", prefix + bench.CHAT_PATH + "?frames=3&interval_ms=0", bench.STREAM_BODY),
        ):
            asyncio.run(_requests(port, path, body, auth, WARMUP_REQUESTS))
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], cwd=workdir, capture_output=True, check=True)
            asyncio.run(_requests(port, path, body, auth, requests))
            since = time.time() - 1
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], cwd=workdir, capture_output=True, check=True)
            figures[kind] = _collected(out, since) / requests
        return figures
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="counted requests per kind (after warm-up)")
    parser.add_argument("--baseline-root", type=Path, help="also count the gateway of this source tree")
    parser.add_argument("--floor", action="store_true", help="also count uvicorn alone and uvicorn + relay")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind): nothing to count with")

    workdir = Path(tempfile.mkdtemp(prefix="vpcprobe-bench-instr-"))
    upstream = bench.start_upstream()
    try:
        config = bench._gateway_config(upstream, workdir)
        keys = {bench.GATEWAY_KEY_ENV: bench.GATEWAY_KEY, bench.UPSTREAM_KEY_ENV: bench.UPSTREAM_KEY}
        contenders: list[tuple[str, Path | None, str | None]] = [("gateway", bench.ROOT, None)]
        if args.baseline_root is not None:
            contenders.append(("baseline", args.baseline_root.resolve(), None))
        if args.floor:
            contenders += [("floor-fixed", None, "fixed"), ("floor-relay", None, "relay")]
        rows: dict[str, dict[str, float]] = {}
        for name, root, floor in contenders:
            port = bench._free_port()
            if floor is None:
                assert root is not None
                env = dict(os.environ, **keys, PYTHONPATH=str(root))
                cmd = [sys.executable, "-c", bench.GATEWAY_CODE, str(config), bench.HOST, str(port)]
                prefix, auth = f"/{bench.TARGET}", bench.GATEWAY_KEY
            else:
                env = dict(os.environ, PYTHONPATH=str(bench.ROOT))
                cmd = [sys.executable, str(Path(bench.__file__)), "_floor", floor, str(upstream.port), str(port)]
                prefix, auth = "", None
            rows[name] = measure(name, cmd, env, port, prefix, auth, args.requests, workdir)
            print(f"{name}: {rows[name]['json']:,.0f} instructions per JSON request, "
                  f"{rows[name]['sse']:,.0f} per SSE stream of 3 frames", flush=True)
        if "baseline" in rows:
            for kind in ("json", "sse"):
                ratio = rows["gateway"][kind] / rows["baseline"][kind]
                print(f"gateway / baseline, {kind}: {ratio:.3f}")
    finally:
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
