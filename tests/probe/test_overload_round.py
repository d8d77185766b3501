"""The overload path end to end: a prober whose own event loop is blocked says `unknown`, never `down`;
a dead address under the same blocking is still `down`."""

from __future__ import annotations

import asyncio
import socket
import time

from shared.local.simulator import Fault
from shared.probe.engine import Prober
from tests.probe.loopback import PL, ZONES, code_of, ds, make_config

SHORT = {"timeout": "250ms", "retries": 0}  # shorter than one 300 ms stall
DEAD = "ep-dead01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
BLOCK_S = 0.3  # each time the blocker runs, the whole loop stops this long


async def round_with_blocked_loop(config) -> list:
    """One round while another task time.sleep()s 300 ms at a time: the prober starved of its own loop."""
    stop = False

    async def blocker() -> None:
        while not stop:
            time.sleep(BLOCK_S)  # blocks the event loop: the fault being injected
            await asyncio.sleep(0.001)

    task = asyncio.get_running_loop().create_task(blocker())
    prober = Prober(config)
    try:
        return await prober.run_round(), prober.last_lag
    finally:
        stop = True
        await task


def test_a_slow_but_answering_endpoint_under_a_blocked_loop_is_unknown_not_down(sim):
    sim.inject(Fault(latency_ms=100))  # answers well inside the 250 ms timeout...
    config = make_config(sim, ds(probe=SHORT))
    healthy = asyncio.run(Prober(config).run_round())[0]
    assert healthy.status == "up", healthy.to_dict()  # ...as an unblocked prober sees
    [r], lag = asyncio.run(round_with_blocked_loop(config))
    assert r.status == "unknown", r.to_dict()
    assert code_of(r) == "prober_overloaded" and "250 ms timeout" in r.diagnosis.message
    assert [a.status for a in r.addresses] == ["unknown", "unknown"]
    assert all(a.error_code == "prober_overloaded" for a in r.addresses)
    assert "fewer targets" in r.diagnosis.remedy
    assert 250.0 <= lag.max_ms <= 600.0, lag  # the monitor saw the 300 ms stalls
    assert r.to_dict()["status"] == "unknown"


def test_a_refused_address_in_the_same_blocked_round_is_still_down(sim):
    """Same round, same stalls: the slow endpoint is unknown, the dead one down (connect_refused)."""
    with socket.socket() as s:  # a port nothing listens on: bound, never listening, closed
        s.bind((ZONES[0], 0))
        dead_port = s.getsockname()[1]
    sim.inject(Fault(latency_ms=100))
    # retries: the retry comes after a stall, so the dead target's probe spans the blocking too
    probe = {**SHORT, "retries": 1, "retry_delay": "10ms"}
    config = make_config(
        sim,
        ds("slow", probe=probe),
        ds("dead", endpoint=f"http://{DEAD}", probe=probe),
        resolve={
            PL: [f"{ip}:{sim.port}" for ip in ZONES],
            DEAD: [f"{ip}:{dead_port}" for ip in ZONES],
        },
    )
    [slow, dead], lag = asyncio.run(round_with_blocked_loop(config))
    assert (slow.status, code_of(slow)) == ("unknown", "prober_overloaded"), slow.to_dict()
    assert (dead.status, code_of(dead)) == ("down", "connect_refused"), dead.to_dict()
    assert [a.status for a in dead.addresses] == ["down", "down"] and [a.attempts for a in dead.addresses] == [2, 2]
    assert lag.max_ms >= 250.0  # it really was blocked, and still the refusal stands
