"""A deadline for the running task that starts when it is entered, without a task of its own.

`asyncio.wait_for` on python3.10 wraps every awaitable in a new task; with thousands of attempts a
round that is one task too many each. `asyncio.timeout` is 3.11+; this is the same idea for 3.10.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class DeadlineExpired(Exception):
    """Raised out of a `Deadline` block whose time ran out (not a VpcprobeError: callers turn it into one)."""


class Deadline:
    """`async with Deadline(seconds):` cancels the block at `seconds` after entry and raises DeadlineExpired."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Deadline:
        self._task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self.seconds, self._expire)
        return self

    def _expire(self) -> None:
        self.expired = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self._handle is not None and self._task is not None
        self._handle.cancel()
        if self.expired and exc_type is asyncio.CancelledError:
            uncancel = getattr(self._task, "uncancel", None)  # 3.11+: our cancel, not the caller's
            if uncancel is not None:
                uncancel()
            raise DeadlineExpired(f"no result within {self.seconds:g}s")
        return False
