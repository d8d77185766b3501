"""The simulator: a local stand-in for Alibaba Cloud Model Studio (DashScope) and the PAI-EAS gateway.

Why it exists: the product's ``--demo`` mode and the test suite must probe a *real* HTTP server (real sockets,
real TLS, real timing) without cloud accounts. The simulator answers DashScope's native and OpenAI-compatible
routes and the EAS gateway (``/api/predict/<service>[/...]``, a vLLM OpenAI server behind it) with the
documented bodies, and lets callers inject faults (latency, error statuses, TCP resets, stalls, slow or broken
streams) per route, method and listen address. aiohttp runs on its own event loop in a daemon thread, so both
synchronous and async callers can start it::

    with Simulator(hosts=("127.0.0.2", "127.0.0.3")) as sim:
        sim.inject(Fault(route="/compatible-mode/v1/*", status=429, times=1))
        auth = {"Authorization": "Bearer sk-good"}
        httpx.get(sim.url("127.0.0.2") + "/compatible-mode/v1/models", headers=auth)

Another process can drive it over HTTP on any listen address: ``POST /_sim/faults`` (JSON of Fault fields)
-> ``{"id": ...}``, ``GET /_sim/faults``, ``DELETE /_sim/faults`` (all), ``DELETE /_sim/faults/{id}``,
``GET /_sim/requests``. Admin routes need no auth, are never faulted and are not recorded (``received``
counts every request that reached the server, admin ones too, so a test can tell that nothing arrived;
a record's ``seq`` is that count at its arrival).
Each recorded streaming answer carries ``frames`` (SSE frames written); a client that goes away mid-answer
leaves ``outcome: "disconnected"``, which is how a proxy's cancellation of the upstream shows.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import fnmatch
import hashlib
import hmac
import itertools
import json
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from http import HTTPStatus
from typing import Any

import trustme
from aiohttp import web

__all__ = ["DASHSCOPE_MODELS", "EAS_MAX_BODY", "EAS_MODEL", "EMBEDDING_MODELS", "REPLY_TEXT", "Fault", "Simulator"]

log = logging.getLogger(__name__)

DASHSCOPE_MODELS = ("qwen-flash", "qwen-turbo", "qwen-plus", "qwen-max", "qwen3-max")
EAS_MODEL = "DeepSeek-R1-Distill-Qwen-7B"
# Compatible-mode embedding models -> default dimensions (not in the chat models list, as on Model Studio).
EMBEDDING_MODELS = {"text-embedding-v3": 1024, "text-embedding-v4": 1024}
EMBEDDING_MAX_INPUTS = 10
# The assistant's reply; one "token" per word (the first bare, the rest with a leading space).
REPLY_TEXT = "Hello from the simulator. This is a short deterministic reply for probes."
EAS_MAX_BODY = 1024 * 1024  # the EAS gateway rejects bigger request bodies with 413
DASHSCOPE_MAX_BODY = 16 * 1024 * 1024  # not documented; only bounds the simulator's memory
MAX_RECORDED = 1000
EAS_STATES = ("running", "unready", "absent")
NATIVE_GENERATION = "/api/v1/services/aigc/text-generation/generation"

# status -> (native code, message); compatible mode uses _COMPAT_CODES for error.code.
_NATIVE_ERRORS = {
    400: ("InvalidParameter",
          "Required parameter(s) missing or invalid, please check the request parameters."),
    401: ("InvalidApiKey", "Invalid API-key provided."),
    403: ("AccessDenied", "Access denied."),
    404: ("ModelNotFound", "Model not found."),
    408: ("RequestTimeOut", "Request timed out, please try again later."),
    413: ("BadRequest.TooLarge", "Payload Too Large"),
    429: ("Throttling", "Requests throttling triggered."),
    500: ("InternalError",
          "An internal error has occured, please try again later or contact service support."),
    503: ("ModelUnavailable", "Model is unavailable, please try again later."),
}
_COMPAT_CODES = {
    400: "invalid_parameter_error",
    401: "invalid_api_key",
    403: "access_denied",
    404: "model_not_found",
    408: "request_timeout",
    413: "bad_request_too_large",
    429: "throttling",
    500: "internal_error",
    503: "model_unavailable",
}
_COMPAT_401 = "Incorrect API key provided. "
_EAS_TEXT = {
    401: "Unauthorized",
    404: "",
    408: "request timeout",
    413: "request entity too large",
    450: "queue full",
    503: "no healthy upstream",
}
_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}


@dataclass
class Fault:
    """One injected misbehaviour. Matching: fnmatch ``route`` on the path, ``method``, listen ``host``.

    Order of effects: ``latency_ms``, then ``reset`` / ``stall`` / ``status``; the ``stream_*`` fields shape
    streaming answers. ``times`` limits it to the next N matching requests.
    """

    route: str = "*"
    method: str | None = None
    host: str | None = None
    latency_ms: int = 0
    status: int | None = None
    reset: bool = False
    stall: bool = False
    stream_delay_ms: int = 0
    stream_stall_after: int | None = None
    stream_error: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        """Reject bad values early, since faults also arrive as JSON from other processes."""
        if not isinstance(self.route, str) or not self.route:
            raise ValueError("route must be a non-empty glob string")
        for name in ("method", "host"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string or null")
        if self.method is not None:
            self.method = self.method.upper()
        for name in ("reset", "stall", "stream_error"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a boolean")
        for name, low in (("latency_ms", 0), ("stream_delay_ms", 0)):
            if not _is_int(getattr(self, name)) or getattr(self, name) < low:
                raise ValueError(f"{name} must be an integer >= {low}")
        for name, low in (("status", 100), ("stream_stall_after", 0), ("times", 1)):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < low):
                raise ValueError(f"{name} must be null or an integer >= {low}")
        if self.status is not None and self.status > 999:
            raise ValueError("status must be <= 999")


@dataclass
class _Active:
    id: str
    fault: Fault
    remaining: int | None


@dataclass
class _Chat:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    incremental: bool = False
    result_format: str = "message"


@dataclass
class _Ctx:
    request: web.Request
    rec: dict[str, Any]
    body: bytes
    too_large: bool
    fault: Fault | None


_Listen = tuple[str, socket.socket, bool]  # (host, bound listening socket, is TLS)


class _Reset(Exception):
    """Raised after the connection was reset on purpose, so the dispatcher answers nothing."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _status_name(status: int) -> str:
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(obj: Any) -> bytes:
    """An OpenAI-style SSE frame (``data: ...`` with a space, as OpenAI and vLLM send it)."""
    return f"data: {obj if isinstance(obj, str) else _dumps(obj)}\n\n".encode()


