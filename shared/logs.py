"""Structured JSON logs to stdout (FC ships stdout to SLS; the command line: stderr), every secret redacted.

Redaction works two ways: by field name (authorization, token, secret, ...) and by value — every
secret vpcprobe resolves is registered here, so it is masked wherever it turns up, even inside
an upstream's error text.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import quote, quote_plus

import structlog

MASK = "***"
_SECRET_KEYS = re.compile(
    r"(authorization|api[-_]?key|token|secret|password|passwd|signature|^sign$|credential|cookie)", re.I
)
# Help text names what to send with a placeholder ("Authorization: Bearer <gateway key>"): lower-case words
# in angle brackets are left alone, so the hint reaches the caller; a real key has digits or capitals.
_PLACEHOLDER = r"(?-i:<[a-z][a-z _-]{0,38}>)"
_AUTH_SCHEMES = r"(?:bearer|basic|digest|token|apikey)"
_PATTERNS = [
    (re.compile(rf"(?i)\b(bearer)\s+(?!{_PLACEHOLDER})[^\s\"',;]+"), r"\1 " + MASK),
    (re.compile(r"(?i)([?&](?:access_token|sign|token|signature|key)=)[^&\s\"']+"), r"\1" + MASK),
    # The whole value: a scheme word is kept, the credential after it masked (`Basic dXNl...` too).
    (
        re.compile(
            rf"(?i)(\"?authorization\"?\s*[:=]\s*\"?)(?!{_AUTH_SCHEMES}\s+{_PLACEHOLDER})"
            rf"({_AUTH_SCHEMES}\s+)?(?!{_PLACEHOLDER})[^\"\s,}}]+"
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + MASK),
    # STS tokens in SDK request dumps: x-acs-security-token / x-fc-security-token headers, SecurityToken=.
    (re.compile(r"(?i)((?:x-(?:acs|fc)-security-token|securitytoken)['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+"),
     r"\1" + MASK),
]
# One scan says whether any pattern could apply: most log values match none, and a gateway writes a line
# per request, so the common case costs one regex search instead of one per pattern.
_ANY_PATTERN = re.compile("|".join(f"(?:{p.pattern.removeprefix('(?i)')})" for p, _ in _PATTERNS), re.I)
_known: set[str] = set()  # every registered value, as registered (the fast path: already known?)
_forms: set[str] = set()  # every form of every known secret (exact, URL-encoded, base64, JSON, hex, AUTH PLAIN)
_known_re: re.Pattern[str] | None = None  # all forms as one trie-shaped alternation, longest match first
_lock = threading.Lock()
# A base64 core this short would mask innocent text (4 chars are one group of any 3 bytes).
_MIN_CORE = 8


def _base64_forms(data: bytes) -> set[str]:
    """The secret's bytes in base64, std and urlsafe, padded and not, and at each of the three byte
    alignments it can have inside a longer encoded text (an Authorization: Basic value, an AUTH PLAIN
    blob, a JSON document): there its first and last bytes share characters with their neighbours,
    so the stable part is the encoding of the bytes from its first 3-byte boundary to its last."""
    cores = [data]  # the whole encoding, padding and all: the secret encoded on its own
    for shift in range(3):
        core = data[shift:]
        cores.append(core[: len(core) - len(core) % 3])
    out: set[str] = set()
    for core in cores:
        std = base64.b64encode(core).decode()
        for text in (std, std.rstrip("="), std.translate(_URLSAFE), std.translate(_URLSAFE).rstrip("=")):
            if len(text.rstrip("=")) >= _MIN_CORE or (core is data and len(text) >= 4):
                out.add(text)
    return out


_URLSAFE = str.maketrans("+/", "-_")


def _percent_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def secret_forms(value: str) -> set[str]:
    """Every form in which a secret is found in text that quotes it: exact; URL-encoded (quote, with and
    without '/' safe, quote_plus, lower-case escapes); JSON-escaped (ASCII or not, '/' escaped or not);
    base64 (std and urlsafe, padded or not, three alignments); hex (a bytes dump). Forms under 4
    characters are left out (they would mask innocent text)."""
    data = value.encode("utf-8", "surrogatepass")
    # quote the bytes: a lone surrogate (os.environ's stand-in for a byte that is not UTF-8) can't be str-quoted
    forms = {value, quote(data, safe=""), quote(data), quote_plus(data)}
    forms |= {_percent_lower(f) for f in list(forms)}
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    forms |= _base64_forms(data)
    if len(data) >= _MIN_CORE // 2:
        forms |= {data.hex(), data.hex().upper()}
    return {f for f in forms if len(f) >= 4}


def _trie_pattern(words: set[str]) -> str:
    """One regex for many literals, shaped as a trie: at each position the engine tries one branch per
    distinct next character instead of one per word (the Aho-Corasick idea, in `re`). A word that is a
    prefix of another ends in an optional group, so the longest form wins."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        run = []  # a chain of single-child nodes is one literal run, walked without recursing
        while len(node) == 1 and "" not in node:
            (ch, node), = node.items()
            run.append(re.escape(ch))
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return "".join(run)
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "".join(run) + (f"(?:{body})?" if ends else body)

    return build(trie)


def _add_forms(forms: set[str]) -> None:
    global _known_re
    with _lock:
        if forms <= _forms:
            return
        _forms.update(forms)
        _known_re = re.compile(_trie_pattern(_forms))


