"""One HTTP/1.1 exchange on its own connection, timestamped where the bytes move.

Timestamps are taken inside the event loop's own socket callbacks (the connect's writability, the
protocol's `data_received`), not when an awaiting task next gets to run, so a busy loop inflates them
as little as it can. No pool, no keep-alive: every attempt pays a cold caller's connect and handshake.
httptools (llhttp, uvicorn's parser) reads the HTTP/1.1 response; the request is a few lines built here.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from errno import EAGAIN, EINPROGRESS

import httptools

from shared.errors import VpcprobeError
from shared.text_enum import TextEnum

# Unread body bytes buffered before the socket stops being read (the reader takes at most 64 KiB).
_HIGH_WATER = 256 * 1024


class Stage(TextEnum):
    """Where an exchange was when it failed or ran out of time."""

    CONNECT = "connect"
    TLS = "tls"
    RESPONSE = "response"  # request sent, no response headers yet
    BODY = "body"  # headers in, body not finished


class TransportError(VpcprobeError):
    """An exchange failed; `stage` says where, `errno` carries the OS error when there was one."""

    def __init__(self, stage: Stage, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.errno = errno


class ConnectFailed(TransportError):
    """The TCP connect was refused, unreachable or reset."""


class TlsFailed(TransportError):
    """The TLS handshake failed (certificate, protocol, or the peer does not speak TLS); `reason` is
    OpenSSL's (WRONG_VERSION_NUMBER: the peer answered in plain HTTP), None when there was none."""

    def __init__(self, stage: Stage, message: str, errno: int | None = None, reason: str | None = None) -> None:
        super().__init__(stage, message, errno)
        self.reason = reason


class ConnectionLost(TransportError):
    """The peer reset or closed the connection before the response was complete."""


class ProtocolViolation(TransportError):
    """The peer's bytes are not HTTP/1.1."""


class RequestRefused(TransportError, ValueError):
    """The request cannot be sent as built (a CR/LF in a header value: a credential with a trailing
    newline); the message names the header, never its value, since the value may be a secret."""