def _native_frame(seq: int, obj: Any, event: str = "result", status: int = 200) -> bytes:
    """A DashScope native SSE frame: no space after the colons, status as an SSE comment."""
    return f"id:{seq}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{_dumps(obj)}\n\n".encode()


def _family(path: str) -> str:
    """Which error dialect a path speaks: "eas" (gateway), "compat" or "native" (DashScope)."""
    if path == "/api/predict" or path.startswith("/api/predict/"):
        return "eas"
    if path.startswith("/compatible-mode/"):
        return "compat"
    return "native"


def _error_response(
    family: str, status: int, code: str | None = None, message: str | None = None
) -> web.Response:
    """The documented error answer for ``status`` in a family: native, compat, vllm (JSON) or eas (text)."""
    if family == "eas":
        text = _EAS_TEXT.get(status, _phrase(status))
        return web.Response(status=status, text=text) if text else web.Response(status=status)
    ncode, nmsg = _NATIVE_ERRORS.get(status) or ("".join(p.title() for p in _status_name(status).split("_")),
                                                 _phrase(status))
    if family == "vllm":
        vtype = _VLLM_TYPES.get(status, _phrase(status).replace(" ", "") + "Error")
        return web.json_response(
            {"error": {"message": message or nmsg, "type": vtype, "param": None, "code": status}},
            status=status,
        )
    rid = str(uuid.uuid4())
    body: dict[str, Any]
    if family == "compat":
        ccode = code or _COMPAT_CODES.get(status) or _status_name(status).lower()
        ctype = "invalid_request_error" if status < 500 and status != 429 else ccode
        cmsg = message or (_COMPAT_401 if status == 401 else nmsg)
        body = {"error": {"message": cmsg, "type": ctype, "param": None, "code": ccode}, "request_id": rid}
    else:
        body = {"code": code or ncode, "message": message or nmsg, "request_id": rid}
    return web.json_response(body, status=status, headers={"X-Request-Id": rid})