def register_secret(value: str | None) -> None:
    """Remember a resolved secret so that any later occurrence in any text, in any of the forms of
    `secret_forms`, is masked; the forms are computed here, once, not on every log line."""
    if not value or value in _known:
        return
    stripped = value.strip()
    if len(stripped) < 4:
        return
    forms: set[str] = set()
    for v in {value, stripped}:
        forms |= secret_forms(v) if len(v) >= 4 else set()
    _known.add(value)
    _add_forms(forms)


def register_login(username: str, password: str | None) -> None:
    """An SMTP login: besides the password, mask the AUTH PLAIN blob smtplib sends (base64 of
    "\\0user\\0password", which an SMTP reply may quote back), at any alignment."""
    if not password:
        return
    register_secret(password)
    key = f"login:{username}\0{password}"
    if key in _known:
        return
    forms: set[str] = set()
    for blob in (f"\0{username}\0{password}", f"{username}\0{username}\0{password}"):
        forms |= _base64_forms(blob.encode("utf-8", "surrogatepass"))
    _known.add(key)
    _add_forms({f for f in forms if len(f) >= _MIN_CORE})


def redact_text(text: str) -> str:
    known = _known_re
    short = len(text) <= _REDACTED_CACHE_CHARS
    if short:
        hit = _redacted.get(text)
        if hit is not None and hit[0] is known:
            return hit[1]
    clean = text
    if known is not None:
        clean = known.sub(MASK, clean)
    if _ANY_PATTERN.search(clean):
        for pattern, repl in _PATTERNS:
            clean = pattern.sub(repl, clean)
    if short:
        if len(_redacted) >= _REDACTED_CACHE_SIZE:
            _redacted.clear()
        _redacted[text] = (known, clean)
    return clean


# A gateway logs the same few short texts (paths, models) on every request: their redacted forms are kept,
# each with the pattern of known secrets it was made with, so a secret registered later is never missed.
_REDACTED_CACHE_CHARS = 256
_REDACTED_CACHE_SIZE = 1024
_redacted: dict[str, tuple[re.Pattern[str] | None, str]] = {}


@functools.lru_cache(maxsize=1024)
def _secret_named(key: str) -> bool:
    """Whether a field's name says it holds a secret (log lines reuse a few names: cached)."""
    return bool(_SECRET_KEYS.search(key))


_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def redact(value: Any, key: str = "") -> Any:
    """Redact a log value recursively: secret-named fields entirely, other strings by pattern."""
    kind = type(value)
    if kind in _PLAIN_TYPES:  # the common values of a line per request, without the isinstance chain below
        return value
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


class _StderrAtWriteTime:
    """sys.stderr as it is when a line is written (a redirect, a test's capture), not as it was when
    logging was configured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# The command line's log stream: its stdout is the command's output (`check --json` is JSON lines of
# results only), so a log line, e.g. a probe crash, goes beside it on stderr.
STDERR = _StderrAtWriteTime()

_configured = False
_stream: Any = None


def configure(stream: Any = None) -> Any:
    """JSON lines on stdout (or `stream`, e.g. STDERR); idempotent, so every entry point can call it.
    Returns the stream it replaces, so a caller can put it back.

    `configure(stream=None)` after a custom stream goes back to stdout.
    """
    global _configured, _stream
    previous = _stream
    if _configured and stream is _stream:
        return previous
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
    return previous


def get_logger(name: str = "vpcprobe") -> Any:
    if not _configured:
        configure()
    return structlog.get_logger(name)


_printer: tuple[Any, Any] = (None, None)  # (the stream it writes to, structlog's PrintLogger for it)


_encoder = json.JSONEncoder(default=repr)  # structlog's JSONRenderer output: json.dumps defaults, repr fallback


def _json_line(line: dict[str, Any]) -> str:
    """The line as JSON: orjson (a tenth of the json module's cost, on a line per request), or the json module
    for what orjson refuses: lone surrogates (os.environ's stand-ins for bytes that are not UTF-8), integers
    over 64 bits."""
    import orjson  # only the gateway writes lines this way: the probe function's cold start does without it

    try:
        return orjson.dumps(line, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encoder.encode(line)


_second: tuple[int, str] = (-1, "")  # (a UTC second, its ISO text up to the seconds)


def _timestamp() -> str:
    """Now in UTC as structlog's TimeStamper(fmt="iso", utc=True) writes it, with a Z; the date and time of
    day are formatted once per second (a line per request)."""
    global _second
    now = time.time()
    second = int(now)
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int((now - second) * 1e6):06d}Z"


def write_event(event: str, fields: dict[str, Any], level: str = "info", *, verbatim: Collection[str] = ()) -> None:
    """One log line as a configured logger writes it (the fields, then event, context variables, level,
    timestamp; values redacted), without structlog's processor chain: for a line per request, where the
    chain costs several times the line itself. Same stream, same per-file write lock.

    Fields named in `verbatim` are written as given, unredacted: only for values the caller composed from its
    own constants and configuration (never a caller's input, never a secret); the rest go through `redact`."""
    global _printer
    if not _configured:
        configure()
    line = {k: v if k in verbatim else redact(v, k) for k, v in fields.items()}
    line["event"] = event  # the caller's constant name
    for k, v in structlog.contextvars.get_contextvars().items():
        line.setdefault(k, redact(v, k))
    line["level"] = level
    line["timestamp"] = _timestamp()
    stream, printer = _printer
    if printer is None or stream is not _stream:
        stream, printer = _printer = (_stream, structlog.PrintLogger(_stream))
    printer.msg(_json_line(line))
