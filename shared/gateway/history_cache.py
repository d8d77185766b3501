"""The gateway's briefly cached read of the probe history, for GET /status, /status.json and /metrics.

A status page refreshing every 30 s in a few browsers, plus a Prometheus scrape, must not each read
NAS or OSS: the view is read at most once per `ttl_s` (the gateway's `state_ttl`), in a worker
thread so the event loop keeps serving the proxy routes meanwhile, and concurrent requests share
that one read. A failed read is cached for `ttl_s` too (a broken store is not hammered per request)
and answered as HistoryUnavailable, which the routes turn into 503: an empty page would look like
"nothing is monitored", a stale one like "all is well".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.errors import VpcprobeError

if TYPE_CHECKING:
    from shared.config.load import Config
    from shared.history.view import HistoryView
    from shared.state.settings import StoreSettings
    from shared.state.store import Store


class HistoryUnavailable(VpcprobeError):
    """The history could not be read (the store failed, or a history object is damaged); says which and why."""


@dataclass(frozen=True)
class HistorySnapshot:
    """One read of the store: the history view and, when there is an alert state document, each target's
    alert state (ok | pending | firing)."""

    view: HistoryView
    alert_states: dict[str, str] | None  # None: no alert state document (no alerts: section, or none yet)


class HistoryCache:
    """The latest HistorySnapshot, re-read from the store when older than `ttl_s`."""

    def __init__(
        self,
        config: Config,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        store_opener: Callable[[StoreSettings], Store] | None = None,
    ) -> None:
        from shared.state.settings import StoreSettings

        # The probe function records history in the alert store when there is one, else in the default store.
        self._settings = config.alerts.store if config.alerts is not None else StoreSettings()
        self.order = tuple(t.name for t in config.targets)  # the configured targets, in config order
        self._ttl_s = ttl_s
        self._clock = clock
        self._opener = store_opener
        self._store: Store | None = None
        self._cached: HistorySnapshot | HistoryUnavailable | None = None
        self._due = float("-inf")  # clock time after which the cached read is too old
        self._reading: asyncio.Future[HistorySnapshot | HistoryUnavailable] | None = None  # the read in flight
        self._failing = False  # the last read failed (logged once per run of failures)
        self._log = logs.get_logger("vpcprobe.gateway")

    async def snapshot(self) -> HistorySnapshot:
        """The cached snapshot, or a fresh read (in a thread) when it is due; HistoryUnavailable on failure."""
        cached = self._cached
        if cached is None or self._clock() >= self._due:
            # shielded: a client that goes away cancels its own wait, not the read the others share
            cached = await asyncio.shield(self.refresh())
        if isinstance(cached, HistoryUnavailable):
            raise cached
        return cached

    def refresh(self) -> asyncio.Future[HistorySnapshot | HistoryUnavailable]:
        """The read in flight, or a new one started in a worker thread (needs a running event loop); its
        result becomes the cached snapshot. Never raises: a failed read resolves to HistoryUnavailable."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._refresh())
        return self._reading

    async def _refresh(self) -> HistorySnapshot | HistoryUnavailable:
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.read)
            self._cached, self._due = result, self._clock() + self._ttl_s
            return result
        finally:
            self._reading = None

    def read(self) -> HistorySnapshot | HistoryUnavailable:
        """Read the store now, in the caller's thread; a failure is returned (to be cached), not raised."""
        try:
            from shared.history.view import read_view  # the history reader loads with the first status request

            if self._store is None:
                self._store = self._open()
            view = read_view(self._store, order=self.order)
        except Exception as exc:  # any failure, a bug's included: the routes answer 503 with it, never a traceback
            error = HistoryUnavailable(f"the probe history cannot be read: {logs.redact(exc)}")
            if not self._failing:
                self._failing = True
                self._log.error("gateway_history_unreadable", store=self._describe(), error=str(error))
            return error
        if self._failing:
            self._failing = False
            self._log.info("gateway_history_readable", store=self._describe())
        return HistorySnapshot(view, self._alert_states(self._store))

    def _alert_states(self, store: Store) -> dict[str, str] | None:
        """Each target's alert state from the alert state document; None when there is none or it cannot be
        read (the status routes still answer: alert state is one line of /metrics, not the page)."""
        try:
            doc = store.load()
        except Exception as exc:
            self._log.warning("gateway_alert_state_unreadable", store=store.describe(), error=logs.redact(exc))
            return None
        targets: Any = (doc or {}).get("targets")
        if not isinstance(targets, dict):
            return None
        return {
            name: state["state"]
            for name, state in targets.items()
            if isinstance(name, str) and isinstance(state, dict) and isinstance(state.get("state"), str)
        }

    def _open(self) -> Store:
        if self._opener is not None:
            return self._opener(self._settings)
        from shared.state.settings import open_store

        return open_store(self._settings)

    def _describe(self) -> str:
        return self._store.describe() if self._store is not None else f"{self._settings.backend} store"