def _parse_json(body: bytes) -> dict[str, Any] | str:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return "The request body is not valid JSON."
    return data if isinstance(data, dict) else "The request body must be a JSON object."


def _check_common(model: Any, messages: Any, max_tokens: Any) -> str | None:
    if not isinstance(model, str) or not model:
        return "Missing required parameter: 'model'."
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a non-empty list of message objects."
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        return "'max_tokens' must be a positive integer."
    return None


def _parse_openai(body: bytes) -> _Chat | str:
    """An OpenAI chat-completions request, or the 400 message explaining what is wrong."""
    data = _parse_json(body)
    if isinstance(data, str):
        return data
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    problem = _check_common(data.get("model"), data.get("messages"), max_tokens)
    if problem:
        return problem
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        return "'stream' must be a boolean."
    options = data.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return _Chat(data["model"], data["messages"], max_tokens, stream, include_usage)


def _parse_native(body: bytes, stream: bool) -> _Chat | str:
    """A DashScope native generation request (``input.messages`` or ``input.prompt``), or a 400 message."""
    data = _parse_json(body)
    if isinstance(data, str):
        return data
    inp = data.get("input")
    params = data.get("parameters") or {}
    if not isinstance(inp, dict) or not isinstance(params, dict):
        return "'input' must be an object with 'messages' (and 'parameters' an object)."
    messages = inp.get("messages")
    if messages is None and isinstance(inp.get("prompt"), str) and inp["prompt"]:
        messages = [{"role": "user", "content": inp["prompt"]}]
    problem = _check_common(data.get("model"), messages, params.get("max_tokens"))
    if problem:
        return problem.replace("'messages'", "'input.messages'")
    fmt = params.get("result_format", "message")
    if fmt not in ("message", "text"):
        return "'parameters.result_format' must be 'message' or 'text'."
    incremental = params.get("incremental_output", False)
    if not isinstance(incremental, bool):
        return "'parameters.incremental_output' must be a boolean."
    return _Chat(data["model"], messages, params.get("max_tokens"), stream, False, incremental, fmt)


@dataclass
class _Embed:
    model: str
    inputs: list[str]
    dimensions: int
    base64: bool


def _parse_embeddings(body: bytes) -> _Embed | str:
    """An OpenAI embeddings request (``input`` a string or a list of strings), or the 400 message."""
    data = _parse_json(body)
    if isinstance(data, str):
        return data
    model, inputs = data.get("model"), data.get("input")
    if not isinstance(model, str) or not model:
        return "Missing required parameter: 'model'."
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if (not isinstance(inputs, list) or not inputs or len(inputs) > EMBEDDING_MAX_INPUTS
            or not all(isinstance(i, str) and i for i in inputs)):
        return f"'input' must be a non-empty string or a list of 1 to {EMBEDDING_MAX_INPUTS} non-empty strings."
    dimensions = data.get("dimensions", EMBEDDING_MODELS.get(model, 1024))
    if not _is_int(dimensions) or not 1 <= dimensions <= 2048:
        return "'dimensions' must be an integer from 1 to 2048."
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return "'encoding_format' must be 'float' or 'base64'."
    return _Embed(model, inputs, dimensions, encoding == "base64")


def _embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for a text (the same text always embeds the same)."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    values = [int.from_bytes(raw[i:i + 2], "little") / 32767.5 - 1.0 for i in range(0, len(raw), 2)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]


def _count_words(messages: Iterable[dict[str, Any]]) -> int:
    """Prompt "tokens": words in the text content of all messages."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            total += sum(len(p["text"].split()) for p in content if isinstance(p, dict) and isinstance(
                p.get("text"), str))
    return total


def _reply(max_tokens: int | None) -> tuple[list[str], str]:
    """The reply's tokens and finish reason, cut at ``max_tokens`` ("length")."""
    words = REPLY_TEXT.split()
    finish = "stop"
    if max_tokens is not None and max_tokens < len(words):
        words, finish = words[:max_tokens], "length"
    return [w if i == 0 else " " + w for i, w in enumerate(words)], finish


