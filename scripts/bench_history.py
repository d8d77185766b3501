"""Benchmark (not a test): what recording history adds to a round, and what reading the view costs.

Run: .venv/bin/python scripts/bench_history.py [--targets 100,1000] [--rounds 10]
For each target count, on the file store (a temp directory) and on OSS (the real oss2 client against the
loopback fake OSS of the tests): bytes written and ms of a regular round (median), of the round that rolls
a finished hour into a day object already holding 23 hours (the day's largest rewrite), and read_view of
24 h of 1-minute rounds plus 30 days of hourly aggregates, cold (a fresh process) and warm (the same
process after one more round; median of 3). Times are wall clock on whatever else the machine is doing: compare the
figures of one run with each other.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.history import view  # noqa: E402
from shared.history.aggregate import nearest_rank  # noqa: E402
from shared.history.objects import (  # noqa: E402
    HOUR,
    LATEST,
    HourColumns,
    RawRound,
    day_name,
    encode_day,
    encode_latest,
    encode_round,
    new_latest,
    raw_name,
)
from shared.history.record import record_round  # noqa: E402
from shared.state.file import FileStore  # noqa: E402
from shared.state.oss import OssStore  # noqa: E402
from shared.state.store import Store  # noqa: E402
from shared.verdict.codes import Code  # noqa: E402
from shared.verdict.diagnose import diagnose  # noqa: E402
from shared.verdict.result import AddressResult, ProbeResult  # noqa: E402
from shared.verdict.status import Status  # noqa: E402
from tests.fake_oss import FakeOss  # noqa: E402

OSS_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret"}
DAY_START = 1796169600.0  # 2026-12-02 00:00 UTC
rng = random.Random(7)


def results(n: int) -> list[ProbeResult]:
    """A round as the prober reports it: two zones per target, 2% down, 3% degraded."""
    out = []
    for i in range(n):
        roll = rng.random()
        status = Status.DOWN if roll < 0.02 else Status.DEGRADED if roll < 0.05 else Status.UP
        total = round(rng.uniform(20, 400), 1)
        zone = {"dns": 0.1, "connect": 1.2, "tls": None, "ttfb": total - 3, "total": total}
        addresses = [
            AddressResult(f"10.0.{k}.{i % 250}", 80, True, status=Status.DOWN if status != Status.UP and k else
                          Status.UP, phases_ms=zone, http_status=200, attempts=1, blackbox_phases_ms=zone)
            for k in range(2)
        ]
        code = {Status.DOWN: Code.CONNECT_REFUSED, Status.DEGRADED: Code.ZONES_DOWN}.get(status)
        out.append(ProbeResult(
            f"llm-endpoint-{i:04d}", "dashscope" if i % 2 else "eas",
            f"http://ep-{i:04d}.dashscope.ap-southeast-1.privatelink.aliyuncs.com/compatible-mode/v1/models",
            status, http_status=200, phases_ms=zone, addresses=addresses,
            diagnosis=None if code is None else diagnose(code, "10.0.1.1: connection refused"),
            form="privatelink-default", mode="models", blackbox_phases_ms=zone,
        ))
    return out


def raw_round(at: float, names: list[str]) -> RawRound:
    status = "".join(rng.choices("uuuuuuuuuugd", k=len(names)))
    totals = [round(rng.uniform(20, 400), 1) for _ in names]
    return RawRound(at, names, status, totals, [t - 3 for t in totals],
                    [None if s == "u" else "zones_down" for s in status], ["uu" if s == "u" else "ud" for s in status])


def hour_columns(names: list[str]) -> HourColumns:
    ordered = sorted(round(rng.uniform(20, 400), 1) for _ in range(60))
    n = len(names)
    return HourColumns(names, [60] * n, [59] * n, [nearest_rank(ordered, 0.5)] * n,
                       [nearest_rank(ordered, 0.95)] * n, ["zones_down"] * n)


def seed_day_hours(store: Store, names: list[str], hours: int) -> None:
    store.put_object(day_name(int(DAY_START)), encode_day({int(DAY_START) + h * HOUR: hour_columns(names)
                                                            for h in range(hours)}))


def seed_24h_and_30d(store: Store, sample: list[ProbeResult], now: float) -> None:
    """24 h of 1-minute raw rounds and 30 days of hourly aggregates, written directly (not timed)."""
    names = [r.target for r in sample]
    first_hour = int(now // HOUR * HOUR) - 24 * HOUR
    for h in range(25):
        hour = first_hour + h * HOUR
        lines = b"".join(encode_round(raw_round(hour + 60 * m + 5, names)) for m in range(60) if hour + 60 * m < now)
        store.append_object(raw_name(hour), lines)
    latest = new_latest()
    for d in range(31):
        day = int(now // 86400 * 86400) - d * 86400
        store.put_object(day_name(day), encode_day({day + h * HOUR: hour_columns(names) for h in range(24)}))
        latest["hourly"][day_name(day)] = f"seed{d}"
    latest["round_at"], latest["pending"] = now - 60, [int(now // HOUR * HOUR)]
    latest["targets"] = {r.target: {"status": str(r.status), "since": now - 7200, "at": now - 60,
                                    "result": r.to_dict()} for r in sample}
    store.put_object(LATEST, encode_latest(latest))


def timed(fn, *args, **kw):
    started = time.perf_counter()
    out = fn(*args, **kw)
    return out, (time.perf_counter() - started) * 1000


def bench(label: str, make_store, n: int, rounds: int) -> None:
    sample = results(n)
    names = [r.target for r in sample]
    # Regular rounds: the hour's 2nd..(rounds+1)th round.
    store = make_store()
    start = DAY_START + 23 * HOUR
    record_round(store, sample, now=start + 30)
    regular = [timed(record_round, store, sample, now=start + 30 + 60 * (m + 1)) for m in range(rounds)]
    bytes_regular = statistics.median(r.bytes_written for r, _ in regular)
    ms_regular = statistics.median(ms for _, ms in regular)
    line = regular[-1][0].bytes_written - len(store.get_object(LATEST))
    # The roll-up round: 23:00 (60 rounds) rolled into a day object already holding 00:00-22:00.
    seed_day_hours(store, names, 23)
    for m in range(rounds + 1, 60):
        record_round(store, sample, now=start + 30 + 60 * m)
    rollup, ms_rollup = timed(record_round, store, sample, now=start + HOUR + 30)
    print(f"{label:9} {n:5} targets  round: {bytes_regular / 1024:8.1f} KiB {ms_regular:7.1f} ms "
          f"(raw line {line / 1024:.1f} KiB, latest.json {len(store.get_object(LATEST)) / 1024:.0f} KiB)  "
          f"roll-up round: {rollup.bytes_written / 1024:8.1f} KiB {ms_rollup:7.1f} ms "
          f"({rollup.objects_written} objects, {rollup.rolled_hours} hour, {rollup.pruned} pruned)")
    # The view: 24 h of 1-minute rounds + 30 days of hours.
    store = make_store()
    now = DAY_START + 2 * 86400 + 30 * 60
    seed_24h_and_30d(store, sample, now)
    view._parsed.clear()  # as in a fresh process
    cold, ms_cold = timed(view.read_view, store, now=now)
    record_round(store, sample, now=now + 1)
    warm_reads = [timed(view.read_view, store, now=now + 2) for _ in range(3)]
    warm, ms_warm = warm_reads[-1][0], statistics.median(ms for _, ms in warm_reads)
    body, ms_json = timed(lambda: json.dumps(warm.summary_dict(now + 2)).encode())
    full, ms_full = timed(lambda: json.dumps(warm.full_dict()).encode())
    points = sum(len(t.points) for t in cold.targets)
    hours = sum(len(t.hours) for t in cold.targets)
    view._parsed.clear()
    tracemalloc.start()
    held = view.read_view(store, now=now + 2)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    print(f"{'':9} {n:5} targets  read_view: cold {ms_cold:7.0f} ms, warm {ms_warm:6.0f} ms "
          f"({points} points, {hours} hours, {memory / 2**20:.0f} MiB held)  "
          f"summary json: {ms_json:5.0f} ms, {len(body) / 2**20:.1f} MiB; "
          f"full json: {ms_full:5.0f} ms, {len(full) / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="100,1000")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    oss = FakeOss().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(1000))
            backends = {
                "file": lambda: FileStore(Path(tmp) / f"s{next(counter)}"),
                "oss(fake)": lambda: OssStore(oss.bucket, oss.endpoint, f"b{next(counter)}/", environ=OSS_ENV),
            }
            for n in (int(x) for x in args.targets.split(",")):
                for label, make_store in backends.items():
                    bench(label, make_store, n, args.rounds)
    finally:
        oss.stop()


if __name__ == "__main__":
    main()