@dataclass
class Marks:
    """perf_counter() at each step of one exchange; None for a step not reached."""

    connect_start: float | None = None
    connect_end: float | None = None
    tls_start: float | None = None
    tls_end: float | None = None
    request_start: float | None = None
    request_written: float | None = None
    first_byte: float | None = None
    headers_done: float | None = None
    body_end: float | None = None

    def stage(self) -> Stage:
        """The step the exchange was in: where a deadline cut it short."""
        if self.connect_end is None:
            return Stage.CONNECT
        if self.tls_start is not None and self.tls_end is None:
            return Stage.TLS
        if self.headers_done is None:
            return Stage.RESPONSE
        return Stage.BODY


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names; a repeated name keeps the last

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _ResponseReader(asyncio.Protocol):
    """Feeds the socket's bytes to httptools as they arrive and stamps first byte, headers and body end.

    httptools (llhttp, Node's parser; uvicorn's) parses a response in ~1 us where h11 took ~30 us:
    at 2000 attempts a round that is 60 ms of CPU (scripts/bench_blackbox.py, README "Scheduling").
    """

    def __init__(self, marks: Marks, head: bool = False) -> None:
        self.marks = marks
        self.head = head  # a HEAD response has no body, whatever its Content-Length says
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.finished = False
        self.error: TransportError | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.marks.first_byte is None:
            self.marks.first_byte = time.perf_counter()
        if self.finished or self.error:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self.finished:  # an upgrade after a complete response is not the response's
                self._fail(ProtocolViolation(self._stage(), "the server switched protocols (upgrade)"))
        except httptools.HttpParserError as exc:
            if not self.finished:  # bytes after a complete response are not the response's problem
                self._fail(ProtocolViolation(self._stage(), f"not an HTTP/1.1 response: {exc}"))

    # httptools callbacks --------------------------------------------------------------------

    # A response that follows a complete one in the same read is not the answer (the parser reads on).

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.finished:
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.finished:
            return
        status = self._parser.get_status_code()
        if status < 200:  # 1xx (100 Continue, 103 Early Hints): wait for the real one
            self._headers = {}
            return
        self.marks.headers_done = time.perf_counter()
        self.response = Response(status, self._headers)
        if self.head:
            self._finish(self.marks.headers_done)  # nothing follows the head
        else:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.finished:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.response is not None and not self.finished:
            self._finish()

    # ------------------------------------------------------------------------------------------

    def eof_received(self) -> bool:
        if not (self.finished or self.error):
            if self.response is None:
                self._fail(ConnectionLost(Stage.RESPONSE, "server disconnected without sending a response"))
            elif _ends_at_close(self.response.headers):
                self._finish()  # no Content-Length, not chunked: the body ends where the connection does
            else:
                self._fail(ConnectionLost(Stage.BODY, "connection closed mid-body"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not (self.finished or self.error):
            stage = self._stage()
            if exc is None:
                self._fail(ConnectionLost(stage, "server disconnected without sending a response"))
            else:
                self._fail(ConnectionLost(stage, str(exc) or type(exc).__name__, getattr(exc, "errno", None)))
        self._wake()

    def _stage(self) -> Stage:
        return Stage.RESPONSE if self.response is None else Stage.BODY

    def _finish(self, at: float | None = None) -> None:
        self.marks.body_end = at if at is not None else time.perf_counter()
        self.finished = True
        self._wake()

    def _fail(self, error: TransportError) -> None:
        self.error = error
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        """Until something new arrived (headers, a chunk, the end, an error)."""
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


def _ends_at_close(headers: dict[str, str]) -> bool:
    """A response framed by the connection's close (RFC 9112 6.3): neither Content-Length nor chunked."""
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()


def _wire(request: Request) -> bytes:
    """The request's bytes: request line, headers in order, Content-Length with a body, then the body.

    Built by hand (h11 took ~16 us to validate and build them); a CR, LF or NUL anywhere, a space in
    the target, or a colon or space in a header name would change the request's meaning: refused, as
    h11 refused it.
    """
    names = "".join(name for name, _ in request.headers)
    text = request.method + request.target + names + "".join(value for _, value in request.headers)
    if "\r" in text or "\n" in text or "\0" in text or " " in request.target or ":" in names or " " in names:
        raise RequestRefused(Stage.CONNECT, _refusal(request))
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    if request.body is not None:
        lines.append(f"Content-Length: {len(request.body)}")
    try:
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        bad = next((name for name, value in request.headers if not _latin1(value)), "the request line")
        raise RequestRefused(Stage.CONNECT, f"header {bad}: a character HTTP/1.1 cannot carry") from None
    return data + request.body if request.body else data


def _refusal(request: Request) -> str:
    """What is wrong with a request, naming the header but never quoting a value (it may be a secret)."""
    for name, value in request.headers:
        if any(c in value for c in "\r\n\0"):
            return f"header {name}: its value holds a line break or NUL"
        if not name or any(c in name for c in ": \r\n\0"):
            return "a header name with a colon, space, line break or NUL"
    return "a CR, LF, NUL or space in the request line"


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, addr: tuple, marks: Marks) -> asyncio.Future:
    """A non-blocking connect whose end is stamped in the writability callback itself."""
    done: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    marks.connect_start = time.perf_counter()
    err = sock.connect_ex(addr)
    if err == 0:
        marks.connect_end = time.perf_counter()
        done.set_result(None)
        return done
    if err not in (EINPROGRESS, EAGAIN):
        done.set_exception(OSError(err, os.strerror(err)))
        return done

    def writable() -> None:
        loop.remove_writer(fd)
        if done.done():
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            done.set_exception(OSError(code, os.strerror(code)))
        else:
            marks.connect_end = time.perf_counter()
            done.set_result(None)

    loop.add_writer(fd, writable)
    done.add_done_callback(lambda f: loop.remove_writer(fd) if f.cancelled() else None)
    return done


@dataclass
class Request:
    """What goes on the wire: the request line's target, headers in order, and the body."""

    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes | None = None
    _bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def wire(self) -> bytes:
        """The bytes to send; built once, however many addresses and retries send them."""
        if self._bytes is None:
            self._bytes = _wire(self)
        return self._bytes


class Exchange:
    """One request on one fresh connection to one address; `marks` fills in as it goes.

    Use: `await open(...)`, `await send(...)` (returns the response head), then `body()`; always `close()`.
    """

    def __init__(self, marks: Marks | None = None) -> None:
        self.marks = marks or Marks()
        self.peer_cert_der: bytes | None = None
        self._reader = _ResponseReader(self.marks)
        self._transport: asyncio.Transport | None = None
        self._sock: socket.socket | None = None

    async def open(
        self, ip: str, port: int, tls: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> None:
        """TCP connect to ip:port, then the TLS handshake when `tls` is given (SNI = `server_hostname`)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = self._sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await _connect(loop, sock, (ip, port), self.marks)
        except OSError as exc:
            raise ConnectFailed(Stage.CONNECT, exc.strerror or str(exc), exc.errno) from exc
        if tls is None:
            transport, _ = await loop.create_connection(lambda: self._reader, sock=sock)
        else:
            self.marks.tls_start = time.perf_counter()
            try:
                transport, _ = await loop.create_connection(
                    lambda: self._reader,
                    sock=sock,
                    ssl=tls,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=3600,  # the attempt's own deadline governs
                )
            except (ssl.SSLError, ssl.CertificateError) as exc:
                reason = getattr(exc, "reason", None)
                raise TlsFailed(Stage.TLS, str(exc) or type(exc).__name__, reason=reason) from exc
            except OSError as exc:
                message = exc.strerror or str(exc) or type(exc).__name__
                raise TlsFailed(Stage.TLS, f"TLS handshake: {message}", exc.errno) from exc
            self.marks.tls_end = time.perf_counter()
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                self.peer_cert_der = ssl_object.getpeercert(binary_form=True)
        self._sock = None  # the transport owns it now
        self._transport = transport  # type: ignore[assignment]

    async def send(self, request: Request) -> Response:
        """Write the request in one go and wait for the response head."""
        assert self._transport is not None
        data = request.wire()
        self._reader.head = request.method == "HEAD"
        self.marks.request_start = time.perf_counter()
        self._transport.write(data)
        self.marks.request_written = time.perf_counter()
        reader = self._reader
        while reader.response is None:
            if reader.error:
                raise reader.error
            await reader.wait()
        return reader.response

    async def body(self, limit: int | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; stops (and stamps the end) after `limit` bytes."""
        reader, seen = self._reader, 0
        while True:
            if reader.chunks:
                data = reader.take()
                if limit is not None and seen + len(data) >= limit:
                    self.marks.body_end = self.marks.body_end or time.perf_counter()
                    yield data[: limit - seen]
                    return
                seen += len(data)
                yield data
                continue
            if reader.finished:
                return
            if reader.error:
                raise reader.error
            await reader.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # never reused: no graceful close to wait for
            self._transport = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