def _eas_token_ok(header: str | None, token: str) -> bool:
    """EAS accepts the token raw or as ``Bearer <token>``."""
    if header is None:
        return False
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return hmac.compare_digest(value.encode(), token.encode())


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (SO_REUSEADDR so a downed host can come back on the same port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_all(hosts: tuple[str, ...], port: int) -> tuple[int, list[socket.socket]]:
    """Bind one port on every host; with port 0, retry until a port free on all of them is found."""
    for _ in range(50):
        socks: list[socket.socket] = []
        try:
            socks.append(_bind(hosts[0], port))
            chosen = socks[0].getsockname()[1]
            for host in hosts[1:]:
                socks.append(_bind(host, chosen))
            return chosen, socks
        except OSError:
            for sock in socks:
                sock.close()
            if port:
                raise
    raise OSError(f"no port free on all of {hosts}")


def _rst(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _read_body(request: web.Request, limit: int) -> tuple[bytes, int, bool]:
    """Read the body in chunks, giving up past ``limit``: (body, bytes seen, too large)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return b"", declared, True
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return b"", size, True
        chunks.append(chunk)
    return b"".join(chunks), size, False


class Simulator:
    """DashScope + EAS gateway on loopback addresses, with fault injection; see the module docs."""

    def __init__(
        self,
        hosts: Iterable[str] | str = ("127.0.0.1",),
        port: int = 0,
        tls_hostnames: Iterable[str] = (),
        region: str = "ap-southeast-1",
        api_keys: dict[str, str] | None = None,
        eas_services: dict[str, str] | None = None,
    ) -> None:
        # IP literals: requests are matched to host-scoped faults by the address they arrived on.
        self.hosts: tuple[str, ...] = tuple(dict.fromkeys((hosts,) if isinstance(hosts, str) else hosts))
        if not self.hosts:
            raise ValueError("at least one listen host is needed")
        self.tls_hostnames: tuple[str, ...] = tuple(tls_hostnames)
        self.region = region
        self.api_keys = dict({"sk-good": "ap-southeast-1", "sk-beijing": "cn-beijing"} if api_keys is None
                             else api_keys)
        self.port: int = port
        self.https_port: int | None = None
        self.ca_pem: bytes | None = None
        self.ca_path: str | None = None
        self._cond = threading.Condition()
        services = {"test": "eas-token-1"} if eas_services is None else eas_services
        self._services: dict[str, tuple[str, str]] = {n: (t, "running") for n, t in services.items()}
        self._faults: list[_Active] = []
        self._ids = itertools.count(1)
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
        self._inflight = 0
        self._received = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._sites: dict[str, list[web.BaseSite]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._stopped = False

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Simulator:
        """Bind every address, start the server thread and return once it is listening."""
        if self._thread is not None:
            if self._stopped:
                raise RuntimeError("a stopped Simulator cannot be restarted; create a new one")
            return self
        if self.tls_hostnames:
            self._ssl = self._make_tls()
        socks: list[_Listen] = []
        try:
            self.port, plain = _bind_all(self.hosts, self.port)
            socks += [(host, sock, False) for host, sock in zip(self.hosts, plain)]
            if self._ssl is not None:
                self.https_port, tls = _bind_all(self.hosts, 0)
                socks += [(host, sock, True) for host, sock in zip(self.hosts, tls)]
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._run, args=(ready, socks), name="simulator", daemon=True
            )
            self._thread.start()
            ready.result(timeout=30)
        except BaseException:
            for _, sock, _tls in socks:
                sock.close()
            self._stopped = True
            self._remove_ca()
            raise
        return self

    def stop(self) -> None:
        """Cancel in-flight (even stalled) requests, close every socket and join the thread. Idempotent."""
        with self._cond:
            if self._stopped or self._thread is None:
                self._stopped = True
                return
            self._stopped = True
        if threading.current_thread() is self._thread:
            raise RuntimeError("stop() must not be called from the simulator's own thread")
        loop = self._loop
        if loop is not None and loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            try:
                done.result(timeout=10)
            except Exception:  # keep stopping: the thread must not outlive stop()
                done.cancel()
                log.exception("simulator shutdown failed")
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        self._remove_ca()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Simulator:
        """Start without blocking the caller's event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    def url(self, host: str | None = None, https: bool = False) -> str:
        """Base URL on one listen address (the first by default)."""
        host = host or self.hosts[0]
        port = self.https_port if https else self.port
        if port is None:
            raise ValueError("this simulator serves no https (tls_hostnames is empty)")
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if https else 'http'}://{shown}:{port}"

    # ----------------------------------------------------------------- control (any thread)

    def inject(self, fault: Fault) -> str:
        """Activate a fault (thread-safe); returns its id for clear()."""
        if not isinstance(fault, Fault):
            raise TypeError("inject() takes a Fault")
        with self._cond:
            fid = f"fault-{next(self._ids)}"
            self._faults.append(_Active(fid, fault, fault.times))
        return fid

    def clear(self, fid: str | None = None) -> int:
        """Remove one fault by id, or all of them; returns how many were removed."""
        with self._cond:
            before = len(self._faults)
            self._faults = [] if fid is None else [a for a in self._faults if a.id != fid]
            return before - len(self._faults)

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Active faults with their id and remaining uses (for admin/debugging)."""
        with self._cond:
            return [{"id": a.id, **asdict(a.fault), "remaining": a.remaining} for a in self._faults]

    def set_eas_service(self, name: str, token: str | None = None, state: str = "running") -> None:
        """Add or change an EAS service at runtime; token None keeps the current one ("absent" = unknown)."""
        if state not in EAS_STATES:
            raise ValueError(f"state must be one of {EAS_STATES}")
        with self._cond:
            current = self._services.get(name)
            token = token if token is not None else (current[0] if current else None)
            if token is None:
                if state == "absent":
                    return
                raise ValueError(f"new EAS service {name!r} needs a token")
            self._services[name] = (token, state)

    def set_host_down(self, host: str, down: bool = True) -> None:
        """Stop (connection refused, open connections aborted) or resume listening on one address."""
        if host not in self.hosts:
            raise ValueError(f"{host!r} is not one of {self.hosts}")
        if self._loop is None or self._stopped:
            raise RuntimeError("the simulator is not running")
        asyncio.run_coroutine_threadsafe(self._set_host_down(host, down), self._loop).result(timeout=10)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copies of the last 1000 requests (admin routes excluded), oldest first; header names canonical."""
        with self._cond:
            return [dict(r, headers=dict(r["headers"])) for r in self._requests]

    @property
    def received(self) -> int:
        """Every HTTP request that reached the server since start, admin routes included."""
        with self._cond:
            return self._received

    @property
    def inflight(self) -> int:
        """Requests currently being handled (stalled ones included)."""
        with self._cond:
            return self._inflight

    def wait_inflight(self, count: int = 0, timeout: float = 5.0) -> bool:
        """Block until exactly ``count`` requests are in flight (0 = idle); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight == count, timeout)

    # ----------------------------------------------------------------- server thread

    def _make_tls(self) -> ssl.SSLContext:
        ca = trustme.CA()
        cert = ca.issue_cert(*self.tls_hostnames)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.ca_pem = ca.cert_pem.bytes()
        fd, self.ca_path = tempfile.mkstemp(prefix="simulator-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.ca_pem)
        return ctx

    def _remove_ca(self) -> None:
        if self.ca_path:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_path)

    def _run(self, ready: concurrent.futures.Future[None], socks: list[_Listen]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._astart(socks))
        except BaseException as exc:
            ready.set_exception(exc)
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:  # normally nothing is left; after a failed shutdown, don't leave tasks to a closed loop
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self, socks: list[_Listen]) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels its (possibly stalled) handler.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        for host, sock, tls in socks:
            await self._start_site(host, sock, tls)

    async def _start_site(self, host: str, sock: socket.socket, tls: bool) -> None:
        assert self._runner is not None
        site = web.SockSite(self._runner, sock, ssl_context=self._ssl if tls else None, backlog=1024)
        await site.start()
        self._sites.setdefault(host, []).append(site)

    async def _astop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _set_host_down(self, host: str, down: bool) -> None:
        if down:
            for site in self._sites.pop(host, []):
                await site.stop()
            server = self._runner.server if self._runner else None
            for proto in list(getattr(server, "connections", [])):
                transport = proto.transport
                if transport is not None and (transport.get_extra_info("sockname") or ("",))[0] == host:
                    transport.abort()
        elif host not in self._sites:
            await self._start_site(host, _bind(host, self.port), False)
            if self.https_port is not None:
                await self._start_site(host, _bind(host, self.https_port), True)

    # ----------------------------------------------------------------- request handling

    def _match(self, method: str, path: str, listen: str | None) -> _Active | None:
        """The first active fault matching the request; consumes one use of a ``times`` fault."""
        with self._cond:
            for active in self._faults:
                f = active.fault
                if f.method not in (None, method) or f.host not in (None, listen):
                    continue
                if not fnmatch.fnmatchcase(path, f.route):
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                    if active.remaining <= 0:
                        self._faults.remove(active)
                return active
        return None

    def _begin(self, request: web.Request, seq: int) -> dict[str, Any]:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        rec = {
            "seq": seq,  # compare with `received` to pick the requests that arrived after a point
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "host": request.headers.get("Host"),
            "listen": sockname[0] if sockname else None,
            "port": sockname[1] if sockname else None,
            "scheme": request.scheme,
            "headers": {_canonical(k): v for k, v in request.headers.items()},
            "body_size": request.content_length or 0,
            "fault": None,
            "frames": None,
            "status": None,
            "outcome": "pending",
        }
        with self._cond:
            self._requests.append(rec)
            self._inflight += 1
            self._cond.notify_all()
        return rec

    def _note(self, rec: dict[str, Any], **values: Any) -> None:
        with self._cond:
            rec.update(values)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point: admin routes, else record, apply faults, and serve the simulated API."""
        with self._cond:
            self._received += 1
            seq = self._received
        if request.path == "/_sim" or request.path.startswith("/_sim/"):
            return await self._admin(request)
        rec = self._begin(request, seq)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        outcome, status = "error", None
        try:
            resp = await self._serve(request, rec)
            outcome, status = "answered", resp.status
            return resp
        except asyncio.CancelledError:
            outcome = "stopped" if self._stopping else "disconnected"
            raise
        except _Reset:
            outcome = "reset"
            return web.Response(status=500)  # never sent: the transport is already aborted
        except ConnectionError:  # the client went away while we wrote; answer nothing, log nothing
            outcome = "disconnected"
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with self._cond:
                rec["outcome"] = outcome
                rec["status"] = status if status is not None else rec["status"]
                self._inflight -= 1
                self._cond.notify_all()

    async def _stall(self, rec: dict[str, Any]) -> None:
        """Never answer; ends only by cancellation (client disconnect or stop())."""
        self._note(rec, outcome="stalled")
        await asyncio.get_running_loop().create_future()

    async def _serve(self, request: web.Request, rec: dict[str, Any]) -> web.StreamResponse:
        family = _family(request.path)
        limit = EAS_MAX_BODY if family == "eas" else DASHSCOPE_MAX_BODY
        body, size, too_large = await _read_body(request, limit)
        active = self._match(request.method, request.path, rec["listen"])
        self._note(rec, body_size=size, fault=active.id if active else None)
        fault = active.fault if active else None
        if fault is not None:
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.reset:
                _rst(request)
                raise _Reset
            if fault.stall:
                await self._stall(rec)
            if fault.status is not None:
                return _error_response(family, fault.status)
        ctx = _Ctx(request, rec, body, too_large, fault)
        if family == "eas":
            return await self._eas(ctx)
        return await self._dashscope(ctx, family)

    def _key_ok(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.api_keys.get(key.strip()) == self.region

    async def _dashscope(self, ctx: _Ctx, family: str) -> web.StreamResponse:
        req = ctx.request
        if not self._key_ok(req):
            return _error_response(family, 401)
        if ctx.too_large:
            return _error_response(family, 413)
        route = (req.method, req.path)
        if family == "compat":
            if route == ("GET", "/compatible-mode/v1/models"):
                data = [{"id": m, "object": "model", "owned_by": "system"} for m in DASHSCOPE_MODELS]
                return web.json_response({"object": "list", "data": data})
            if route == ("POST", "/compatible-mode/v1/chat/completions"):
                return await self._openai_chat(ctx, "compat")
            if route == ("POST", "/compatible-mode/v1/embeddings"):
                return self._embeddings(ctx)
            return _error_response("compat", 404, "not_found", f"Not found: {req.method} {req.path}")
        if route == ("POST", NATIVE_GENERATION):
            return await self._native_chat(ctx)
        return _error_response("native", 404, "NotFound", f"Not found: {req.method} {req.path}")

    async def _eas(self, ctx: _Ctx) -> web.StreamResponse:
        req = ctx.request
        name, sep, rest = req.path[len("/api/predict/"):].partition("/")
        rest = "/" + rest if sep else ""
        with self._cond:
            service = self._services.get(name) if name else None
        if service is None or service[1] == "absent":
            return web.Response(status=404)  # gateway-level: empty body
        token, state = service
        if not _eas_token_ok(req.headers.get("Authorization"), token):
            return _error_response("eas", 401)
        if ctx.too_large:
            return _error_response("eas", 413)
        if state == "unready":
            return _error_response("eas", 503)
        # Inside the service: a vLLM OpenAI server (FastAPI-style 404/405 bodies).
        routes = {"/v1/models": "GET", "/v1/chat/completions": "POST"}
        if rest not in routes:
            return web.json_response({"detail": "Not Found"}, status=404)
        if req.method != routes[rest]:
            return web.json_response({"detail": "Method Not Allowed"}, status=405)
        if rest == "/v1/models":
            model = {"id": EAS_MODEL, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                     "root": EAS_MODEL, "parent": None, "max_model_len": 32768, "permission": []}
            return web.json_response({"object": "list", "data": [model]})
        return await self._openai_chat(ctx, "vllm")

    async def _openai_chat(self, ctx: _Ctx, family: str) -> web.StreamResponse:
        """OpenAI chat completions, as DashScope compatible mode ("compat") or vLLM on EAS ("vllm")."""
        chat = _parse_openai(ctx.body)
        if isinstance(chat, str):
            return _error_response(family, 400, message=chat)
        if chat.model not in (DASHSCOPE_MODELS if family == "compat" else (EAS_MODEL,)):
            missing = f"The model `{chat.model}` does not exist or you do not have access to it."
            return _error_response(family, 404, message=missing)
        tokens, finish = _reply(chat.max_tokens)
        prompt = _count_words(chat.messages)
        n = len(tokens)
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        head = {"id": f"chatcmpl-{uuid.uuid4()}", "created": int(time.time()), "model": chat.model}
        if not chat.stream:
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                      "finish_reason": finish, "logprobs": None}
            body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return web.json_response(body)
        frames = []
        for i, token in enumerate(tokens):
            delta = {"role": "assistant", "content": token} if i == 0 else {"content": token}
            last = i == len(tokens) - 1
            choice = {"index": 0, "delta": delta, "finish_reason": finish if last else None, "logprobs": None}
            frames.append(_sse({**head, "object": "chat.completion.chunk", "choices": [choice]}))
        if chat.include_usage:
            frames.append(_sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        frames.append(_sse("[DONE]"))
        message = _NATIVE_ERRORS[500][1]
        if family == "compat":
            error = {"message": message, "type": "internal_error", "code": "internal_error"}
        else:
            error = {"message": message, "type": "InternalServerError", "param": None, "code": 500}
        return await self._stream(ctx, frames, _sse({"error": error}), "text/event-stream")

    def _embeddings(self, ctx: _Ctx) -> web.Response:
        """OpenAI-compatible embeddings (Model Studio's text-embedding models); float or base64 vectors."""
        req = _parse_embeddings(ctx.body)
        if isinstance(req, str):
            return _error_response("compat", 400, message=req)
        if req.model not in EMBEDDING_MODELS:
            missing = f"The model `{req.model}` does not exist or you do not have access to it."
            return _error_response("compat", 404, message=missing)
        data = []
        for i, text in enumerate(req.inputs):
            vector: list[float] | str = _embedding(text, req.dimensions)
            if req.base64:
                vector = base64.b64encode(struct.pack(f"<{req.dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(text.split()) for text in req.inputs)
        return web.json_response({"object": "list", "data": data, "model": req.model, "id": str(uuid.uuid4()),
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _native_chat(self, ctx: _Ctx) -> web.StreamResponse:
        """DashScope native text generation, plain JSON or native SSE (``X-DashScope-SSE: enable``)."""
        req = ctx.request
        stream = (req.headers.get("X-DashScope-SSE", "").lower() == "enable"
                  or "text/event-stream" in req.headers.get("Accept", ""))
        chat = _parse_native(ctx.body, stream)
        if isinstance(chat, str):
            return _error_response("native", 400, message=chat)
        if chat.model not in DASHSCOPE_MODELS:
            return _error_response("native", 404, message=f"Model `{chat.model}` not found.")
        tokens, finish = _reply(chat.max_tokens)
        prompt = _count_words(chat.messages)
        rid = str(uuid.uuid4())

        def output(content: str, reason: str) -> dict[str, Any]:
            if chat.result_format == "text":
                return {"text": content, "finish_reason": reason}
            message = {"role": "assistant", "content": content}
            return {"choices": [{"finish_reason": reason, "message": message}]}

        def usage(n: int) -> dict[str, int]:
            return {"input_tokens": prompt, "output_tokens": n, "total_tokens": prompt + n}

        if not chat.stream:
            body = {"output": output("".join(tokens), finish), "usage": usage(len(tokens)), "request_id": rid}
            return web.json_response(body, headers={"X-Request-Id": rid})
        frames, text = [], ""
        for i, token in enumerate(tokens, 1):
            text += token
            content = token if chat.incremental else text
            reason = finish if i == len(tokens) else "null"
            obj = {"output": output(content, reason), "usage": usage(i), "request_id": rid}
            frames.append(_native_frame(i, obj))
        error = {"code": "InternalError", "message": _NATIVE_ERRORS[500][1], "request_id": rid}
        return await self._stream(ctx, frames, _native_frame(2, error, "error", 500),
                                  "text/event-stream;charset=UTF-8")

    async def _stream(self, ctx: _Ctx, frames: list[bytes], error_frame: bytes, content_type: str
                      ) -> web.StreamResponse:
        """Write SSE frames one by one (each flushed), honouring the fault's stream_* fields."""
        fault = ctx.fault
        delay = fault.stream_delay_ms / 1000 if fault else 0.0
        stall_after = fault.stream_stall_after if fault else None
        if fault is not None and fault.stream_error:
            frames = frames[:1] + [error_frame]
        resp = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        await resp.prepare(ctx.request)
        self._note(ctx.rec, status=200, frames=0)
        for i, frame in enumerate(frames):
            if stall_after is not None and i >= stall_after:
                break
            if i and delay:
                await asyncio.sleep(delay)
            self._note(ctx.rec, frames=i + 1)  # before the write: a client may read it and look before write returns
            await resp.write(frame)
        if stall_after is not None:
            await self._stall(ctx.rec)
        await resp.write_eof()
        return resp

    # ----------------------------------------------------------------- admin API

    async def _admin(self, request: web.Request) -> web.Response:
        """HTTP control surface for other processes; unauthenticated, never faulted, not recorded."""
        path, method = request.path, request.method
        if path == "/_sim/faults" and method == "POST":
            try:
                data = await request.json()
                if not isinstance(data, dict):
                    raise ValueError("body must be a JSON object of Fault fields")
                unknown = set(data) - {f.name for f in fields(Fault)}
                if unknown:
                    raise ValueError(f"unknown Fault fields: {sorted(unknown)}")
                fid = self.inject(Fault(**data))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"id": fid})
        if path == "/_sim/faults" and method == "GET":
            return web.json_response(self.faults)
        if path == "/_sim/faults" and method == "DELETE":
            return web.json_response({"cleared": self.clear()})
        if path.startswith("/_sim/faults/") and method == "DELETE":
            cleared = self.clear(path[len("/_sim/faults/"):])
            return web.json_response({"cleared": cleared}, status=200 if cleared else 404)
        if path == "/_sim/requests" and method == "GET":
            return web.json_response(self.requests)
        return web.json_response({"error": f"no admin route {method} {path}"}, status=404)
