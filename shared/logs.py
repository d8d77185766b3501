"""Structured JSON logs to stdout (FC ships stdout to SLS), with every secret redacted.

Redaction works two ways: by field name (authorization, token, secret, ...) and by value — every
secret vpcprobe resolves is registered here, so it is masked wherever it turns up, even inside
an upstream's error text.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

import structlog

MASK = "***"
_SECRET_KEYS = re.compile(
    r"(authorization|api[-_]?key|token|secret|password|passwd|signature|^sign$|credential|cookie)", re.I
)
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), r"\1 " + MASK),
    (re.compile(r"(?i)([?&](?:access_token|sign|token|signature|key)=)[^&\s\"']+"), r"\1" + MASK),
    (re.compile(r"(?i)(\"?authorization\"?\s*[:=]\s*\"?)[^\"\s,}]+"), r"\1" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + MASK),
    # STS tokens in SDK request dumps: x-acs-security-token / x-fc-security-token headers, SecurityToken=.
    (re.compile(r"(?i)((?:x-(?:acs|fc)-security-token|securitytoken)['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+"),
     r"\1" + MASK),
]
# One scan says whether any pattern could apply: most log values match none, and a gateway writes a line
# per request, so the common case costs one regex search instead of one per pattern.
_ANY_PATTERN = re.compile("|".join(f"(?:{p.pattern.removeprefix('(?i)')})" for p, _ in _PATTERNS), re.I)
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None  # every known secret, longest first (a secret inside another)
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a resolved secret so that any later occurrence in any text is masked."""
    global _known_re
    if value and len(value) >= 4 and value not in _known:
        with _lock:
            _known.add(value)
            _known_re = re.compile("|".join(re.escape(s) for s in sorted(_known, key=len, reverse=True)))


def redact_text(text: str) -> str:
    known = _known_re
    if known is not None:
        text = known.sub(MASK, text)
    if _ANY_PATTERN.search(text):
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
    return text


@functools.lru_cache(maxsize=1024)
def _secret_named(key: str) -> bool:
    """Whether a field's name says it holds a secret (log lines reuse a few names: cached)."""
    return bool(_SECRET_KEYS.search(key))


def redact(value: Any, key: str = "") -> Any:
    """Redact a log value recursively: secret-named fields entirely, other strings by pattern."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if key and isinstance(value, (str, bytes)) and value and _secret_named(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


class _RedactFilter(logging.Filter):
    """Redacts stdlib log records: fc2 logs its request headers (the STS token too) on every error, and
    httpx logs every request URL (a DingTalk webhook URL carries the robot's token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        clean = redact_text(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def guard_stdlib_logging(*loggers: str) -> None:
    """Redact what libraries log through `logging`: the root logger and its handlers, plus the named
    loggers themselves (a filter on root does not see records its children propagate); idempotent."""
    root = logging.getLogger()
    for holder in (root, *root.handlers, *(logging.getLogger(name) for name in loggers)):
        if not any(isinstance(f, _RedactFilter) for f in holder.filters):
            holder.addFilter(_RedactFilter())


def _redact_processor(_logger: Any, _name: str, event_dict: dict) -> dict:
    return {k: redact(v, k) for k, v in event_dict.items()}


_configured = False
_stream: Any = None


def configure(stream: Any = None) -> None:
    """JSON lines on stdout (or `stream`); idempotent, so every entry point can call it.

    `configure(stream=None)` after a custom stream goes back to stdout.
    """
    global _configured, _stream
    if _configured and stream is _stream:
        return
    _stream = stream
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream) if stream else structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str = "vpcprobe") -> Any:
    if not _configured:
        configure()
    return structlog.get_logger(name)
