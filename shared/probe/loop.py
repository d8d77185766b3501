"""The event loop a probe round runs on: uvloop when it is installed, else asyncio's own.

A round of 1000 targets x 2 addresses is CPU-bound in the loop's own machinery (a connect, a
writability callback, a transport, timers, per attempt); uvloop does that work in C and cuts the
prober's CPU per attempt by about a quarter (scripts/bench_blackbox.py, README "Scheduling"). Without
it (a build that left it out, an unsupported platform) the round runs the same on asyncio's loop.
`VPCPROBE_LOOP=asyncio` forces asyncio's loop, for a side-by-side measurement or a suspected loop bug.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

# Imported with the module (~2.5 ms after the probe's own imports), not in the round: the first round of a
# fresh instance would carry it otherwise.
_uvloop: ModuleType | None
try:
    import uvloop as _uvloop
except ImportError:  # a build without it: asyncio's loop
    _uvloop = None

T = TypeVar("T")

ENV = "VPCPROBE_LOOP"


def loop_factory(prefer: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the round's loop: uvloop's when importable and not turned off, else asyncio's."""
    choice = (prefer or os.environ.get(ENV) or "auto").lower()
    if choice != "asyncio" and _uvloop is not None:
        return _uvloop.new_event_loop
    return asyncio.new_event_loop


def chosen(prefer: str | None = None) -> str:
    """`uvloop` or `asyncio`: the loop `run` would use now (for the round's log line and the bench)."""
    return "asyncio" if loop_factory(prefer) is asyncio.new_event_loop else "uvloop"


def run(main: Coroutine[Any, Any, T], prefer: str | None = None) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks (3.10 has no `loop_factory=` for it)."""
    factory = loop_factory(prefer)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    return _run_310(main, factory)


def _run_310(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop]) -> T:
    """What asyncio.run does on 3.10, with the loop from `factory`."""
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
