"""Who is calling: gateway keys checked in constant time, and each key's requests-per-minute limit.

Keys are references (env:, kms:) resolved through the TokenProvider like every credential, so a
rotated KMS secret is picked up when its cached value expires. The presented key is compared with
every configured key, digests of equal length through hmac.compare_digest, with no early exit:
neither which key matched nor how long a prefix was right shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from shared import logs
from shared.credentials.provider import TokenProvider
from shared.errors import VpcprobeError
from shared.gateway.errors import ErrorType, GatewayError
from shared.gateway.settings import GatewayKey

WINDOW_S = 60.0  # rpm: requests in any sliding 60-second window
_BEARER = "bearer "


class KeyRing:
    """The configured gateway keys of one gateway instance (rate limits are per instance too)."""

    def __init__(
        self, keys: Sequence[GatewayKey], tokens: TokenProvider, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keys = tuple(keys)
        self._tokens = tokens
        self._clock = clock
        self._digests: dict[str, bytes] = {}  # key value -> its digest (values change only on rotation)
        self._unavailable: set[str] = set()  # key names whose reference failed, logged once until it recovers
        self._recent: dict[str, deque[float]] = {}  # key name -> times of its requests in the window
        self._log = logs.get_logger("vpcprobe.gateway")

    async def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> GatewayKey:
        """The key the caller presented: `Authorization: Bearer <key>` (OpenAI, DashScope SDKs) or the raw
        key (EAS style). Only Authorization is read; `api_key_header` is accepted and ignored, so that a
        key never travels in a second header the forwarding rules would have to strip."""
        presented = _presented_key(authorization)
        if not presented:
            raise GatewayError(
                401,
                ErrorType.AUTHENTICATION,
                "missing_api_key",
                "no API key: send 'Authorization: Bearer <gateway key>' (or the raw key, EAS style)",
            )
        wanted = _digest(presented)
        match: GatewayKey | None = None
        resolved = 0
        for key in self._keys:
            digest = await self._key_digest(key)
            if digest is None:
                continue
            resolved += 1
            if hmac.compare_digest(wanted, digest) and match is None:
                match = key
        if match is not None:
            return match
        if self._keys and not resolved:
            raise GatewayError(
                503,
                ErrorType.SERVER,
                "gateway_keys_unavailable",
                "none of the gateway's keys could be resolved; the gateway's log names them",
            )
        raise GatewayError(401, ErrorType.AUTHENTICATION, "invalid_api_key", "the API key is not a gateway key")

    def check_rate(self, key: GatewayKey) -> None:
        """Count a request of `key`; raise 429 with Retry-After when it made `rpm` in the last minute.

        Per gateway instance: FC runs several instances under load, each with its own window."""
        if key.rpm is None:
            return
        now = self._clock()
        recent = self._recent.setdefault(key.name, deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        if len(recent) >= key.rpm:
            retry_after = max(1, math.ceil(recent[0] + WINDOW_S - now))
            raise GatewayError(
                429,
                ErrorType.RATE_LIMIT,
                "rate_limited",
                f"key '{key.name}' is limited to {key.rpm} requests per minute (per gateway instance); "
                f"retry after {retry_after}s",
                headers={"Retry-After": str(retry_after)},
            )
        recent.append(now)

    @staticmethod
    def allows_target(key: GatewayKey, target: str) -> bool:
        """Whether `key` may call `target` (the same as key.allows_target)."""
        return key.allows_target(target)

    @staticmethod
    def allows_model(key: GatewayKey, model: str) -> bool:
        """Whether `key` may use `model` of the OpenAI base URL (the same as key.allows_model)."""
        return key.allows_model(model)

    async def _key_digest(self, key: GatewayKey) -> bytes | None:
        """The digest of a key's current value; None (logged once) when its reference does not resolve."""
        try:
            resolved = self._tokens.at_hand(key.ref) or await self._tokens.resolve(key.ref)
            value = resolved.value.strip()
        except VpcprobeError as exc:
            self._unavailable_once(key, str(exc))
            return None
        if not value:
            self._unavailable_once(key, f"{key.ref} is empty")
            return None
        if key.name in self._unavailable:
            self._unavailable.discard(key.name)
            self._log.info("gateway_key_available", key_name=key.name, reference=str(key.ref))
        digest = self._digests.get(value)
        if digest is None:
            logs.register_secret(value)
            digest = self._digests[value] = _digest(value)
        return digest

    def _unavailable_once(self, key: GatewayKey, reason: str) -> None:
        if key.name not in self._unavailable:
            self._unavailable.add(key.name)
            self._log.error("gateway_key_unavailable", key_name=key.name, reference=str(key.ref), reason=reason)


def _presented_key(authorization: str | None) -> str:
    """The key in an Authorization header: after `Bearer ` (any case), else the whole value (EAS style)."""
    if authorization is None:
        return ""
    value = authorization.strip()
    if value[: len(_BEARER)].lower() == _BEARER:
        return value[len(_BEARER) :].strip()
    if value.lower() == _BEARER.strip():
        return ""
    return value


def _digest(value: str) -> bytes:
    """A fixed-length stand-in for a key, so comparing takes the same time whatever its length."""
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
