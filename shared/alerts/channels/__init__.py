"""Alert channels: small self-validating plugins behind one narrow interface.

A channel module (dingtalk.py, email.py, console.py) holds its config type, its validation
(`from_config`, reading its own `alerts.channels[...]` entry) and its `send`. Adding a channel is
one module plus one line in TYPES; the state machine and the delivery loop never see channel
details — they hand a channel a Message and get a Delivery back.
"""

from __future__ import annotations

import hashlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.alerts.policy import Notification
from shared.config.reader import Reader
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef, parse_ref

# type -> module; imported only when a config uses the type (keeps the handler's import light).
TYPES: dict[str, str] = {
    "dingtalk": "shared.alerts.channels.dingtalk",
    "email": "shared.alerts.channels.email",
    "console": "shared.alerts.channels.console",
}


@dataclass(frozen=True)
class Delivery:
    """A channel's answer. `ambiguous`: the message may have arrived (timeout after sending), so the
    same message (same id) is retried on the same channel instead of falling back to another one.
    `retry_after_s`: the channel asked for a pause (DingTalk's 10-minute throttle)."""

    ok: bool
    error: str | None = None
    ambiguous: bool = False
    retry_after_s: float | None = None
    detail: str | None = None  # e.g. "truncated 12 entries", for the log line


@dataclass(frozen=True)
class Message:
    """Everything one channel sends in one round: one message, however many notifications."""

    id: str  # stable for the same set of notifications: DingTalk msgUuid, email Message-ID
    notifications: tuple[Notification, ...]
    now: datetime
    status_page_url: str | None = None
    timezone: str = "UTC"

    @staticmethod
    def id_for(notifications: Sequence[Notification]) -> str:
        return hashlib.sha256("|".join(sorted(n.id for n in notifications)).encode()).hexdigest()[:32]


class Channel(ABC):
    """The interface: a name, whether it sends recoveries, an optional rate limit, and send()."""

    name: str
    send_resolved: bool = True
    # (messages, per seconds): the delivery loop keeps sends under it, across rounds and instances.
    rate_limit: tuple[int, float] | None = None

    @abstractmethod
    async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
        """Deliver one message; never raises for delivery problems, and never puts a secret in an error."""


def parse_channel(r: Reader) -> Channel | None:
    """Validate one `alerts.channels[]` entry through its type's module; None after recording problems."""
    name = r.str("name", required=True)
    if name is not None:
        r.path = f"{r.path.rsplit('[', 1)[0]}[{name}]"
    kind = r.choice("type", tuple(TYPES), None)
    if kind is None:
        if "type" not in r.data:
            r.error(f"is required: one of {', '.join(TYPES)}", "type")
        r.seen.update(r.data)  # the type decides which fields exist; don't report them as unknown
        return None
    module: Any = importlib.import_module(TYPES[kind])
    channel = module.from_config(r, name or "?")
    r.finish()
    return channel


# --- field helpers shared by channel modules ---------------------------------------------------------


def read_ref(r: Reader, key: str, *, required: bool) -> CredentialRef | None:
    """A secret by reference (env:/kms:); inline values are refused, and never echoed in the error."""
    value = r.get(key)
    if value is None:
        if required:
            r.error("is required: a reference such as env:NAME or kms:SECRET_NAME (never the secret itself)", key)
        return None
    try:
        ref = parse_ref(value)
    except ValueError as exc:
        r.error(str(exc), key)
        return None
    if ref.scheme == "eas":
        r.error("eas: references name EAS service tokens; use env:NAME or kms:SECRET_NAME here", key)
        return None
    return ref


def read_str_list(r: Reader, key: str) -> tuple[str, ...]:
    """A string or a list of strings (numbers accepted: YAML reads 13800000000 as an int)."""
    value = r.get(key)
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip() for v in items):
        r.error("must be a string or a list of strings", key)
        return ()
    return tuple(str(v).strip() for v in items)


def read_url(r: Reader, key: str, default: str) -> str:
    value = r.str(key, default) or default
    if "?" in value:  # checked first: never echo a URL that may carry a token
        r.error("must not carry a query string: give the token as access_token (a reference), not in the URL", key)
    elif "@" in value.partition("://")[2].partition("/")[0]:  # user:password@ would reach error messages
        r.error("must not carry user:password@: the channel authenticates with its own references", key)
    elif not value.startswith(("https://", "http://")):
        r.error(f"must be an http(s):// URL (got '{value}')", key)
    return value
