"""The provider that turns credential references into secret values, with the warm instance's cache.

The value is fetched at run time and registered with the log redactor so it can never be printed.
`kms:` and `eas:` values are cached in the warm FC instance for a TTL; a 401 upstream invalidates
them (see Prober), and concurrent callers of one round share one fetch. The control-plane calls
themselves are shared/credentials/control_plane.py, loaded on the first `kms:` / `eas:` fetch.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.credentials.errors import CloudError, CredentialError
from shared.credentials.refs import CredentialRef
from shared.credentials.settings import CloudSettings
from shared.credentials.values import usable_value

if TYPE_CHECKING:  # the control plane loads on the first kms:/eas: fetch: an env:-only round never imports it
    from shared.credentials.control_plane import ControlPlane, EasService


class Resolved:
    """A resolved credential: the value, and for `eas:` what DescribeService said about the service."""

    __slots__ = ("value", "fetched_at", "eas")

    def __init__(self, value: str, fetched_at: float = 0.0, eas: EasService | None = None) -> None:
        self.value = value
        self.fetched_at = fetched_at  # the provider's clock at the fetch; 0 for env: values
        self.eas = eas

    def __repr__(self) -> str:  # never show the value
        return f"Resolved(value=***, fetched_at={self.fetched_at:.3f}, eas={self.eas!r})"


class TokenProvider:
    """Resolves references to secret values; one per process, shared by probes and alert channels.

    `kms:` / `eas:` values are cached for `cloud.cache_ttl` (default 5 minutes): a round every
    minute then costs one control-plane call per reference every five rounds, and a rotated
    secret is still picked up at once because a 401 invalidates the cached value.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        cloud: CloudSettings | None = None,
        *,
        plane: ControlPlane | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environ = environ if environ is not None else os.environ
        self._cloud = cloud if cloud is not None else CloudSettings()
        self._plane = plane
        self._clock = clock
        self._context: Any = None
        self._cache: dict[CredentialRef, Resolved] = {}
        self._env_seen: dict[CredentialRef, tuple[str, Resolved]] = {}  # env: ref -> (raw value, what it gave)
        self._inflight: dict[CredentialRef, tuple[asyncio.AbstractEventLoop, asyncio.Future[Resolved]]] = {}
        self._lock = threading.Lock()

    def configure(self, cloud: CloudSettings) -> None:
        """Adopt a (re)loaded config's cloud settings; cached values are dropped when they change."""
        if cloud != self._cloud:
            with self._lock:
                self._cloud = cloud
                self._cache.clear()
                if self._plane is not None:
                    self._plane.settings = cloud

    def set_context(self, context: Any) -> None:
        """The FC invocation context: python3.10 passes fresh role credentials in context.credentials."""
        self._context = context
        if self._plane is not None:
            self._plane.context = context

    def now(self) -> float:
        """The provider's clock (monotonic): compare with Resolved.fetched_at."""
        return self._clock()

    def fetch_budget_s(self, ref: CredentialRef) -> float:
        """How long resolving `ref` may take (0 for env:), so callers can widen their deadlines."""
        return 0.0 if ref.scheme == "env" else self._cloud.fetch_budget_s()

    async def get(self, ref: CredentialRef) -> str:
        """The secret value behind a reference."""
        return (await self.resolve(ref)).value

    def at_hand(self, ref: CredentialRef) -> Resolved | None:
        """The value when it needs no waiting: an env: value already checked (the variable is read now, so a
        change counts at once), or a cached kms:/eas: value still fresh; else None (`resolve` it). The gateway
        asks this first on every request, without a coroutine per reference."""
        if ref.scheme == "env":
            known = self._env_seen.get(ref)
            return known[1] if known is not None and known[0] == self._environ.get(ref.name) else None
        with self._lock:
            entry = self._cache.get(ref)
        if entry is not None and self._clock() - entry.fetched_at < self._cloud.cache_ttl_s:
            return entry
        return None

    async def resolve(self, ref: CredentialRef) -> Resolved:
        """The value (and EAS service state), from the cache while fresh, else one shared fetch."""
        ready = self.at_hand(ref)
        if ready is not None:
            return ready
        if ref.scheme == "env":
            value = self._environ.get(ref.name)
            if not value:
                raise CredentialError(f"{ref}: environment variable {ref.name} is not set")
            logs.register_secret(value)
            resolved = Resolved(usable_value(ref, value))
            self._env_seen[ref] = (value, resolved)
            return resolved
        loop = asyncio.get_running_loop()
        with self._lock:
            pending = self._inflight.get(ref)
            if pending is None or pending[0] is not loop or pending[1].done():
                future: asyncio.Future[Resolved] = loop.create_task(self._fetch(ref))
                future.add_done_callback(lambda f, r=ref: self._fetched(r, f))
                self._inflight[ref] = (loop, future)
            else:
                future = pending[1]
        budget = self.fetch_budget_s(ref)
        try:
            # shield: one caller's deadline must not cancel the fetch the others wait for.
            return await asyncio.wait_for(asyncio.shield(future), timeout=budget)
        except asyncio.TimeoutError:
            raise CredentialError(f"{ref}: no answer from the control plane within {budget:.0f}s") from None

    def invalidate(self, ref: CredentialRef, value: str | None = None) -> bool:
        """Forget a cached value (after a 401) so the next get fetches a fresh one.

        With `value`, only if the cache still holds that value: when several probes see the same
        401, the first one's refetch is not thrown away by the others.
        """
        with self._lock:
            entry = self._cache.get(ref)
            if entry is None or (value is not None and entry.value != value):
                return False
            del self._cache[ref]
            return True

    def _control_plane(self) -> ControlPlane:
        """The control-plane client, created on first use (cheap: the SDKs load on first call)."""
        if self._plane is None:
            from shared.credentials.control_plane import ControlPlane

            self._plane = ControlPlane(self._cloud, self._environ)
        self._plane.context = self._context
        return self._plane

    async def _fetch(self, ref: CredentialRef) -> Resolved:
        plane = self._control_plane()
        try:
            if ref.scheme == "kms":
                value = await asyncio.to_thread(plane.get_secret_value, ref.name, ref.stage)
                resolved = Resolved(usable_value(ref, value), self._clock())
            elif ref.scheme == "eas":
                assert ref.region is not None
                service, token = await asyncio.to_thread(plane.describe_service, ref.region, ref.name)
                resolved = Resolved(usable_value(ref, token), self._clock(), service)
            else:
                raise CredentialError(f"{ref}: unknown reference scheme")
        except CloudError as exc:
            raise CredentialError(f"{ref}: {exc}") from None
        with self._lock:
            self._cache[ref] = resolved
        return resolved

    def _fetched(self, ref: CredentialRef, future: asyncio.Future[Resolved]) -> None:
        with self._lock:
            if self._inflight.get(ref, (None, None))[1] is future:
                del self._inflight[ref]
        if not future.cancelled():
            future.exception()  # retrieved here, so an error nobody awaited is not reported as lost


_shared: TokenProvider | None = None


def shared_provider() -> TokenProvider:
    """The process-wide provider (the warm FC instance's cache), for probes and alert channels alike."""
    global _shared
    if _shared is None:
        _shared = TokenProvider()
    return _shared
