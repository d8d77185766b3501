"""What the latest probe round said about each target, for skipping a down target in a model's route list.

Read from the alert state document (the probe function writes it after every round) without the
lease, at most once per `ttl_s` and in a background thread, so a request never waits for NAS or OSS.
Only a fresh, readable "down" counts: no alerts config, no document, an unreadable store, a damaged
document or one of another `version`, or a verdict older than `stale_after_s` all mean "not down" —
stale state must never refuse traffic. Reading is all it does: a damaged document stays where it
is for the probe's alert step, which holds the lease, to set aside and rebuild.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.state.document import VERSION
from shared.verdict.result import epoch_of
from shared.verdict.status import Status

if TYPE_CHECKING:
    from shared.config.load import Config
    from shared.state.settings import StoreSettings
    from shared.state.store import Store

STALE_AFTER_S = 300.0  # five missed rounds of the minutely probe timer


class ProbeHealth:
    """The targets the latest probe round found down, cached; cheap and synchronous to ask."""

    def __init__(
        self,
        config: Config,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        store_opener: Callable[[StoreSettings], Store] | None = None,
        wall_clock: Callable[[], float] = time.time,
        stale_after_s: float = STALE_AFTER_S,
        background: bool = True,
    ) -> None:
        self._settings = config.alerts.store if config.alerts is not None else None
        self._ttl_s = ttl_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._stale_after_s = stale_after_s
        self._background = background
        self._opener = store_opener
        self._store: Store | None = None
        self._down: frozenset[str] = frozenset()
        self._due = float("-inf")  # clock time of the next refresh
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._failing = False  # the last refresh failed (logged once per run of failures)
        self._log = logs.get_logger("vpcprobe.gateway")

    def is_down(self, target: str) -> bool:
        """Whether the latest fresh probe verdict on `target` is down; starts a refresh when due."""
        if self._settings is None:
            return False
        now = self._clock()
        if now >= self._due:
            with self._lock:
                if now >= self._due:
                    self._due = now + self._ttl_s
                    self._start_refresh()
        return target in self._down

    def refresh(self) -> None:
        """Read the state document now (in the caller's thread); any failure means nothing is down."""
        try:
            if self._store is None:
                self._store = self._open()
            doc = self._store.load()
            self._down = frozenset(self._down_targets(doc or {}))
            if self._failing:
                self._failing = False
                self._log.info("gateway_probe_state_readable", store=self._store.describe())
        except Exception as exc:  # any failure: never refuse traffic over the state store
            self._down = frozenset()
            if not self._failing:
                self._failing = True
                self._log.warning(
                    "gateway_probe_state_unreadable",
                    error=logs.redact(exc),
                    effect="no target is skipped as down until the state store is readable again",
                )

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for a background refresh in flight (tests, shutdown)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout_s)

    def _start_refresh(self) -> None:
        if not self._background:
            self.refresh()
            return
        if self._refreshing is not None and self._refreshing.is_alive():
            return
        self._refreshing = threading.Thread(target=self.refresh, name="vpcprobe-probe-state", daemon=True)
        self._refreshing.start()

    def _open(self) -> Store:
        assert self._settings is not None
        if self._opener is not None:
            return self._opener(self._settings)
        from shared.state.settings import open_store  # the store's backend loads with the first refresh

        return open_store(self._settings)

    def _down_targets(self, doc: dict[str, Any]) -> list[str]:
        targets = doc.get("targets")
        if doc.get("version") != VERSION or not isinstance(targets, dict):
            return []
        oldest = self._wall_clock() - self._stale_after_s
        down = []
        for name, state in targets.items():
            if not isinstance(state, dict) or state.get("status") != Status.DOWN.value:
                continue
            checked = epoch_of(state.get("last_checked"))
            if checked is not None and checked >= oldest:
                down.append(name)
        return down

